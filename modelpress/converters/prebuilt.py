"""Wrap a model made elsewhere (a ``.tflite`` file or a SavedModel folder) into a verified model package:
manifest read from the model, sizes, ops, the profile's constraints checked, one real run and its
latency measured, written atomically. The engine behind :func:`modelpress.package`::

    artifact = package_model(Path("wakeword.tflite"), Path("build/wakeword"), profile=load_profile("server-cpu"))
    artifact.manifest.inferred, artifact.manifest.artifact["latency_p50_ms"]
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.atomic import atomic_directory
from modelpress.converters.artifact import Artifact
from modelpress.converters.constraints import check_constraints, raise_on
from modelpress.converters.finish import seal_package
from modelpress.converters.isolation import LITE, PRELOAD, run_isolated
from modelpress.device_profiles import DeviceProfile
from modelpress.errors import ArtifactError, DataError, ModelLoadError, UsageError
from modelpress.files import gzip_bytes, raw_bytes
from modelpress.manifest import LABELS_NAME, TensorSpec
from modelpress.manifest_inference import infer_manifest

LATENCY_RUNS = 30
RANDOM_ROWS = 4


def model_kind(path: Path) -> str:
    """``tflite`` or ``saved_model`` for a model made elsewhere; ModelLoadError for anything else."""
    if path.is_file() and path.suffix == ".tflite":
        return "tflite"
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model"
    if not path.exists():
        raise ModelLoadError(f"model {path} does not exist; expected a .tflite file or a SavedModel folder")
    raise ModelLoadError(f"{path} is not a .tflite file or a SavedModel folder (saved_model.pb inside); "
                         "`modelpress package` wraps models made elsewhere (use `modelpress convert` for Keras files)")


def _sample_shape(spec: TensorSpec, given: dict[str, list[int]]) -> list[int]:
    if spec.name in given:
        return list(given[spec.name])
    open_dims = [a for a, d in enumerate(spec.shape) if a > 0 and d < 0]
    if open_dims:
        example = "x".join("1" if a == 0 else ("N" if d < 0 else str(d)) for a, d in enumerate(spec.shape))
        raise DataError(f"input {spec.name!r} has dynamic dimension(s) at axis {', '.join(map(str, open_dims))}; "
                        f"pass the shape it runs at, e.g. --input-shape {spec.name}={example}, or --verify-data")
    return [RANDOM_ROWS if spec.shape and spec.shape[0] < 0 else spec.shape[0] if spec.shape else 1,
            *spec.shape[1:]]


def _random(spec: TensorSpec, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(spec.dtype) if spec.dtype != "string" else np.dtype(object)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if np.issubdtype(dtype, np.integer) and not spec.quantized:
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.random(shape, dtype=np.float32)


def feed_for(inputs: list[TensorSpec], verify_data: Any, given: dict[str, list[int]]) -> tuple[dict, str]:
    """Inputs by name to run the model on: ``verify_data`` (array, .npy, or .npz by input name) or random
    values at the model's shapes (``given`` fixes dynamic dimensions)."""
    if verify_data is None:
        rng = np.random.default_rng(0)
        return {s.name: _random(s, _sample_shape(s, given), rng) for s in inputs}, "random inputs"
    from modelpress.converters.calibration import load_inputs

    shapes = {s.name: [None, *[None if d < 0 else d for d in s.shape[1:]]] for s in inputs}
    samples = load_inputs(verify_data, shapes, count=64)
    return samples.inputs, samples.source


