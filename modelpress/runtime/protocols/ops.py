"""Operational routes: the status page, Prometheus metrics, the OpenAPI document and admin::

    GET  /               HTML: models, versions, states, recent latency (templates/status.html, autoescaped)
    GET  /status         the same as JSON
    GET  /metrics        Prometheus text format
    GET  /openapi.json   every route of this app
    POST /admin/reload   scan the repository now (bearer token when auth is on)
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

from modelpress import __version__
from modelpress.runtime.http import current_runtime, json_response, protected
from modelpress.runtime.openapi import openapi_document

blueprint = Blueprint("ops", __name__, template_folder="templates")


def _status() -> dict:
    runtime = current_runtime()
    status = runtime.plane.status()
    return {"ready": runtime.plane.ready(), "version": __version__, "repository": runtime.config.repository,
            "models": {name: {"versions": rows, "latency": runtime.metrics.recent_latency(name)}
                       for name, rows in status.items()}}


@blueprint.get("/status")
def status_json():
    """Service status as JSON: readiness, and per model its versions, states, errors and recent latency."""
    return json_response(_status())


def _latency_text(latency: dict) -> str:
    if not latency["count"]:
        return "-"
    return f"p50 {latency['p50_ms']} ms, p95 {latency['p95_ms']} ms ({latency['count']})"


def _page_rows(models: dict) -> list[tuple]:
    """One row per model version (one for a model with none): model, version, state, labels, latency, error."""
    rows = []
    for name, model in models.items():
        latency = _latency_text(model["latency"])
        for row in model["versions"] or [{"version": "-", "state": "NO VERSION", "error": None, "labels": []}]:
            rows.append((name, row["version"], row["state"], ", ".join(row.get("labels", [])), latency,
                         row.get("error") or ""))
    return rows


@blueprint.get("/")
def status_page():
    """A small HTML status page: models, versions, states and recent latency."""
    data = _status()
    # the template is autoescaped (.html): model names and load errors are shown as text, never as markup
    page = render_template("status.html", version=__version__, repository=data["repository"], ready=data["ready"],
                           rows=_page_rows(data["models"]))
    return Response(page, mimetype="text/html")


@blueprint.get("/metrics")
def metrics():
    """Prometheus metrics: requests, latency (request, queue, compute), batch sizes, model states."""
    body, content_type = current_runtime().metrics.render()
    return Response(body, content_type=content_type)


@blueprint.get("/openapi.json")
def openapi():
    """This document: every route of the service."""
    return json_response(openapi_document(current_app))


@blueprint.post("/admin/reload")
@protected
def reload():
    """Scan the repository now (instead of waiting for the next poll) and return the status."""
    current_runtime().plane.reload()
    return json_response(_status())
