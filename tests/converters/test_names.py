"""Inputs and outputs are matched by name, never by position: Keras dict and list outputs, several inputs
in an order TFLite changes, and a SavedModel with three named outputs (the case that used to fail with
"cannot reshape array"). Fidelity is recorded per output, with each tensor's role."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import modelpress
from modelpress.testing.models import write_multi_output_saved_model
from modelpress.tflite_interpreter import TFLiteModel

pytestmark = pytest.mark.integration


def _two_input_dict_model():
    keras.utils.set_random_seed(0)
    image = keras.Input((6,), name="image")
    meta = keras.Input((3,), name="meta")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([image, meta]))
    return keras.Model({"image": image, "meta": meta},
                       {"kind": keras.layers.Dense(4, activation="softmax", name="kind")(h),
                        "size": keras.layers.Dense(1, name="size")(h)})


def test_dict_inputs_and_outputs_are_matched_by_name(tmp_path):
    model = _two_input_dict_model()
    rng = np.random.default_rng(1)
    data = {"image": rng.random((40, 6), dtype=np.float32), "meta": rng.random((40, 3), dtype=np.float32)}
    art = modelpress.convert(model, "server-cpu", tmp_path / "pkg", verify_data=data)
    manifest = art.manifest
    assert {s.name for s in manifest.inputs} == {"image", "meta"}
    assert {(s.name, s.role) for s in manifest.outputs} == {("kind", "class_scores"), ("size", "values")}
    per_output = manifest.fidelity["outputs"]
    assert set(per_output) == {"kind", "size"} and per_output["kind"]["top1_agreement"] == 1.0
    assert per_output["size"]["max_abs_error"] < 1e-4
    # the artifact answers by the same names, whatever order its tensors are in
    answer = TFLiteModel(art.model_path).predict_named(data)
    expected = model(data)
    for name in ("kind", "size"):
        np.testing.assert_allclose(answer[name], np.asarray(expected[name]), atol=1e-5)


def test_list_outputs_of_a_legacy_h5_model_through_the_cli(runner, cli, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    x = tf_keras.Input((5,), name="features")
    h = tf_keras.layers.Dense(6, activation="relu")(x)
    model = tf_keras.Model(x, [tf_keras.layers.Dense(3, activation="softmax", name="species")(h),
                               tf_keras.layers.Dense(1, name="position")(h)])
    model.save(tmp_path / "two.h5")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((30, 5), dtype=np.float32))
    result = runner.invoke(cli, ["convert", str(tmp_path / "two.h5"), "-p", "server-cpu", "-o", str(tmp_path / "pkg"),
                                 "--verify-data", str(tmp_path / "x.npy")])
    assert result.exit_code == 0, result.output
    assert "fidelity of   species: top-1 agreement 100.00%" in result.output
    assert "fidelity of   position: max |err|" in result.output
    manifest = json.loads((tmp_path / "pkg" / "modelpress.json").read_text())
    assert {o["name"] for o in manifest["outputs"]} == {"species", "position"}
    assert set(manifest["fidelity"]["outputs"]) == {"species", "position"}


@pytest.mark.parametrize("profile", ["server-cpu", "raspberry-pi-4"])
def test_a_multi_output_saved_model_is_verified_output_by_output(tmp_path, profile):
    path = write_multi_output_saved_model(tmp_path / "audio_sm")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "audio.npy", rng.normal(size=(120, 16)).astype(np.float32))
    art = modelpress.convert(path, profile, tmp_path / "pkg", calibration=tmp_path / "audio.npy")
    per_output = art.manifest.fidelity["outputs"]
    assert set(per_output) == {"scores", "embedding", "spectrogram"}
    assert {o["artifact_output"] for o in per_output.values()} == set(per_output)  # same names in the artifact
    assert per_output["scores"]["role"] == "class_scores" and per_output["spectrogram"]["role"] == "values"
    if profile == "server-cpu":
        assert max(o["max_abs_error"] for o in per_output.values()) < 1e-4
    else:
        assert per_output["scores"]["top1_agreement"] >= 0.95


def test_a_keras_export_saved_model_keeps_its_signature_names(tmp_path):
    import tensorflow as tf

    model = _two_input_dict_model()
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    signature = tf.saved_model.load(str(tmp_path / "exported")).signatures["serving_default"]
    input_names = set(signature.structured_input_signature[1])
    output_names = set(signature.structured_outputs)  # what TensorFlow itself reads from the export
    assert len(input_names) == 2 and len(output_names) == 2
    art = modelpress.convert(tmp_path / "exported", "server-cpu", tmp_path / "pkg")
    assert {s.name for s in art.manifest.inputs} == input_names
    assert {s.name for s in art.manifest.outputs} == output_names == set(art.manifest.fidelity["outputs"])
    # the artifact answers under those names, each as the export does
    rng = np.random.default_rng(2)
    feed = {name: rng.random((16, *spec.shape[1:]), dtype=np.float32)
            for name, spec in signature.structured_input_signature[1].items()}
    answer = TFLiteModel(art.model_path).predict_named(feed)
    expected = signature(**{name: tf.constant(value) for name, value in feed.items()})
    assert set(answer) == output_names
    for name in output_names:
        np.testing.assert_allclose(answer[name], expected[name].numpy(), atol=1e-5)


def test_ops_without_a_tflite_builtin_are_named(tmp_path):
    import tensorflow as tf

    from modelpress.errors import ConstraintError, ConversionError

    class Determinant(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3, 3], tf.float32, name="m")])
        def serve(self, m):
            return {"det": tf.reshape(tf.linalg.det(m), [-1, 1])}

    module = Determinant()
    signatures = {"serving_default": module.serve.get_concrete_function()}
    tf.saved_model.save(module, str(tmp_path / "det"), signatures=signatures)
    with pytest.raises(ConstraintError, match="no builtin kernel for: MatrixDeterminant; ops builtins cannot run them"):
        modelpress.convert(tmp_path / "det", "server-cpu", tmp_path / "pkg")
    flex = tmp_path / "flex.yaml"
    flex.write_text("name: server-flex\nhardware: cpu\nformats: [tflite]\nquantization: none\nop_set: select_tf_ops\n")
    with pytest.raises(ConversionError, match=r"converted with Flex ops \(FlexMatrixDeterminant\), but no interpreter"):
        modelpress.convert(tmp_path / "det", flex, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()