def run_and_time(kind: str, path: str, feed: dict[str, np.ndarray], signature: str | None,
                 threads: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Run the model once on ``feed`` and time single-row calls (meant for the isolation child)."""
    from modelpress.converters.isolation import step
    from modelpress.latency import measure_latency

    step("first invoke of the model")
    if kind == "tflite":
        from modelpress.tflite_interpreter import TFLiteModel

        model = TFLiteModel(path, threads=threads, signature=signature)
        outputs = model.predict_named(feed)
        names = [d["name"] for d in model.input_details]
        one = [np.asarray(feed[n][:1]) for n in names]
        stats = measure_latency(lambda: model.predict(one), runs=LATENCY_RUNS)
    else:
        import tensorflow as tf

        fn = tf.saved_model.load(path).signatures[signature or "serving_default"]
        specs = fn.structured_input_signature[1]
        cast = {k: np.asarray(v).astype(specs[k].dtype.as_numpy_dtype) for k, v in feed.items()}
        outputs = {k: np.asarray(v) for k, v in fn(**cast).items()}
        first = {k: v[:1] for k, v in cast.items()}
        stats = measure_latency(lambda: fn(**first), runs=LATENCY_RUNS)
    return outputs, {"p50_ms": stats.p50_ms, "p95_ms": stats.p95_ms, "runs": stats.runs}


def package_model(model: Path, out: Path, *, profile: DeviceProfile | None = None, name: str | None = None,
                  labels: list[str] | None = None, verify_data: Any = None, version: str = "1",
                  input_shapes: dict[str, list[int]] | None = None, signature: str | None = None,
                  overwrite: bool = True, sign_key: str | Path | None = None) -> Artifact:
    """Copy ``model`` into a package at ``out`` with an inferred, checked and run manifest."""
    kind = model_kind(model)
    if profile is not None and kind not in profile.formats:
        raise UsageError(f"profile {profile.name} runs {', '.join(profile.formats)}; {model} is a {kind}")
    with atomic_directory(out, overwrite=overwrite) as folder:
        model_file = "model.tflite" if kind == "tflite" else "saved_model"
        (shutil.copyfile if kind == "tflite" else shutil.copytree)(model, folder / model_file)
        default_name = model.stem if kind == "tflite" else model.name
        try:
            manifest = infer_manifest(folder, name=name or default_name, version=str(version),
                                      model_file=model_file, signature=signature)
        except ArtifactError as err:  # name the user's file, not its copy in the hidden staging folder
            raise ArtifactError(str(err).replace(str(folder / model_file), str(model))) from None
        if profile is not None:
            graph = None
            if kind == "tflite":
                from modelpress.tflite_graph import read_graph

                graph = read_graph((folder / model_file).read_bytes())
            # an integer-only device needs its integer I/O; elsewhere any dtype the interpreter runs is fine
            integer_io = profile.input_dtype in ("int8", "uint8") and kind == "tflite"
            inputs, outputs = (manifest.inputs, manifest.outputs) if integer_io else ([], [])
            raise_on(check_constraints(profile, raw_bytes(folder / model_file), graph, inputs, outputs), profile)
            manifest.profile = {"name": profile.name, "hardware": profile.hardware, "threads": profile.threads,
                                "delegate": profile.delegate, "source": profile.source}
        feed, data = feed_for(manifest.inputs, verify_data, input_shapes or {})
        outputs, latency = run_isolated("first invoke of the model", run_and_time, kind, str(folder / model_file),
                                        feed, manifest.signature, profile.threads if profile else 1,
                                        preload=LITE if kind == "tflite" else PRELOAD)
        bad = [k for k, v in outputs.items() if np.issubdtype(np.asarray(v).dtype, np.floating)
               and not np.all(np.isfinite(v))]
        if bad:
            manifest.notes.append(f"output(s) {', '.join(bad)} hold NaN or infinity on {data}")
        rows = len(next(iter(feed.values()))) if feed else 0
        hint = " (pass --verify-data to run it on real ones)" if verify_data is None else ""
        manifest.notes[0] = (f"manifest inferred from the model made elsewhere; ran once on {rows} row(s) of "
                             f"{data}{hint}")
        manifest.source = {"path": str(model), "made_elsewhere": True, "sha256": manifest.artifact.get("sha256"),
                           "bytes": raw_bytes(model)}
        manifest.artifact.update(gzip_bytes=gzip_bytes(folder / model_file), latency_ms=latency,
                                 verified_on={"data": data, "samples": rows})
        if labels:
            (folder / LABELS_NAME).write_text("\n".join(labels) + "\n", encoding="utf-8")
            manifest.labels_file = LABELS_NAME
        seal_package(folder, manifest, sign_key)
    return Artifact.open(out)
