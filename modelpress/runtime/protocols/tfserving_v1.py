"""TF Serving REST API v1: model status, metadata and ``:predict`` (row and columnar forms), each one view
that answers for the newest available version, one version (``/versions/2``) or the version a label points
at (``/labels/stable``)::

    GET  /v1/models/digits                      {"model_version_status": [{"version": "2", "state": ...}]}
    GET  /v1/models/digits/labels/stable/metadata
    POST /v1/models/digits/versions/2:predict   {"instances": [[[[0.0], ...]]]}  -> {"predictions": [...]}
"""

from __future__ import annotations

from flask import Blueprint, g, request

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs.arrays import tf_datatype
from modelpress.runtime.codecs.json import parse_json
from modelpress.runtime.codecs.v1 import v1_array, v1_encode, v1_inputs
from modelpress.runtime.http import current_runtime, json_response, protected
from modelpress.runtime.state import ModelState

blueprint = Blueprint("v1", __name__, url_prefix="/v1/models")
SIGNATURE = "serving_default"
#: the route defaults of each form: the newest version, one version, a label's version
NEWEST, VERSION, LABEL = {"version": None, "label": None}, {"label": None}, {"version": None}


def _status_rows(model: str, version: str | None = None, label: str | None = None) -> list[dict]:
    rows = [r for r in current_runtime().plane.status(model, version, label)[model] if r["version"] is not None]
    out = []
    for row in rows:
        failed = row["state"] == ModelState.FAILED  # TF Serving has no FAILED: an END with an error
        out.append({"version": str(row["version"]), "state": ModelState.END if failed else row["state"],
                    "status": {"error_code": "UNKNOWN" if failed else "OK", "error_message": row["error"] or ""}})
    return out


@blueprint.get("/<model>", defaults=NEWEST)
@blueprint.get("/<model>/versions/<version>", endpoint="version_status", defaults=VERSION)
@blueprint.get("/<model>/labels/<label>", endpoint="label_status", defaults=LABEL)
def model_status(model: str, version: str | None, label: str | None):
    """TF Serving model status: every version of a model and its state, or only the one a version number or
    a label names."""
    return json_response({"model_version_status": _status_rows(model, version, label)})


def _tensor_info(spec) -> dict:
    return {"dtype": tf_datatype(spec.dtype), "name": spec.name,
            "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape], "unknown_rank": False}}


@blueprint.get("/<model>/metadata", defaults=NEWEST)
@blueprint.get("/<model>/versions/<version>/metadata", endpoint="version_metadata", defaults=VERSION)
@blueprint.get("/<model>/labels/<label>/metadata", endpoint="label_metadata", defaults=LABEL)
def metadata(model: str, version: str | None, label: str | None):
    """TF Serving metadata (signature_def) of the newest available version, of one version or of the version
    a label points at."""
    meta = current_runtime().plane.metadata(model, version, label)
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


@blueprint.post("/<model>:predict", defaults=NEWEST)
@blueprint.post("/<model>/versions/<version>:predict", endpoint="version_predict", defaults=VERSION)
@blueprint.post("/<model>/labels/<label>:predict", endpoint="label_predict", defaults=LABEL)
@protected
def predict(model: str, version: str | None, label: str | None):
    """TF Serving predict on the newest available version, one version or the version a label points at:
    {"instances": [...]} or {"inputs": ...}."""
    runtime = current_runtime()
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
