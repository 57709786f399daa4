"""The Python API behind the CLI: one module per workflow, re-exported by ``modelpress``.

    import modelpress
    modelpress.convert(...)     # defined in modelpress.api.convert
    modelpress.compress(...)    # defined in modelpress.api.compress
    modelpress.deploy(...)      # defined in modelpress.api.deploy

Import the functions from ``modelpress`` (or from their modules): ``modelpress.api.convert`` is the
module. Nothing heavy at import time; each function imports TensorFlow when it runs.
"""
