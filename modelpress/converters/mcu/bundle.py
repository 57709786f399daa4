"""The firmware half of a microcontroller / NPU package, added beside ``model.tflite``.

    parts = add_mcu_parts(folder, folder / "model.tflite", profile, "digits_cnn", verify_x, "verify.npy")
    parts.info["arena"]["recommended_bytes"], parts.info["micro_agreement"]["max_lsb"], parts.notes

For every ``hardware: mcu`` profile: the tensor arena measured on TFLite Micro, TFLite Micro held
against LiteRT on the verification data (within 1 LSB, or FidelityError), the estimates, and the C
sources (model_data.cc/.h, model_ops.h). For an Ethos-U profile (``npu:``) also Vela's compilation
(``model_vela.tflite``) and its figures; the C sources then carry the compiled model, which a host
cannot run (TFLite Micro's host build has no Ethos-U kernel), so it is marked unverified with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.converters.mcu.agreement import compare_with_litert, integer_inputs
from modelpress.converters.mcu.arena import HEADROOM, ArenaSize, measure_arena
from modelpress.converters.mcu.c_sources import write_c_sources
from modelpress.converters.mcu.estimates import estimate
from modelpress.converters.mcu.micro_check import require_tflite_micro
from modelpress.device_profiles import DeviceProfile
from modelpress.errors import ConstraintError
from modelpress.tflite_graph import read_graph

MICRO_SAMPLES = 256  # TFLite Micro's reference kernels run one sample at a time
ALIGN = 16
ON_SRAM = ("Sram_Only", "Shared_Sram")


@dataclass
class McuParts:
    info: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def is_mcu_profile(profile: DeviceProfile) -> bool:
    """Whether a package for ``profile`` gets the firmware files (``hardware: mcu``, Ethos-U included).

        is_mcu_profile(load_profile("ethos-u55-128"))   # True
    """
    return profile.hardware == "mcu"


def _check_ram(profile: DeviceProfile, arena_bytes: int, how: str) -> None:
    budget = profile.ram_budget_bytes
    if budget is not None and arena_bytes > budget:
        raise ConstraintError(f"artifact rejected for profile {profile.name}: the tensor arena ({how}) needs "
                              f"{arena_bytes:,} bytes, over the RAM budget of {budget:,} bytes. Compress the model "
                              "(e.g. --recipe slim-50) or choose a profile with more RAM")


def _round_up(n: float) -> int:
    return int(-(-int(np.ceil(n)) // ALIGN) * ALIGN)


def add_mcu_parts(folder: Path, model_path: Path, profile: DeviceProfile, name: str, verify_x: np.ndarray,
                  verify_source: str) -> McuParts:
    """Measure, check and write the firmware files; ConstraintError / FidelityError refuse the package.

        parts = add_mcu_parts(Path("pkg"), Path("pkg/model.tflite"), load_profile("cortex-m"), "digits",
                              x_verify, "verify.npy")
    """
    require_tflite_micro(f"profile {profile.name}")
    if profile.npu:
        from modelpress.converters.mcu.vela import vela_version

        vela_version()  # says how to install Vela before any work is done
    data = model_path.read_bytes()
    sample = integer_inputs(data, verify_x[:1])
    arena = measure_arena(data, [sample])
    _check_ram(profile, arena.minimum_bytes, "measured on TFLite Micro")
    agreement = compare_with_litert(data, verify_x[:MICRO_SAMPLES], arena.recommended_bytes, verify_source,
                                    max_lsb=profile.micro_max_lsb)
    est = estimate(profile, data)
    info: dict[str, Any] = {
        "arena": {**arena.to_dict(), "source": "measured on TFLite Micro"},
        "micro_agreement": agreement.to_dict(),
        "estimate": est.to_dict(),
        "measured": {"flash_bytes": len(data), "arena_bytes": arena.minimum_bytes},
        "verified": True, "unverified_reason": None,
    }
    notes = [f"TFLite Micro agrees with LiteRT ({agreement.kernels} kernels) within {agreement.max_lsb} LSB on "
             f"{agreement.samples} samples (same top class on {agreement.top1_agreement:.1%}); tensor arena "
             f"{arena.recommended_bytes:,} B ({arena.comment})"]
    firmware = (data, read_graph(data).ops, arena.recommended_bytes, arena.comment)
    if profile.npu:
        firmware = _add_vela(folder, model_path, profile, arena, info, notes)
    model, ops, arena_bytes, arena_comment = firmware
    sources = write_c_sources(folder, model, name, ops, arena_bytes, arena_comment)
    info["c_sources"] = {**sources.to_dict(), "arena_bytes": arena_bytes,
                         "model": info["vela"]["compiled_file"] if profile.npu else model_path.name}
    return McuParts(info=info, notes=notes)


def _add_vela(folder: Path, model_path: Path, profile: DeviceProfile, arena: ArenaSize, info: dict[str, Any],
              notes: list[str]) -> tuple[bytes, list[str], int, str]:
    """Compile for the profile's Ethos-U; record Vela's figures; the firmware's (model, ops, arena, comment)."""
    from modelpress.converters.mcu.vela import compile_with_vela

    vela = compile_with_vela(model_path, profile)
    model = (folder / vela.compiled_file).read_bytes()
    npu_arena = vela.sram_bytes if profile.npu_memory_mode in ON_SRAM else vela.arena_dram_bytes
    _check_ram(profile, npu_arena, f"Vela's arena for {vela.accelerator}")
    arena_bytes = _round_up((npu_arena + (arena.tail_bytes or 0)) * (1 + HEADROOM))
    where = "SRAM" if profile.npu_memory_mode in ON_SRAM else f"DRAM, plus {vela.sram_bytes:,} B of SRAM cache"
    comment = (f"Vela's arena {npu_arena:,} B ({where}) + TFLite Micro's bookkeeping {arena.tail_bytes or 0:,} B "
               f"(measured on the CPU graph) + {HEADROOM:.0%} headroom; not measured on the NPU")
    reason = (f"{vela.compiled_file} runs its {vela.npu_ops} NPU operator(s) only on an Ethos-U (or Arm's FVP): "
              "TFLite Micro's host build has no Ethos-U kernel. The int8 graph before Vela (model.tflite) was "
              "verified on TFLite Micro instead")
    info.update(vela=vela.to_dict(), verified=False, unverified_reason=reason)
    info["arena"]["npu_recommended_bytes"] = arena_bytes
    info["measured"]["flash_bytes"] = vela.compiled_bytes
    notes.append(f"{vela.compiled_file} compiled by Vela {vela.version} for {vela.accelerator}: {vela.npu_ops} NPU / "
                 f"{vela.cpu_ops} CPU ops, {vela.cycles:,} cycles, {vela.inference_ms:.3f} ms at "
                 f"{vela.clock_hz / 1e6:.0f} MHz (Vela's estimate); unverified: {reason}")
    return model, read_graph(model).ops, arena_bytes, comment
