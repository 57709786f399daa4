"""TF Serving REST API v1: model status, metadata and ``:predict`` (row and columnar forms)::

    GET  /v1/models/digits                      {"model_version_status": [{"version": "2", "state": ...}]}
    GET  /v1/models/digits/labels/stable/metadata
    POST /v1/models/digits/versions/2:predict   {"instances": [[[[0.0], ...]]]}  -> {"predictions": [...]}
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs.arrays import tf_datatype
from modelpress.runtime.codecs.json import parse_json
from modelpress.runtime.codecs.v1 import v1_array, v1_encode, v1_inputs
from modelpress.runtime.http import json_response, protected
from modelpress.runtime.state import ModelState

blueprint = Blueprint("v1", __name__, url_prefix="/v1/models")
SIGNATURE = "serving_default"


def _runtime():
    return current_app.extensions["modelpress"]


def _status_rows(model: str, version: str | None = None, label: str | None = None) -> list[dict]:
    rows = [r for r in _runtime().plane.status(model, version, label)[model] if r["version"] is not None]
    out = []
    for row in rows:
        failed = row["state"] == ModelState.FAILED  # TF Serving has no FAILED: an END with an error
        out.append({"version": str(row["version"]), "state": ModelState.END if failed else row["state"],
                    "status": {"error_code": "UNKNOWN" if failed else "OK", "error_message": row["error"] or ""}})
    return out


@blueprint.get("/<model>")
def model_status(model: str):
    """TF Serving model status: every version of a model and its state."""
    return json_response({"model_version_status": _status_rows(model)})


@blueprint.get("/<model>/versions/<version>")
def version_status(model: str, version: str):
    """TF Serving model status of one version."""
    return json_response({"model_version_status": _status_rows(model, version=version)})


@blueprint.get("/<model>/labels/<label>")
def label_status(model: str, label: str):
    """TF Serving model status of the version a label points at."""
    return json_response({"model_version_status": _status_rows(model, label=label)})


def _tensor_info(spec) -> dict:
    return {"dtype": tf_datatype(spec.dtype), "name": spec.name,
            "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape], "unknown_rank": False}}


def _metadata(model: str, version: str | None = None, label: str | None = None):
    meta = _runtime().plane.metadata(model, version, label)
    g.version = str(meta.version)
    signature = {"inputs": {s.name: _tensor_info(s) for s in meta.inputs},
                 "outputs": {s.name: _tensor_info(s) for s in meta.outputs},
                 "method_name": "tensorflow/serving/predict"}
    return json_response({
        "model_spec": {"name": model, "signature_name": "", "version": str(meta.version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}},
                     "modelpress": {"profile": meta.profile, "quantization": meta.quantization,
                                    "platform": meta.platform}},
    })


@blueprint.get("/<model>/metadata")
def metadata(model: str):
    """TF Serving metadata (signature_def) of the newest available version."""
    return _metadata(model)


@blueprint.get("/<model>/versions/<version>/metadata")
def version_metadata(model: str, version: str):
    """TF Serving metadata of one version."""
    return _metadata(model, version=version)


@blueprint.get("/<model>/labels/<label>/metadata")
def label_metadata(model: str, label: str):
    """TF Serving metadata of the version a label points at."""
    return _metadata(model, label=label)


def _predict(model: str, version: str | None = None, label: str | None = None):
    runtime = _runtime()
    body = parse_json(request.get_data(cache=False), runtime.config.max_json_depth)
    if isinstance(body, dict) and body.get("signature_name", SIGNATURE) not in (SIGNATURE, ""):
        raise BadRequestError(f"signature_name {body['signature_name']!r} is unknown; the only signature is "
                              f"{SIGNATURE!r}")
    with runtime.plane.model(model, version, label) as served:
        g.version = str(served.version)
        specs = served.manifest.inputs
        values, form = v1_inputs(body, specs)
        named = {s.name: v1_array(values[s.name], runtime.plane.input_dtype(s), s.shape, f"input {s.name!r}")
                 for s in specs}
        outputs = runtime.plane.predict(served, named)
    return json_response(v1_encode(outputs, form))


@blueprint.post("/<model>:predict")
@protected
def predict(model: str):
    """TF Serving predict on the newest available version: {"instances": [...]} or {"inputs": ...}."""
    return _predict(model)


@blueprint.post("/<model>/versions/<version>:predict")
@protected
def version_predict(model: str, version: str):
    """TF Serving predict on one version."""
    return _predict(model, version=version)


@blueprint.post("/<model>/labels/<label>:predict")
@protected
def label_predict(model: str, label: str):
    """TF Serving predict on the version a label points at."""
    return _predict(model, label=label)
