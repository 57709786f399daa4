"""Device profiles: built-ins load and are documented; invalid ones name the field, value and choices."""

from __future__ import annotations

import json

import pytest
import yaml

from modelpress.device_profiles import builtin_profiles, load_profile
from modelpress.device_profiles.registry import _builtin_dir
from modelpress.errors import ProfileError

REQUIRED = {"server-cpu", "server-gpu", "raspberry-pi-4", "coral-edgetpu", "android-gpu", "jetson", "cortex-m"}


def test_builtins_cover_the_targets_and_cite_their_numbers():
    profiles = {p.name: p for p in builtin_profiles()}
    assert REQUIRED <= set(profiles)
    for name in REQUIRED:
        text = (_builtin_dir() / f"{name}.yaml").read_text()
        assert text.lstrip().startswith("#"), f"{name}.yaml must say where its numbers come from"
    assert profiles["coral-edgetpu"].input_dtype == "uint8" and profiles["coral-edgetpu"].allowed_ops
    assert profiles["cortex-m"].max_artifact_bytes <= 1024 * 1024 and profiles["cortex-m"].ram_budget_bytes
    assert "saved_model" in profiles["server-gpu"].formats and "saved_model" in profiles["jetson"].formats
    assert profiles["raspberry-pi-4"].threads == 4 and profiles["raspberry-pi-4"].quantization == "int8"


def test_config_round_trip():
    for profile in builtin_profiles():
        again = type(profile).from_config(profile.get_config(), source=profile.source)
        assert again == profile


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("name: x\nquantization: int2\n", "field 'quantization' is 'int2'; allowed values: none, dynamic, float16, int8"),
    ("name: x\nhardware: fpga\n", "field 'hardware' is 'fpga'; allowed values: cpu, gpu, edgetpu, mcu, npu"),
    ("name: x\nformats: [onnx]\n", "field 'formats'"),
    ("name: x\nmax_artifact_bytes: -5\n", "field 'max_artifact_bytes' is -5; expected a positive integer"),
    ("name: x\nflash: 3\n", "unknown field(s) flash; allowed fields:"),
    ("name: x\ninput_dtype: uint8\n", "integer input/output dtypes need quantization int8 or int16x8"),
    ("- not a mapping\n", "a profile must be a mapping of fields"),
    ("name: [unclosed\n", "is not valid YAML"),
])
def test_invalid_profiles_name_field_value_and_choices(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert message in str(err.value)


def test_unknown_name_lists_the_builtins():
    with pytest.raises(ProfileError, match="unknown device profile 'rpi5'; built-in profiles: android-gpu"):
        load_profile("rpi5")


def test_cli_list_show_validate(runner, cli, tmp_path):
    listed = runner.invoke(cli, ["profiles", "list"])
    assert listed.exit_code == 0
    for name in REQUIRED:
        assert name in listed.output
    as_json = json.loads(runner.invoke(cli, ["profiles", "list", "--json"]).output)
    assert {p["name"] for p in as_json} >= REQUIRED
    shown = runner.invoke(cli, ["profiles", "show", "coral-edgetpu"])
    assert shown.exit_code == 0 and yaml.safe_load(shown.output)["input_dtype"] == "uint8"
    good = tmp_path / "good.yaml"
    good.write_text("name: board\nquantization: int8\nthreads: 2\n")
    ok = runner.invoke(cli, ["profiles", "validate", str(good)])
    assert ok.exit_code == 0 and "board" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: board\nthreads: many\n")
    failed = runner.invoke(cli, ["profiles", "validate", str(bad)])
    assert failed.exit_code == 2
    assert "field 'threads' is 'many'" in failed.output and "Traceback" not in failed.output
