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

What "faithful" means depends on what was done to the model:

- **float32 (quantization none)**: TFLite computes the same function with its own kernels, which sum in
  another order. The rounding that reordering leaves grows with the magnitude of the numbers a model adds
  on its way to an output, not with the output itself, so a fixed absolute bound fails deep models whose
  outputs are fine (a sigmoid head whose logit is a small difference of large features: max |err| 8e-4,
  mean 1e-5). The bound is therefore relative to each output's scale: its range (peak to peak) over the
  verification samples, ``max |err| <= max_relative_error * range``. The range is chosen over units of
  float32 rounding (eps times the output) because the rounding an output inherits comes from the
  intermediate sums, whose size the output does not show: a bound in ulps of the output would have to
  guess the model's depth and cancellation. A real conversion fault (a wrong layout, a dropped op)
  moves outputs by a sizeable part of their range, far above 1%.
- **quantized modes**: top-1 agreement for class scores, plus the profile's absolute ``max_abs_error``
  where it has one, as before.
- ``--max-abs-error`` (``max_abs_error=``) is the user's own absolute bound, for any mode; it replaces the
  profile's float bound.

A failure's advice fits its case: a float32 artifact has nothing to un-quantize, so it is told how to
check its inputs and loosen the bound; a quantized one is told which milder mode to try.
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
    #: the worst output's max |err| over its range, and the bound on it (None: no relative bound)
    max_relative_error: float = 0.0
    max_relative_error_allowed: float | None = None
    #: an output's range over the samples (the relative error's denominator); per output when several
    scale: float | None = None
    #: LiteRT's quantizer's per-tensor comparison with the float32 model (converters.quantizer.tensor_errors)
    tensors: dict | None = None

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
    scale = output_scale(reference)
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
        max_relative_error=float(error.max() / scale) if error.size else 0.0,
        max_relative_error_allowed=profile.max_relative_error,
        scale=scale,
    )


def output_scale(reference: np.ndarray) -> float:
    """The size of an output's values: its range over the samples; for a constant output its magnitude;
    1 for an output that is always zero (an absolute bound is then all one can say)."""
    values = np.asarray(reference, dtype=np.float64)
    if not values.size:
        return 1.0
    spread = float(values.max() - values.min())
    return spread if spread > 0 else (float(np.abs(values).max()) or 1.0)


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
    worst = max(per.values(), key=lambda f: f.max_relative_error)
    return Fidelity(
        samples=first.samples,
        max_abs_error=max(f.max_abs_error for f in per.values()),
        mean_abs_error=float(np.mean([f.mean_abs_error for f in per.values()])),
        top1_agreement=min(agreements) if agreements else None,
        min_top1_agreement=first.min_top1_agreement, max_abs_error_allowed=first.max_abs_error_allowed,
        data=data, random_inputs=random_inputs,
        outputs={name: {"artifact_output": pairs[name], "role": output_role(np.shape(reference[name])),
                        "top1_agreement": f.top1_agreement, "max_abs_error": f.max_abs_error,
                        "mean_abs_error": f.mean_abs_error, "scale": f.scale,
                        "max_relative_error": f.max_relative_error} for name, f in per.items()},
        max_relative_error=worst.max_relative_error, max_relative_error_allowed=first.max_relative_error_allowed,
        scale=worst.scale,
    )


#: for each mode, the next milder one to suggest when it loses too much
MILDER = {"int4": "dynamic", "dynamic": "float16", "int8": "int16x8", "int16x8": "float16",
          "mixed": "int16x8", "float16": "none"}


def _advice(quantization: str, loosen: str) -> str:
    """What to try next, for a float32 artifact (nothing was quantized) or a quantized one."""
    if quantization == "none":
        return ("Nothing was quantized: a float32 conversion only reorders arithmetic, so a gap this large means "
                "the inputs are not what the model expects (pass real samples with --verify-data, scaled as in "
                f"training: --image-scale) or an op converted differently; if the difference is acceptable, {loosen}")
    milder = MILDER.get(quantization, "float16")
    calibrate = "Calibrate on more representative data, " if quantization in ("int8", "int16x8", "mixed") else ""
    advice = (f"{calibrate}choose a milder quantization than {quantization} (--quantization {milder}), keep the "
              f"sensitive layers in float with a per-layer recipe (--layer-precision), or {loosen}")
    return advice[0].upper() + advice[1:]


def check_fidelity(fidelity: Fidelity, profile_name: str, quantization: str = "none") -> None:
    """FidelityError naming the output, the number, the bound and what to do; nothing when it fits."""
    if len(fidelity.outputs) > 1:
        for name, out in fidelity.outputs.items():
            one = Fidelity(fidelity.samples, out["max_abs_error"], out["mean_abs_error"], out["top1_agreement"],
                           fidelity.min_top1_agreement, fidelity.max_abs_error_allowed, fidelity.data,
                           fidelity.random_inputs, {}, out.get("max_relative_error", 0.0),
                           fidelity.max_relative_error_allowed, out.get("scale"))
            try:
                check_fidelity(one, profile_name, quantization)
            except FidelityError as err:
                raise FidelityError(f"output {name!r}: {err}") from None
        return
    if fidelity.top1_agreement is not None and fidelity.top1_agreement < fidelity.min_top1_agreement:
        raise FidelityError(
            f"top-1 agreement with the source model is {fidelity.top1_agreement:.2%} on {fidelity.samples} "
            f"samples; profile {profile_name} needs at least {fidelity.min_top1_agreement:.2%}. "
            + _advice(quantization, "lower the floor with --min-agreement (min_agreement= in Python)"))
    loosen = "set your own bound with --max-abs-error (max_abs_error= in Python)"
    allowed = fidelity.max_abs_error_allowed
    if allowed is not None and fidelity.max_abs_error > allowed:
        raise FidelityError(
            f"max absolute error against the source model is {fidelity.max_abs_error:.3g} (mean "
            f"{fidelity.mean_abs_error:.3g}); profile {profile_name} allows at most {allowed:.3g}. "
            + _advice(quantization, loosen))
    relative = fidelity.max_relative_error_allowed
    if relative is not None and fidelity.max_relative_error > relative:
        scale = fidelity.scale
        of_range = f" of the output's range {scale:.3g}" if scale is not None else " of the output's range"
        raise FidelityError(
            f"max absolute error against the source model is {fidelity.max_abs_error:.3g} (mean "
            f"{fidelity.mean_abs_error:.3g}), {fidelity.max_relative_error * 100:.3g}%{of_range}; profile "
            f"{profile_name} allows {relative * 100:.3g}% of the range. " + _advice(quantization, loosen))
