"""Compile an int8 .tflite for an Arm Ethos-U NPU with Arm's Vela compiler and read its estimates.

    report = compile_with_vela(Path("pkg/model.tflite"), profile)   # writes pkg/model_vela.tflite
    report.sram_bytes, report.flash_bytes, report.cycles, report.inference_ms, report.npu_ops

Vela runs in a child process (``python -m ethosu.vela``) with the profile's accelerator and one of the
system configs and memory modes of Vela's own ``Arm/vela.ini``; the inference time is Vela's cycle
count at the profile's ``clock_hz`` (Vela's own figure is at its system config's clock, also kept).
(A copy of a system config under another name made Vela 5.2 plan memory differently, so the
configs are used as shipped.) Its figures come from Vela's performance model: estimates of the
compiler, not measurements on silicon.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modelpress.device_profiles import DeviceProfile
from modelpress.errors import ConversionError, ModelpressError

VELA_SUFFIX = "_vela"
TIMEOUT_S = 600
NPU_OP = "ethos-u"
VELA_CONFIG = "Arm/vela.ini"


@dataclass
class VelaReport:
    accelerator: str
    system_config: str
    memory_mode: str
    clock_hz: int
    sram_bytes: int
    arena_dram_bytes: int
    flash_bytes: int
    compiled_bytes: int
    cycles: int
    npu_cycles: int
    inference_ms: float
    vela_clock_hz: int
    vela_inference_ms: float
    macs: int
    npu_ops: int
    cpu_ops: int
    cpu_op_names: list[str] = field(default_factory=list)
    compiled_file: str = ""
    version: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def vela_version() -> str:
    """The installed Vela's version, or a ModelpressError saying how to install it: ``vela_version() == "5.2.0"``."""
    try:
        from ethosu.vela import _version
    except ImportError:
        raise ModelpressError("Ethos-U profiles compile with Arm's Vela, which is not installed: pip install "
                              "'modelpress[mcu]' (ethos-u-vela and tflite-micro)") from None
    return str(getattr(_version, "__version__", "unknown"))


def _summary(folder: Path) -> dict[str, str]:
    files = sorted(folder.glob("*_summary_*.csv"))
    if not files:
        raise ConversionError(f"Vela wrote no summary CSV into {folder}")
    with files[0].open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ConversionError(f"Vela's summary {files[0].name} is empty")
    return rows[0]


def _op_count(text: str, kind: str) -> int:
    match = re.search(rf"{kind} operators = (\d+)", text)
    return int(match.group(1)) if match else 0


def compile_with_vela(model_path: Path, profile: DeviceProfile) -> VelaReport:
    """Compile ``model_path`` for ``profile.npu`` next to it (``<stem>_vela.tflite``); the parsed summary.

        report = compile_with_vela(Path("pkg/model.tflite"), load_profile("ethos-u55-128"))
    """
    from modelpress.tflite_graph import read_graph

    version = vela_version()
    with tempfile.TemporaryDirectory(prefix="vela-") as tmp:
        work = Path(tmp)
        mode = str(profile.npu_memory_mode)
        command = [sys.executable, "-m", "ethosu.vela", str(model_path), "--output-dir", str(work),
                   "--accelerator-config", str(profile.npu), "--config", VELA_CONFIG,
                   "--system-config", str(profile.npu_system_config), "--memory-mode", mode]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"Vela did not finish within {TIMEOUT_S} s for {profile.npu}") from None
        compiled = work / f"{model_path.stem}{VELA_SUFFIX}.tflite"
        if result.returncode != 0 or not compiled.is_file():
            tail = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()][-3:]
            raise ConversionError(f"Vela could not compile the model for {profile.npu} (exit {result.returncode}): "
                                  + " | ".join(tail or ["no output"]))
        row = _summary(work)
        target = model_path.with_name(compiled.name)
        target.write_bytes(compiled.read_bytes())
    ops = read_graph(target.read_bytes()).ops
    cpu_ops = [op for op in ops if op != NPU_OP]
    vela_clock = float(row.get("core_clock") or 0)
    clock = float(profile.clock_hz or vela_clock)
    cycles = int(float(row.get("cycles_total") or 0))
    return VelaReport(
        accelerator=str(profile.npu), system_config=str(profile.npu_system_config), memory_mode=mode,
        clock_hz=int(clock), sram_bytes=int(round(float(row.get("sram_memory_used") or 0) * 1024)),
        # in DRAM the arena sits beside the weights; Vela's DRAM figure holds both
        arena_dram_bytes=max(0, int(round(float(row.get("dram_memory_used") or 0) * 1024))
                             - int(float(row.get("total_npu_encoded_weights") or 0))),
        flash_bytes=int(round((float(row.get("off_chip_flash_memory_used") or 0)
                               + float(row.get("on_chip_flash_memory_used") or 0)) * 1024)),
        compiled_bytes=target.stat().st_size, cycles=cycles, npu_cycles=int(float(row.get("cycles_npu") or 0)),
        inference_ms=cycles / clock * 1000.0 if clock else 0.0, vela_clock_hz=int(vela_clock),
        vela_inference_ms=float(row.get("inference_time") or 0) * 1000.0, macs=int(float(row.get("nn_macs") or 0)),
        npu_ops=_op_count(result.stdout, "NPU"), cpu_ops=_op_count(result.stdout, "CPU"),
        cpu_op_names=sorted(set(cpu_ops)), compiled_file=target.name, version=version,
    )
