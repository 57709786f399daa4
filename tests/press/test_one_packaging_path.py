"""A package is a package, whoever chose its settings: ``convert``, ``press`` and ``deploy --max-drop`` write
the same files and the same manifest for an MCU (cortex-m) and an Ethos-U NPU (ethos-u55-128), firmware half
and measured tensor arena included.

The digits MLP is pressed with the quantization branch only (full int8, what these devices run), so all three
doors package the same int8 model; the test compares what they wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelpress

pytest.importorskip("tflite_micro")
pytest.importorskip("ethosu.vela")
pytestmark = pytest.mark.integration

PROFILES = ("cortex-m", "ethos-u55-128")
LABELS = [f"digit {i}" for i in range(10)]


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def converted(mlp_path, data_dir, labels_file, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("converted")
    return {p: modelpress.convert(mlp_path, p, folder / p, calibration=data_dir / "calib.npy",
                                  verify_data=data_dir / "verify.npy", labels=labels_file, name="digits").path
            for p in PROFILES}


@pytest.fixture(scope="module")
def pressed(mlp_path, data_dir, labels_file, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pressed")
    result = modelpress.press(mlp_path, list(PROFILES), data_dir / "data.npz", out=folder / "out", max_drop=5.0,
                              families=["quantize"], cache=folder / "cache", name="digits", labels=labels_file,
                              progress=False)
    assert result.met, result.messages
    return result.packages


@pytest.fixture(scope="module")
def deployed(mlp_path, data_dir, labels_file, tmp_path_factory) -> dict[str, Path]:
    from click.testing import CliRunner

    from modelpress.cli.main import cli

    repo = tmp_path_factory.mktemp("deployed") / "repo"
    packages = {}
    for profile in PROFILES:  # one profile a call: the 1 s budget then leaves the quantization trial only
        result = CliRunner().invoke(cli, ["deploy", str(mlp_path), "-p", profile, "-d", str(data_dir / "data.npz"),
                                          "--max-drop", "5", "--time-budget", "1s", "-r", str(repo), "--name",
                                          f"digits-{profile}", "--labels", str(labels_file)])
        assert result.exit_code == 0, result.output
        packages[profile] = repo / f"digits-{profile}" / "1"
    return packages


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _shape(manifest) -> dict:
    """What a manifest holds, key by key (not the values that differ by chooser: notes, source, fidelity)."""
    data = manifest.to_dict()
    return {"keys": set(data), "mcu": set(manifest.mcu), "arena": set(manifest.mcu["arena"]),
            "c_sources": set(manifest.mcu["c_sources"]), "tool_versions": set(manifest.tool_versions),
            "artifact": set(manifest.artifact), "fidelity": set(manifest.fidelity),
            "roles": [(s.role, s.dtype) for s in manifest.inputs + manifest.outputs],
            "labels_file": manifest.labels_file, "quantization": manifest.quantization,
            "profile": manifest.profile["name"]}


@pytest.mark.parametrize("profile", PROFILES)
def test_press_and_deploy_packages_hold_what_convert_writes(profile, converted, pressed, deployed):
    reference = converted[profile]
    want_files = _files(reference)
    assert {"model.tflite", "modelpress.json", "model_data.cc", "model_data.h", "model_ops.h",
            "labels.txt"} <= want_files
    if profile.startswith("ethos-u"):
        assert "model_vela.tflite" in want_files
    want = _shape(modelpress.read_manifest(reference))
    for door, folder in (("press", pressed[profile]), ("deploy --max-drop", deployed[profile])):
        assert _files(folder) == want_files, door
        manifest = modelpress.read_manifest(folder)
        assert _shape(manifest) == want, door
        arena = manifest.mcu["arena"]
        assert arena["source"] == "measured on TFLite Micro", door
        assert 0 < arena["minimum_bytes"] <= arena["recommended_bytes"], door
        assert manifest.mcu["micro_agreement"]["max_lsb"] <= 1, door
        header = (folder / "model_data.h").read_text()
        define = manifest.mcu["c_sources"]["arena_define"]
        assert f"#define {define} {manifest.mcu['c_sources']['arena_bytes']}" in header, door
        assert (folder / "labels.txt").read_text().splitlines() == LABELS, door
        assert manifest.fidelity["top1_agreement"] >= manifest.fidelity["min_top1_agreement"], door
        assert "chosen by modelpress press" in manifest.notes[0], door


def test_deploy_names_the_firmware_after_the_published_model(deployed):
    """The C sources are written for the repository's model name, not re-labelled after the fact."""
    manifest = modelpress.read_manifest(deployed["cortex-m"])
    assert manifest.name == "digits-cortex-m" and manifest.version == "1"
    assert manifest.mcu["c_sources"]["arena_define"] == "DIGITS_CORTEX_M_TENSOR_ARENA_SIZE"
    assert "DIGITS_CORTEX_M_TENSOR_ARENA_SIZE" in (deployed["cortex-m"] / "model_data.h").read_text()
