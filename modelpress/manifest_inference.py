"""A manifest for a model made elsewhere, read from the model itself: what ``modelpress package`` writes
and what the runtime serves a version folder by when it holds only a model file::

    repo/face/1/model.tflite               # no modelpress.json: names, shapes, dtypes, quantization and
    manifest = load_manifest("repo/face/1")   # ops come from the flatbuffer (no TensorFlow needed)
    manifest.inferred, manifest.stateful   # True, False

A ``.tflite`` file is read with the TFLite interpreter and the flatbuffer reader only, so this works on a
device without TensorFlow; a SavedModel (``saved_model.pb`` in the folder, or in ``saved_model/``) needs
TensorFlow, as serving it does.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from modelpress.errors import ArtifactError
from modelpress.files import file_sha256, raw_bytes
from modelpress.manifest import MANIFEST_NAME, Manifest, TensorSpec, output_role, read_manifest

#: ops that read or write resource variables: a model holding them keeps state between calls
STATE_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"}
INFERRED_NOTE = ("manifest inferred from the model file (no modelpress.json was shipped): names, shapes, "
                 "dtypes and quantization are the model's own; nothing was verified against a source")


def find_model(folder: str | Path) -> tuple[str, str] | None:
    """(format, path relative to ``folder``) of the model a folder holds without a manifest, or None.

    A folder holding ``model.tflite`` (or exactly one ``*.tflite`` file), ``saved_model.pb``, or a
    ``saved_model/`` folder with one."""
    folder = Path(folder)
    if (folder / "model.tflite").is_file():
        return "tflite", "model.tflite"
    try:
        tflites = sorted(p.name for p in folder.iterdir() if p.suffix == ".tflite" and p.is_file())
    except OSError:
        return None
    if len(tflites) == 1:
        return "tflite", tflites[0]
    if (folder / "saved_model.pb").is_file():
        return "saved_model", "."
    if (folder / "saved_model" / "saved_model.pb").is_file():
        return "saved_model", "saved_model"
    return None


def _tflite(path: Path, signature: str | None) -> dict:
    from modelpress.tflite_graph import read_graph
    from modelpress.tflite_interpreter import TFLiteModel

    model = TFLiteModel(path, signature=signature)
    graph = read_graph(path.read_bytes())
    inputs, outputs = model.input_specs(), model.output_specs()
    for spec in inputs:
        spec.role = "input"
    for spec in outputs:
        spec.role = output_role(spec.shape)
    stateful = bool(STATE_OPS & set(graph.ops))
    notes = [INFERRED_NOTE]
    if stateful:
        notes.append("stateful: the model keeps resource variables between calls (each interpreter of the pool "
                     "holds its own state)")
    if graph.custom_ops:
        notes.append("custom or Flex ops: " + ", ".join(dict.fromkeys(graph.custom_ops)))
    if len(model.signatures) > 1:
        notes.append(f"signatures {', '.join(model.signatures)}; serving {model.signature!r}")
    return dict(inputs=inputs, outputs=outputs, ops=graph.ops, quantization=graph.quantization,
                stateful=stateful, signature=model.signature if len(model.signatures) > 1 else None,
                notes=notes, interpreter=model.backend)


def _saved_model(path: Path, signature: str | None) -> dict:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:  # noqa: BLE001 - whatever TensorFlow says, one line for the user
        raise ArtifactError(f"{path} cannot be loaded as a SavedModel: {str(err).splitlines()[0]}") from None
    keys = list(loaded.signatures)
    if not keys:
        raise ArtifactError(f"{path} is a SavedModel without signatures; export it with a serving signature")
    key = signature or ("serving_default" if "serving_default" in keys else keys[0])
    if key not in keys:
        raise ArtifactError(f"{path} has no signature {key!r}; it has {', '.join(keys)}")
    fn = loaded.signatures[key]

    def spec(name, s, role):
        return TensorSpec(name=name, shape=[-1 if d is None else int(d) for d in s.shape], dtype=s.dtype.name,
                          role=role)

    inputs = [spec(n, s, "input") for n, s in sorted(fn.structured_input_signature[1].items())]
    outputs = [spec(n, s, "values") for n, s in sorted(fn.structured_outputs.items())]
    for out in outputs:
        out.role = output_role(out.shape)
    notes = [INFERRED_NOTE]
    if key != "serving_default":
        notes.append(f"serving signature {key!r}")
    return dict(inputs=inputs, outputs=outputs, ops=[], quantization="none", stateful=False,
                signature=key if key != "serving_default" else None, notes=notes, interpreter="tensorflow")


def infer_manifest(folder: str | Path, name: str | None = None, version: str = "1", model_file: str | None = None,
                   signature: str | None = None) -> Manifest:
    """A manifest for the model ``folder`` holds (see :func:`find_model`), or for ``model_file`` in it::

        infer_manifest("repo/wakeword/3").inputs[0].shape      # [1, 16, 96]
    """
    folder = Path(folder)
    if model_file is None:
        found = find_model(folder)
        if found is None:
            raise ArtifactError(f"{folder} holds no {MANIFEST_NAME} and no model.tflite, *.tflite or SavedModel "
                                "(saved_model.pb); put the model file there")
        model_format, model_file = found
    else:
        model_format = "saved_model" if (folder / model_file).is_dir() else "tflite"
    path = folder / model_file
    info = _tflite(path, signature) if model_format == "tflite" else _saved_model(path, signature)
    return Manifest(
        name=name or (folder.parent.name if folder.name.isdigit() else folder.name), version=str(version),
        model_format=model_format, model_file=model_file, inputs=info["inputs"], outputs=info["outputs"],
        quantization=info["quantization"], ops=info["ops"],
        source={"path": None, "made_elsewhere": True},
        artifact={"sha256": file_sha256(path), "bytes": raw_bytes(path)},
        tool_versions={"interpreter": info["interpreter"]},
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        notes=info["notes"], inferred=True, stateful=info["stateful"], signature=info["signature"],
    )


def load_manifest(folder: str | Path) -> Manifest:
    """The folder's ``modelpress.json`` when it has one, else a manifest inferred from its model file."""
    folder = Path(folder)
    if (folder / MANIFEST_NAME).is_file():
        return read_manifest(folder)
    return infer_manifest(folder, version=folder.name if folder.name.isdigit() else "1")
