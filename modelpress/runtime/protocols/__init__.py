"""Protocol blueprints over one data plane: TF Serving REST v1 (``tfserving_v1``), Open Inference v2
(``v2``) and the operational routes (``ops``: status page, metrics, OpenAPI, admin)."""
