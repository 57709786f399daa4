"""Operational routes: the status page, Prometheus metrics, the OpenAPI document and admin::

    GET  /               HTML: models, versions, states, recent latency
    GET  /status         the same as JSON
    GET  /metrics        Prometheus text format
    GET  /openapi.json   every route of this app
    POST /admin/reload   scan the repository now (bearer token when auth is on)
"""

from __future__ import annotations

import html

from flask import Blueprint, Response, current_app

from modelpress import __version__
from modelpress.runtime.http import json_response, protected
from modelpress.runtime.openapi import openapi_document

blueprint = Blueprint("ops", __name__)


def _runtime():
    return current_app.extensions["modelpress"]


def _status() -> dict:
    runtime = _runtime()
    status = runtime.plane.status()
    return {"ready": runtime.plane.ready(), "version": __version__, "repository": runtime.config.repository,
            "models": {name: {"versions": rows, "latency": runtime.metrics.recent_latency(name)}
                       for name, rows in status.items()}}


@blueprint.get("/status")
def status_json():
    """Service status as JSON: readiness, and per model its versions, states, errors and recent latency."""
    return json_response(_status())


@blueprint.get("/")
def status_page():
    """A small HTML status page: models, versions, states and recent latency."""
    data = _status()
    rows = []
    for name, model in data["models"].items():
        latency = model["latency"]
        lat = "-" if not latency["count"] else \
            f"p50 {latency['p50_ms']} ms, p95 {latency['p95_ms']} ms ({latency['count']})"
        for row in model["versions"] or [{"version": "-", "state": "NO VERSION", "error": None, "labels": []}]:
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                name, row["version"], row["state"], ", ".join(row.get("labels", [])), lat, row.get("error") or ""))
                + "</tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>modelpress</title>
<style>body{{font-family:sans-serif;margin:2em}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}</style>
</head><body><h1>modelpress {html.escape(__version__)}</h1>
<p>repository <code>{html.escape(str(data["repository"]))}</code> &middot; {"ready" if data["ready"] else "loading"}
&middot; <a href="/metrics">metrics</a> &middot; <a href="/openapi.json">OpenAPI</a></p>
<table><tr><th>model</th><th>version</th><th>state</th><th>labels</th><th>recent latency</th><th>error</th></tr>
{"".join(rows) or '<tr><td colspan="6">no models in the repository</td></tr>'}</table></body></html>"""
    return Response(page, mimetype="text/html")


@blueprint.get("/metrics")
def metrics():
    """Prometheus metrics: requests, latency (request, queue, compute), batch sizes, model states."""
    body, content_type = _runtime().metrics.render()
    return Response(body, content_type=content_type)


@blueprint.get("/openapi.json")
def openapi():
    """This document: every route of the service."""
    return json_response(openapi_document(current_app))


@blueprint.post("/admin/reload")
@protected
def reload():
    """Scan the repository now (instead of waiting for the next poll) and return the status."""
    _runtime().plane.reload()
    return json_response(_status())
