"""Every built-in device profile converts the example model, within its own limits."""

from __future__ import annotations

import json

import pytest

import modelpress
from modelpress.device_profiles import builtin_profiles
from modelpress.manifest import read_manifest
from modelpress.model_io import file_sha256
from modelpress.tflite_graph import read_graph

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("profile", builtin_profiles(), ids=lambda p: p.name)
def test_builtin_profile_converts_within_its_limits(profile, models, data_dir, tmp_path):
    out = tmp_path / profile.name
    art = modelpress.convert(models["keras3"], profile.name, out, calibration=data_dir / "calib.npy",
                             verify_data=data_dir / "verify.npy", labels=[str(i) for i in range(10)])
    m = read_manifest(out)
    assert m.profile["name"] == profile.name
    assert m.model_format == profile.default_format
    fid = m.fidelity
    assert fid["samples"] == 359 and not fid["random_inputs"]
    assert fid["top1_agreement"] >= max(profile.min_top1_agreement, 0.97)
    if profile.max_abs_error is not None:
        assert fid["max_abs_error"] <= profile.max_abs_error
    if profile.max_relative_error is not None:
        assert fid["max_relative_error"] <= profile.max_relative_error
    # every byte accounted for: the manifest's hash and size are the file's
    assert m.artifact["sha256"] == file_sha256(art.model_path)
    assert m.source["sha256"] == file_sha256(models["keras3"])
    if profile.max_artifact_bytes:
        assert m.artifact["bytes"] <= profile.max_artifact_bytes
    assert 0 < m.artifact["gzip_bytes"]
    assert m.labels(out) == [str(i) for i in range(10)]
    assert m.tool_versions["tensorflow"] and m.created_at
    if m.model_format == "tflite":
        graph = read_graph(art.model_path.read_bytes())
        assert graph.quantization == profile.quantization
        assert [t.dtype for t in m.inputs] == [profile.input_dtype]
        assert [t.dtype for t in m.outputs] == [profile.output_dtype]
        assert m.ops == graph.ops
        if profile.allowed_ops is not None:
            assert set(graph.ops) <= set(profile.allowed_ops)
    else:
        assert (art.model_path / "saved_model.pb").is_file()
        assert m.inputs[0].shape == [-1, 8, 8, 1]
    json.loads((out / "modelpress.json").read_text())  # plain JSON the runtime can read


def test_coral_says_plainly_when_the_edgetpu_compiler_is_missing(models, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no edgetpu_compiler here
    art = modelpress.convert(models["keras3"], "coral-edgetpu", tmp_path / "tpu", calibration=data_dir / "calib.npy")
    assert any("Edge-TPU-ready but not compiled" in note for note in art.manifest.notes)
    assert not (tmp_path / "tpu" / "model_edgetpu.tflite").exists()


def test_user_profile_from_a_yaml_file(models, data_dir, tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("name: my-board\nhardware: cpu\nquantization: dynamic\nmax_artifact_bytes: 200000\n"
                    "min_top1_agreement: 0.98\n")
    art = modelpress.convert(models["keras3"], path, tmp_path / "pkg", verify_data=data_dir / "verify.npy")
    assert art.manifest.profile["name"] == "my-board"
    assert art.manifest.quantization == "dynamic"
