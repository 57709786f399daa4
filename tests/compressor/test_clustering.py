"""Weight clustering: exact cluster counts, zeros kept when asked, both Keras flavours; QAT; distillation."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.compressor.clustering import kmeans_1d
from tests.compressor.conftest import kernels

pytest.importorskip("tensorflow")


def test_kmeans_finds_k_centroids():
    values = np.random.default_rng(0).normal(size=5000)
    centroids, assign = kmeans_1d(values, 16)
    assert len(centroids) == 16 and len(np.unique(assign)) == 16
    assert np.all(np.diff(centroids) > 0)


def _compress(model, recipe, data, **kwargs):
    import modelpress

    return modelpress.compress(model, recipe, data, measure_int8=False, **kwargs)


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_cluster_16_gives_exactly_16_values_per_kernel(flavor, request, data):
    model = request.getfixturevalue(f"mlp_{flavor}")
    clustered, report = _compress(model, "cluster-16", data)
    for name, kernel in kernels(clustered).items():
        assert np.unique(kernel).size == 16, name
    assert ("tfmot" if flavor == "tf_keras" else "native") in report.steps[0]["summary"]
    assert all(row["unique_values"] == 16 for row in report.layers)
    # stated bound: within 3 points of the original after 2 epochs of centroid fine-tuning
    assert report.accuracy_after >= report.accuracy_before - 0.03


def test_sparsity_preserving_clustering_keeps_every_zero(mlp_keras3, data):
    recipe = {"name": "p-c", "finetune": {"epochs": 1},
              "steps": [{"type": "prune", "sparsity": 0.7},
                        {"type": "cluster", "clusters": 8, "preserve_sparsity": True}]}
    model, report = _compress(mlp_keras3, recipe, data)
    for name, kernel in kernels(model).items():
        assert int((kernel == 0).sum()) == round(0.7 * kernel.size), name
        assert np.unique(kernel).size == 8, name  # zero and 7 shared non-zero values


@pytest.mark.integration
def test_deep_compression_tf_keras_path(mlp_tf_keras, data):
    import modelpress
    from modelpress.model_io import keras_flavor

    model, report = modelpress.compress(mlp_tf_keras, "deep-compression", data)
    assert keras_flavor(model) == "tf_keras"
    for name, kernel in kernels(model).items():
        assert int((kernel == 0).sum()) == round(0.9 * kernel.size), name
        assert np.unique(kernel).size <= 16, name
    summary = report.summary()
    assert summary["gzip_ratio_int8_vs_source"] > 10
    assert report.sizes_after["int8_tflite_gzip_bytes"] < report.sizes_before["int8_tflite_gzip_bytes"] / 2
    # a 6k-parameter MLP left with 10% of its weights after 135 steps of fine-tuning whose rate decays once the
    # pruning ramp ends. Measured on the 359 held-out digits for sources trained from seeds 0/1/2: 21.7, 17.0 and
    # 18.1 points lost (this test's source is seed 0), so the bound is 25 points; int8 within 2 points of float
    assert report.accuracy_after >= report.accuracy_before - 0.25
    assert summary["int8_accuracy_after"] >= report.accuracy_after - 0.02


@pytest.mark.integration
def test_qat_on_tf_keras_trains_under_fake_quantization(mlp_tf_keras, data):
    model, report = _compress(mlp_tf_keras, "qat-int8", data)
    assert "tfmot" in report.steps[0]["summary"]
    assert not np.allclose(kernels(model)["fc1"], kernels(mlp_tf_keras)["fc1"])
    assert report.accuracy_after >= report.accuracy_before - 0.03


def test_qat_on_keras3_trains_under_int8_weight_fake_quantization(mlp_keras3, data):
    model, report = _compress(mlp_keras3, "qat-int8", data)
    assert "fake-quantization" in report.steps[0]["summary"]
    assert any("straight-through" in note for note in report.notes)
    assert not np.allclose(kernels(model)["fc1"], kernels(mlp_keras3)["fc1"])  # it trained
    assert report.accuracy_after >= report.accuracy_before - 0.03


def test_distillation_is_off_by_default_and_runs_when_asked(mlp_keras3, data):
    _, plain = _compress(mlp_keras3, "cluster-16", data)
    assert not any("distillation" in note for note in plain.notes)
    recipe = {"name": "kd", "finetune": {"epochs": 3, "distill": {"alpha": 0.7, "temperature": 3}},
              "steps": [{"type": "prune", "sparsity": 0.8}]}
    model, report = _compress(mlp_keras3, recipe, data)
    assert any("distillation" in note and "0.7" in note for note in report.notes)
    # stated bound for 80% pruning of a 6k-parameter MLP in 3 epochs (distillation did not beat plain
    # fine-tuning on digits: 91.9% vs 95.5%)
    assert report.accuracy_after >= report.accuracy_before - 0.08
