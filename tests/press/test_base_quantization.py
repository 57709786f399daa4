"""The quantization compressed candidates are built on: what press says when none passed to carry them."""

from __future__ import annotations


def test_only_a_compression_branch_with_int8_missing_says_which_quantizations_were_left_out(loud_mlp_path,
                                                                                             data_dir, tmp_path):
    """--only slim tries int8 alone as the base quantization; where int8 misses, press says so and names the
    device's quantizations the user left out, instead of claiming that every quantization misses."""
    import modelpress

    result = modelpress.press(loud_mlp_path, ["raspberry-pi-4"], data_dir / "data.npz", out=tmp_path / "out",
                              families=["slim"], epochs=1, cache=tmp_path / "cache", progress=False)
    assert not result.met and [t.settings.quantization for t in result.search.trials] == ["int8"]
    note = next(n for n in result.search.notes if "compression was skipped" in n)
    assert "the only quantization tried" in note and "--only quantize" in note and "float16" in note
