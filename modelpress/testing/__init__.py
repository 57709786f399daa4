"""Helpers that tests and benchmarks share (real data sets that load offline, small models to train).

    from modelpress.testing.datasets import fashion_mnist
"""
