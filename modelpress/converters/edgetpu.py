"""Compile for the Coral Edge TPU when Coral's ``edgetpu_compiler`` is installed; say so plainly when not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

NOT_FOUND = ("Edge-TPU-ready but not compiled: edgetpu_compiler was not found on PATH. Install it from "
             "Coral's apt repository (package edgetpu-compiler, x86-64 Linux) and run "
             "`edgetpu_compiler model.tflite` in the artifact folder")


def compile_for_edgetpu(model_path: Path, compiler: str = "edgetpu_compiler") -> tuple[Path | None, str]:
    """(compiled model path or None, a note for the manifest)."""
    exe = shutil.which(compiler)
    if exe is None:
        return None, NOT_FOUND
    result = subprocess.run([exe, "-s", "-o", str(model_path.parent), str(model_path)],
                            capture_output=True, text=True, timeout=600)
    compiled = model_path.with_name(model_path.stem + "_edgetpu.tflite")
    if result.returncode != 0 or not compiled.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"edgetpu_compiler failed ({tail[0]}); the CPU int8 model is still usable"
    log = model_path.with_name(model_path.stem + "_edgetpu.log")
    log.unlink(missing_ok=True)
    return compiled, f"compiled for the Edge TPU by {exe}: {compiled.name}"
