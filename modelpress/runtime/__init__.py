"""The serving runtime: a Flask service for a repository of model packages, speaking TF Serving REST v1
and Open Inference v2, with no TensorFlow unless a SavedModel package is served::

    from modelpress.runtime import create_app, serve
    app = create_app({"repository": "models/"})   # a WSGI app to embed
    serve({"repository": "models/", "port": 8500})  # or run it under granian / waitress
"""

from __future__ import annotations

from modelpress.runtime.app import create_app
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.server import serve

__all__ = ["RuntimeConfig", "create_app", "serve"]
