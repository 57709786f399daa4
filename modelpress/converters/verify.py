"""Verification: run the artifact and its source on the same samples and measure the disagreement.

The TFLite artifact runs through :class:`modelpress.tflite_interpreter.TFLiteModel`, the code the
runtime serves it with, so what is verified is what is served::

    report = measure_fidelity(reference=source.predict(x), candidate=artifact_outputs)
    report.top1_agreement, report.max_abs_error
    check_fidelity(report, profile)   # FidelityError below the profile's minimum

Multi-output models are compared output by output, matched by name (never by position: TFLite orders
outputs its own way)::

    report = measure_outputs({"tempo": ref_t, "beats": ref_b}, {"beats": cand_b, "tempo": cand_t}, ...)
    report.outputs["tempo"]["top1_agreement"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from modelpress.device_profiles import DeviceProfile
from modelpress.errors import ConversionError, FidelityError
from modelpress.manifest import output_role


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
    outputs: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def is_classifier(outputs: np.ndarray) -> bool:
    return outputs.ndim == 2 and outputs.shape[1] > 1


def measure_fidelity(reference: np.ndarray, candidate: np.ndarray, profile: DeviceProfile, data: str,
                     random_inputs: bool) -> Fidelity:
    reference = np.asarray(reference, dtype=np.float32)
    candidate = np.asarray(candidate, dtype=np.float32)
    if candidate.shape != reference.shape:
        if candidate.size != reference.size:
            raise ConversionError(f"the artifact answers shape {list(candidate.shape)} where the source answers "
                                  f"{list(reference.shape)}")
        candidate = candidate.reshape(reference.shape)
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


def match_outputs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, str]:
    """{reference name: candidate name}: by name; a single output pairs with a single output; otherwise
    by a shape no other output has. ConversionError naming both sides when that is not enough."""
    if set(reference) == set(candidate):
        return {name: name for name in reference}
    if len(reference) == 1 and len(candidate) == 1:
        return {next(iter(reference)): next(iter(candidate))}
    pairs: dict[str, str] = {}
    shapes = {name: np.shape(v)[1:] for name, v in candidate.items()}
    for name, value in reference.items():
        if name in candidate:
            pairs[name] = name
            continue
        same = [c for c, shape in shapes.items() if shape == np.shape(value)[1:] and c not in pairs.values()]
        if len(same) != 1 or sum(np.shape(v)[1:] == np.shape(value)[1:] for v in reference.values()) != 1:
            raise ConversionError(
                f"cannot tell which artifact output is the source's output {name!r}: the source has "
                f"{', '.join(map(repr, reference))}, the artifact {', '.join(map(repr, candidate))}")
        pairs[name] = same[0]
    return pairs


def measure_outputs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], profile: DeviceProfile,
                    data: str, random_inputs: bool) -> Fidelity:
    """Fidelity output by output (matched by name); the top-level numbers are the worst output's."""
    pairs = match_outputs(reference, candidate)
    per = {name: measure_fidelity(reference[name], candidate[other], profile, data, random_inputs)
           for name, other in pairs.items()}
    agreements = [f.top1_agreement for f in per.values() if f.top1_agreement is not None]
    first = next(iter(per.values()))
    return Fidelity(
        samples=first.samples,
        max_abs_error=max(f.max_abs_error for f in per.values()),
        mean_abs_error=float(np.mean([f.mean_abs_error for f in per.values()])),
        top1_agreement=min(agreements) if agreements else None,
        min_top1_agreement=first.min_top1_agreement, max_abs_error_allowed=first.max_abs_error_allowed,
        data=data, random_inputs=random_inputs,
        outputs={name: {"artifact_output": pairs[name], "role": output_role(np.shape(reference[name])),
                        "top1_agreement": f.top1_agreement, "max_abs_error": f.max_abs_error,
                        "mean_abs_error": f.mean_abs_error} for name, f in per.items()},
    )


def check_fidelity(fidelity: Fidelity, profile_name: str) -> None:
    if len(fidelity.outputs) > 1:
        for name, out in fidelity.outputs.items():
            one = Fidelity(fidelity.samples, out["max_abs_error"], out["mean_abs_error"], out["top1_agreement"],
                           fidelity.min_top1_agreement, fidelity.max_abs_error_allowed, fidelity.data,
                           fidelity.random_inputs)
            try:
                check_fidelity(one, profile_name)
            except FidelityError as err:
                raise FidelityError(f"output {name!r}: {err}") from None
        return
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
