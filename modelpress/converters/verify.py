"""Verification: run the artifact and its source on the same samples and measure the disagreement.

The TFLite artifact runs through :class:`modelpress.tflite_interpreter.TFLiteModel`, the code the
runtime serves it with, so what is verified is what is served::

    report = measure_fidelity(reference=source.predict(x), candidate=artifact_outputs)
    report.top1_agreement, report.max_abs_error
    check_fidelity(report, profile)   # FidelityError below the profile's minimum
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from modelpress.device_profiles import DeviceProfile
from modelpress.errors import FidelityError


@dataclass
class Fidelity:
    samples: int
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float | None
    min_top1_agreement: float
    max_abs_error_allowed: float | None
    data: str
    random_inputs: bool

    def to_dict(self) -> dict:
        return asdict(self)


def is_classifier(outputs: np.ndarray) -> bool:
    return outputs.ndim == 2 and outputs.shape[1] > 1


def measure_fidelity(reference: np.ndarray, candidate: np.ndarray, profile: DeviceProfile, data: str,
                     random_inputs: bool) -> Fidelity:
    reference = np.asarray(reference, dtype=np.float32)
    candidate = np.asarray(candidate, dtype=np.float32).reshape(reference.shape)
    error = np.abs(reference - candidate)
    agreement = None
    if is_classifier(reference):
        agreement = float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))
    return Fidelity(
        samples=int(len(reference)),
        max_abs_error=float(error.max()) if error.size else 0.0,
        mean_abs_error=float(error.mean()) if error.size else 0.0,
        top1_agreement=agreement,
        min_top1_agreement=float(profile.min_top1_agreement),
        max_abs_error_allowed=profile.max_abs_error,
        data=data,
        random_inputs=random_inputs,
    )


def check_fidelity(fidelity: Fidelity, profile_name: str) -> None:
    if fidelity.top1_agreement is not None and fidelity.top1_agreement < fidelity.min_top1_agreement:
        raise FidelityError(
            f"top-1 agreement with the source model is {fidelity.top1_agreement:.2%} on {fidelity.samples} "
            f"samples; profile {profile_name} needs at least {fidelity.min_top1_agreement:.2%}. Calibrate "
            "on more representative data, choose a milder quantization (--quantization float16), or lower "
            "the floor with --min-agreement"
        )
    allowed = fidelity.max_abs_error_allowed
    if allowed is not None and fidelity.max_abs_error > allowed:
        raise FidelityError(
            f"max absolute error against the source model is {fidelity.max_abs_error:.3g}; profile "
            f"{profile_name} allows at most {allowed:.3g}. Calibrate on more representative data, choose a "
                "milder quantization, or use a profile with a looser max_abs_error"
        )
