"""Artifact: what a conversion produced, as the Python API returns it.

    artifact = modelpress.convert("model.keras", profile="server-cpu", out="build/cpu")
    artifact.path, artifact.model_path, artifact.size_bytes, artifact.gzip_bytes
    artifact.manifest.fidelity["top1_agreement"]
    artifact.summary()     # a flat dict, one row of a comparison table
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpress.converters.mcu.figures import mcu_figures
from modelpress.manifest import Manifest, read_manifest


@dataclass
class Artifact:
    path: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path) -> Artifact:
        return cls(Path(path), read_manifest(path))

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def size_bytes(self) -> int:
        return int(self.manifest.artifact.get("bytes", 0))

    @property
    def gzip_bytes(self) -> int:
        return int(self.manifest.artifact.get("gzip_bytes", 0))

    def summary(self) -> dict[str, Any]:
        fidelity = self.manifest.fidelity
        return {
            "profile": self.manifest.profile.get("name"),
            "format": self.manifest.model_format,
            "quantization": self.manifest.quantization,
            "bytes": self.size_bytes,
            "gzip_bytes": self.gzip_bytes,
            "compression": round((self.manifest.source.get("bytes") or 0) / max(self.size_bytes, 1), 2),
            "top1_agreement": fidelity.get("top1_agreement"),
            "max_abs_error": fidelity.get("max_abs_error"),
            "input_dtype": self.manifest.inputs[0].dtype if self.manifest.inputs else None,
            "path": str(self.path),
            **mcu_figures(self.manifest.mcu),
        }

    def __repr__(self) -> str:
        return (f"Artifact({str(self.path)!r}, {self.manifest.model_format}, {self.manifest.quantization}, "
                f"{self.size_bytes} bytes)")
