"""The doors of the service, one module each over the same data plane: TF Serving REST v1 (``tfserving_v1``),
Open Inference v2 (``v2``), its repository extension (``repository``) and the operational routes (``ops``:
status page, metrics, OpenAPI, admin). Each operation is one view; the forms of its route (newest version,
one version, a label) are rules stacked on that view, each under the endpoint its OpenAPI operation id
keeps. The checks before a body is read and the request's record are not here but in
:mod:`modelpress.runtime.checks` and :mod:`modelpress.runtime.requestlog`, shared with the fast path."""
