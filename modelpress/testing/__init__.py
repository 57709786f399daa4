"""Helpers that the test suite and the benchmarks share (a benchmark is a user of the package like any
other, so neither imports from ``tests/``): a real ``modelpress serve`` process on loopback and a model
repository laid out the way a deploy leaves it::

    from modelpress.testing.server import served
    from modelpress.testing.repository import add_version

    add_version(repo, "digits", 1, "tests/runtime/fixtures/packages/float32")
    with served(repo, "--poll-interval", "0") as server:
        requests.get(server.url + "/v2/health/ready")

Real data sets that load offline and small models to train are in ``datasets`` and ``reference_models``; tiny
models "made elsewhere" (every dtype, stateful, multi-output) in ``models``::

    from modelpress.testing.datasets import fashion_mnist

Nothing here imports TensorFlow, Flask or a test framework at import time.
"""
