"""The model package format: the one contract between the converters and the runtime.

A model package is a folder holding the model file, ``modelpress.json`` (this module's
:class:`Manifest`) and optionally ``labels.txt``. Pure Python: no TensorFlow is imported here, so the
runtime on a device can read packages too::

    from modelpress.manifest import read_manifest
    manifest = read_manifest("artifacts/rpi/")
    print(manifest.inputs[0].shape, manifest.quantization, manifest.fidelity["top1_agreement"])
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelpress.errors import ArtifactError

MANIFEST_NAME = "modelpress.json"
LABELS_NAME = "labels.txt"
FORMAT_ID = "modelpress.package/1"
MODEL_FORMATS = ("tflite", "saved_model")
#: JSON types of the manifest's fields (a hand-edited or corrupt file must fail as an ArtifactError)
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "model_format": str, "model_file": str, "inputs": list, "outputs": list, "version": (str, int),
    "profile": dict, "quantization": str, "calibration": dict, "source": dict, "artifact": dict, "fidelity": dict,
    "ops": list, "tool_versions": dict, "created_at": str, "labels_file": str, "notes": list,
    "mcu": dict,
    "inferred": bool, "stateful": bool, "signature": str,
}
#: what a tensor is for: the model's input, a class-score output (compared by top-1), other values, or a
#: state tensor a streaming model carries between calls
ROLES = ("input", "class_scores", "values", "state")


def shape_text(shape, open_as: str = "None") -> str:
    """A shape as errors and notes show it, a dynamic dimension (-1 or None) as ``open_as``::

        shape_text([-1, 28, 28, 1])              # '[None, 28, 28, 1]'
    """
    return "[" + ", ".join(open_as if d is None or int(d) < 0 else str(int(d)) for d in shape) + "]"


def output_role(shape) -> str:
    """The role of an output of this shape: ``class_scores`` for [batch, classes] with more than one class
    (compared by top-1), else ``values``::

        output_role([-1, 10]), output_role([-1, 1])      # ('class_scores', 'values')
    """
    return "class_scores" if len(shape) == 2 and shape[-1] > 1 else "values"


@dataclass
class TensorSpec:
    """One input or output tensor. ``shape`` uses -1 for a dynamic dimension (the batch, or any other the
    model leaves open: the runtime resizes). ``role`` is one of :data:`ROLES` (None when unknown)."""

    name: str
    shape: list[int]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None
    role: str | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.scale != 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> TensorSpec:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} must be an object with name, shape and dtype, found {type(data).__name__}")
        missing = [key for key in ("name", "shape", "dtype") if key not in data]
        if missing:
            raise ArtifactError(f"{where} lacks {', '.join(missing)}; every tensor needs name, shape and dtype")
        shape = data["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise ArtifactError(f"{where} shape must be a list of integers (-1 for the batch), got {shape!r:.60}")
        for key, kinds in (("scale", (int, float)), ("zero_point", (int,))):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                raise ArtifactError(f"{where} {key} must be a number or null, got {value!r:.60}")
        return cls(
            name=str(data["name"]),
            shape=list(shape),
            dtype=str(data["dtype"]),
            scale=None if data.get("scale") is None else float(data["scale"]),
            zero_point=None if data.get("zero_point") is None else int(data["zero_point"]),
            role=None if data.get("role") is None else str(data["role"]),
        )


@dataclass
class Manifest:
    """What ``modelpress.json`` holds. ``model_file`` is relative to the package folder.

    ``inferred`` is true for a manifest read from a model made elsewhere (no ``modelpress.json`` was
    shipped, see :mod:`modelpress.manifest_inference`); ``stateful`` for a model that keeps resource
    variables between calls; ``signature`` names the signature runner served when the model has several.
    """

    name: str
    model_format: str
    model_file: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    version: str = "1"
    profile: dict[str, Any] = field(default_factory=dict)
    quantization: str = "none"
    calibration: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    artifact: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)
    ops: list[str] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    labels_file: str | None = None
    notes: list[str] = field(default_factory=list)
    #: microcontroller / NPU packages: arena, TFLite Micro agreement, estimates, C sources, Vela figures
    mcu: dict[str, Any] | None = None
    inferred: bool = False
    stateful: bool = False
    signature: str | None = None
    format: str = FORMAT_ID

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = MANIFEST_NAME) -> Manifest:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} must hold a JSON object, found {type(data).__name__}")
        if data.get("format") != FORMAT_ID:
            raise ArtifactError(
                f"{where} has format {data.get('format')!r}; expected {FORMAT_ID!r} "
                "(re-create the package with `modelpress convert`)"
            )
        required = ("name", "model_format", "model_file", "inputs", "outputs")
        missing = [key for key in required if key not in data]
        if missing:
            raise ArtifactError(f"{where} lacks {', '.join(missing)}; re-create it with `modelpress convert`")
        if data["model_format"] not in MODEL_FORMATS:
            raise ArtifactError(
                f"{where}: model_format {data['model_format']!r} is not one of {', '.join(MODEL_FORMATS)}"
            )
        for key, kind in FIELD_TYPES.items():
            if key in data and data[key] is not None and not isinstance(data[key], kind):
                expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                raise ArtifactError(f"{where}: {key} must be a {expected}, found {type(data[key]).__name__}; "
                                    "re-create the package with `modelpress convert`")
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["inputs"] = [TensorSpec.from_dict(t, f"{where} inputs[{i}]") for i, t in enumerate(data["inputs"])]
        kwargs["outputs"] = [
            TensorSpec.from_dict(t, f"{where} outputs[{i}]") for i, t in enumerate(data["outputs"])
        ]
        return cls(**kwargs)

    def labels(self, folder: str | Path) -> list[str] | None:
        """The class labels shipped with the package, or None."""
        if not self.labels_file:
            return None
        path = Path(folder) / self.labels_file
        if not path.is_file():
            raise ArtifactError(f"{path} is named in the manifest but missing")
        return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_manifest(folder: str | Path) -> Manifest:
    """Read and check a package folder's manifest; the model file it names must exist."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{folder} is not a model package: {MANIFEST_NAME} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path} is not valid JSON ({err}); re-create the package") from None
    manifest = Manifest.from_dict(data, where=str(path))
    model_path = folder / manifest.model_file
    if Path(manifest.model_file).is_absolute() or ".." in Path(manifest.model_file).parts:
        raise ArtifactError(f"{path}: model_file {manifest.model_file!r} must be a path inside the package")
    if not model_path.exists():
        raise ArtifactError(f"{path} names model file {manifest.model_file!r}, which is missing")
    return manifest


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write the manifest into a folder that is still private (see :mod:`modelpress.atomic`)."""
    path = Path(folder) / MANIFEST_NAME
    path.write_text(manifest.to_json() + "\n", encoding="utf-8")
    return path
