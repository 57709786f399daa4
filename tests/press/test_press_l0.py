"""press's L0 branch: hard-concrete gates, their strength found by bisection, exact zeros in what it ships."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modelpress

pytestmark = pytest.mark.integration


def test_press_finds_a_gated_model_with_exact_zeros_within_the_budget(mlp_path, data_dir, tmp_path):
    from modelpress.model_io import load_model
    from modelpress.search.cache import TrialCache

    result = modelpress.press(mlp_path, ["raspberry-pi-4"], data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=2.0, epochs=2, families=["l0"], cache=tmp_path / "cache", progress=False)
    gated = [t for t in result.search.trials if t.settings.family == "l0"]
    strengths = [t.settings.steps[0]["strength"] for t in gated]
    assert strengths[0] == pytest.approx(10 ** 1.25, rel=1e-3) and len(set(strengths)) >= 3  # bisection on log10 λ
    runs = [(t.settings.steps[0]["strength"], t.settings.steps[0]["epochs"]) for t in gated]
    assert len(set(runs)) == len(runs)  # a strength tried twice is the near miss's one longer retry
    # gates train over ~540k samples, at most ten times the fine-tuning epochs (1.3k digits: the cap), doubled on retry
    assert {epochs for _, epochs in runs} <= {20, 40}
    # no int4 trial of the source (families=["l0"]): the candidates stay int8, with no int4 grid step
    assert all(t.settings.quantization == "int8" and len(t.settings.steps) == 1 for t in gated)
    passed = [t for t in gated if t.passed]
    assert passed, [(t.describe(), t.drop_points) for t in gated]
    chosen = result.chosen["raspberry-pi-4"]
    assert chosen.settings.family == "l0" and chosen.drop_points + chosen.margin_points <= 2.0
    plain = next(t for t in result.search.trials if t.settings.family == "quantize"
                 and t.settings.quantization == chosen.settings.quantization)
    assert chosen.gzip_bytes < plain.gzip_bytes  # the zeros pay off in the shipped file
    model, _ = TrialCache(tmp_path / "cache").load_model(chosen.model_key)
    fc1 = np.asarray(model.get_layer("fc1").kernel)
    assert (fc1 == 0).mean() >= 0.5  # exact zeros, from gates that closed during training
    assert [w.shape for w in model.get_weights()] == [w.shape for w in load_model(mlp_path).model.get_weights()]
    # what ships is that model without the units its gates left dead (same answers, checked in the package's
    # verification against the fine-tuned model): the artifact's kernels have the narrowed widths
    from modelpress.compressor.narrowing import narrow_model

    narrow = narrow_model(model)
    assert chosen.narrowed == narrow.kept and narrow.removed > 0, chosen.narrowed
    shapes = _kernel_shapes(TrialCache(tmp_path / "cache").artifact(chosen.artifact_key))
    assert [w.shape[::-1] for w in narrow.model.get_weights()[::2]] == shapes
    # and without the strings a deployed file does not need; the package (verified on writing) says so
    from modelpress.converters.stripping import names_stripped

    assert names_stripped(TrialCache(tmp_path / "cache").artifact(chosen.artifact_key))
    notes = " ".join(json.loads((tmp_path / "out" / "raspberry-pi-4" / "modelpress.json").read_text())["notes"])
    assert "fc1 keeps" in notes and "tensor names" in notes and "stripped" in notes


def _kernel_shapes(blob: bytes) -> list[tuple[int, ...]]:
    """The (out, in) shapes of a .tflite's fully connected weights, in graph order, read from the flatbuffer."""
    import tflite

    model = tflite.Model.GetRootAsModel(blob, 0)
    graph = model.Subgraphs(0)
    shapes = []
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == tflite.BuiltinOperator.FULLY_CONNECTED:
            shapes.append(tuple(int(d) for d in graph.Tensors(op.Inputs(1)).ShapeAsNumpy()))
    return shapes
