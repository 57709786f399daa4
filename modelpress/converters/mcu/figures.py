"""A microcontroller package's figures as flat keys, for comparison tables and reports.

    row = {**artifact.summary()}            # includes these keys for an MCU / NPU package
    mcu_figures(manifest.mcu)               # {'flash_kb': 44.6, 'arena_kb': 6.1, 'arena_est_kb': 3.0, ...}

``*_est_*`` keys are estimates (from MACs and the profile's figures, or the largest live activations);
``arena_kb`` is measured on TFLite Micro; ``vela_*`` are Vela's compiler estimates.
"""

from __future__ import annotations

from typing import Any


def mcu_figures(mcu: dict[str, Any] | None) -> dict[str, Any]:
    """Flat figures from a manifest's ``mcu`` block; empty for other packages.

        mcu_figures(read_manifest("build/cortex-m").mcu)["arena_kb"]
    """
    if not isinstance(mcu, dict):
        return {}
    estimate, measured = mcu.get("estimate") or {}, mcu.get("measured") or {}
    vela = mcu.get("vela") or {}
    out: dict[str, Any] = {
        "flash_kb": _kb(measured.get("flash_bytes")), "arena_kb": _kb(measured.get("arena_bytes")),
        "arena_est_kb": _kb(estimate.get("arena_bytes")), "est_ms": estimate.get("inference_ms"),
        "macs": estimate.get("macs"), "micro_lsb": (mcu.get("micro_agreement") or {}).get("max_lsb"),
        "firmware_arena_bytes": (mcu.get("c_sources") or {}).get("arena_bytes"),
        "verified_on_mcu_runtime": mcu.get("verified"),
    }
    if vela:
        out.update(vela_ms=vela.get("inference_ms"), vela_cycles=vela.get("cycles"),
                   vela_sram_kb=_kb(vela.get("sram_bytes")), npu_ops=vela.get("npu_ops"), cpu_ops=vela.get("cpu_ops"))
    return out


def _kb(value: Any) -> float | None:
    return value / 1024 if isinstance(value, (int, float)) else None
