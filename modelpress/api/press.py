"""``modelpress.press``: the smallest (or fastest) model that fits each device within an accuracy budget.

    import modelpress
    result = modelpress.press("lenet.keras", ["raspberry-pi-4", "cortex-m"], "fashion.npz", max_drop=0.5,
                              objective="size", time_budget="20m", out="build/press")
    result.met                          # False when some profile has no candidate within the budget
    result.packages["cortex-m"]         # build/press/cortex-m: a model package, as `convert` writes
    result.messages                     # what to change when nothing fit

Writes ``out/<profile>/`` (the chosen package per profile), ``out/press.json`` (every trial: settings, size,
latency, accuracy, constraint verdicts, time) and ``out/report/`` (Markdown, HTML, Pareto plots).
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(value: str | float | int | None) -> float | None:
    """Seconds from ``90``, ``"90s"``, ``"20m"``, ``"1.5h"`` (None stays None)::

        parse_duration("20m")      # 1200.0
    """
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(value))
    if not match:
        raise UsageError(f"time budget {value!r} is not a duration; write it as 90s, 20m or 1.5h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@dataclass
class PressResult:
    out: Path
    search: Any
    packages: dict[str, Path] = field(default_factory=dict)
    press_json: Path | None = None
    report: Any = None
    #: profile -> finish(out, name, version, labels): the chosen candidate as a package (see write_package)
    finishers: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False)

    @property
    def met(self) -> bool:
        return self.search.met

    @property
    def messages(self) -> list[str]:
        return self.search.messages

    @property
    def chosen(self) -> dict[str, Any]:
        return self.search.chosen

    def write_package(self, profile: str, out: str | Path, *, name: str | None = None, version: str = "1",
                      labels: str | Path | list[str] | None = None) -> Any:
        """Write the candidate chosen for ``profile`` as a model package at ``out`` (the Artifact), finished
        as ``modelpress convert`` finishes its own; deploy writes it into the repository this way::

            result.write_package("cortex-m", "repo/digits/3", name="digits", version="3")
        """
        from modelpress.api.convert import _labels

        if profile not in self.finishers:
            raise UsageError(f"press chose no candidate for profile {profile!r}; chosen: "
                             f"{', '.join(self.finishers) or 'none'}")
        return self.finishers[profile](out, name=name, version=str(version), labels=_labels(labels))

    def rows(self) -> list[dict[str, Any]]:
        """One row per profile: the chosen candidate, or the closest one marked as missing the budget."""
        rows = []
        for profile, trial in self.search.closest.items():
            row = {"profile": profile, "met": self.search.chosen.get(profile) is not None,
                   "package": str(self.packages.get(profile, ""))}
            if trial is not None:
                row.update(trial.to_dict(), profile=profile)
            rows.append(row)
        return rows


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; name a folder for the press results")
    if out.exists() and any(out.iterdir()) and not (out / "press.json").is_file():
        raise UsageError(f"--out {out} holds files that are not modelpress press results; refusing to replace it "
                         "(choose an empty or new folder)")


def press(model: Any, profiles: str | Sequence[str], data: Any, *, out: str | Path, max_drop: float = 1.0,
          objective: str = "size", time_budget: str | float | None = None, cache: str | Path | None = None,
          use_cache: bool = True, epochs: int | None = None, families: Sequence[str] | None = None,
          name: str | None = None, labels: str | Path | list[str] | None = None, progress: bool = True,
          safe_mode: bool = True, packages: bool = True, echo: Callable[[str], None] | None = None,
          sign_key: str | Path | None = None, workers: int | None = None, ray: str | None = None,
          trial_cpus: float | None = None, trial_gpus: float = 0.0, confidence: float | None = None) -> PressResult:
    """Search compressions and quantizations of ``model`` for each profile; keep the best within ``max_drop``.

    ``data``: what ``modelpress.compress`` takes (x_train / y_train for fine-tuning and calibration; the
    held-out x_val / y_val, else 10% of the training data set aside, for every accuracy figure).
    ``max_drop`` is in accuracy points against the source model as given, and a candidate fits it when its
    measured drop plus a margin of one standard error does (about 84% sure, per candidate, that the drop on
    unseen data fits); ``confidence=0.95`` asks for 1.645 of them. ``objective`` picks among the
    candidates that pass (``size``: smallest gzip artifact; ``latency``: fastest single-sample call).
    Each chosen candidate becomes ``out/<profile>/``, a package finished as ``convert`` finishes its own
    (with ``labels``; ``packages=False`` leaves that to ``result.write_package``).

    ``workers``: trials at once in worker processes of their own (default: one per GPU, else one per 4 cores;
    1 runs them in this process); ``ray="auto"`` (or a cluster's address) runs them as Ray tasks with
    ``trial_cpus`` / ``trial_gpus`` each (the ``distributed`` extra).
    Never returns a silent None: ``result.met`` is False and ``result.messages`` says what came closest::

        r = press("digits.keras", "raspberry-pi-4", "digits.npz", max_drop=1.0, out="build/press")
        print(r.rows()[0]["variant"], r.rows()[0]["gzip_bytes"])

    ``sign_key`` (a PEM EC private key) signs each chosen package before ``out`` appears.
    """
    from modelpress.api.compress import _check_inputs, _pick_flavor
    from modelpress.api.convert import _labels
    from modelpress.atomic import atomic_directory
    from modelpress.compressor.data import load_data
    from modelpress.device_profiles import load_profile
    from modelpress.native_logs import filtered_stderr
    from modelpress.search import Search, SearchOptions
    from modelpress.search.cache import TrialCache
    from modelpress.search.space import FAMILIES
    from modelpress.signing import check_signing_key

    echo = echo or (lambda line: None)
    label_list = _labels(labels)  # a missing labels file fails now, not after the search
    names = [profiles] if isinstance(profiles, str) else list(profiles)
    if not names:
        raise UsageError("press needs at least one --profile")
    unknown = sorted(set(families or ()) - set(FAMILIES))
    if unknown:
        raise UsageError(f"unknown search branch(es) {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    options = SearchOptions(max_drop=float(max_drop), objective=objective, time_budget=parse_duration(time_budget),
                            epochs=epochs, families=tuple(families) if families else None, progress=progress,
                            workers=workers, ray=ray, trial_cpus=trial_cpus, trial_gpus=float(trial_gpus or 0.0),
                            confidence=confidence)
    out = Path(out)
    _check_out(out)
    check_signing_key(sign_key)
    loaded = [load_profile(p) for p in names]
    with filtered_stderr():  # TensorFlow's native start-up lines stay out of the caller's log
        source = _pick_flavor(model, None, safe_mode)
    if not source.is_keras:
        raise UsageError(f"{source.path} is a SavedModel; press needs the Keras model (.keras or .h5)")
    dataset = load_data(data)
    _check_inputs(source.model, dataset.x_train)
    with tempfile.TemporaryDirectory(prefix="modelpress-press-cache-") as scratch:
        trial_cache = TrialCache(cache if use_cache else scratch)
        search = Search(source.model, source.flavor, dataset, loaded, options, trial_cache)
        echo(f"press: reference accuracy {search.reference_accuracy:.2%} on {len(dataset.x_val)} held-out samples; "
             f"budget {options.max_drop:g} pt (drop + {search.result.reference['margin_z']:g} standard error(s)); "
             f"{search.epochs} fine-tuning epoch(s) per candidate; cache "
             f"{trial_cache.folder}")
        with filtered_stderr() if not progress else contextlib.nullcontext():  # progress bars are live
            outcome = search.run()
        result = PressResult(out=out, search=outcome)
        for profile in loaded:
            trial = outcome.chosen.get(profile.name)
            if trial is not None:
                result.finishers[profile.name] = _finisher(search, trial, profile, name or source.name, source)
        with atomic_directory(out, overwrite=True) as folder, filtered_stderr():
            for profile_name in result.finishers if packages else ():
                artifact = result.finishers[profile_name](folder / profile_name, labels=label_list,
                                                          sign_key=sign_key)
                result.packages[profile_name] = out / profile_name
                _note_worst_tensors(search, profile_name, artifact.manifest)
            document = _document(search, outcome, source, dataset, options, result)
            (folder / "press.json").write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
            from modelpress.report.press import render_press_report

            render_press_report(document, folder / "report")
    result.press_json = out / "press.json"
    result.report = out / "report" / "report.html"
    return result


def _note_worst_tensors(search: Any, profile_name: str, manifest: Any) -> None:
    """press's notes name the tensors the quantization changed most (from LiteRT's quantizer's validation)."""
    from modelpress.converters.quantizer import worst_tensors

    worst = worst_tensors((manifest.fidelity or {}).get("tensors"))
    if worst:
        search.result.notes.append(f"{profile_name}: tensors the quantization changed most (SNR against float32, "
                                   f"LiteRT's quantizer's validation on 8 samples): {worst}")


def _finisher(search: Any, trial: Any, profile: Any, default_name: str, source: Any) -> Callable[..., Any]:
    """The chosen candidate, read now (the trial cache may be a temporary folder), finished when called."""
    from modelpress.files import raw_bytes
    from modelpress.search.package import write_package

    blob = search.cache.artifact(trial.artifact_key)
    model, _, _ = search.model_for(trial.settings)
    x_val = search.data.x_val
    calibration = {"source": "first samples of x_train", "samples": int(len(search.calibration)), "random": False}
    described = {"path": str(source.path) if source.path else None, "sha256": source.sha256,
                 "flavor": source.flavor, "bytes": raw_bytes(source.path) if source.path is not None else None,
                 "press_settings": trial.settings.to_dict()}

    def finish(out: str | Path, name: str | None = None, version: str = "1", labels: list[str] | None = None,
               sign_key: str | Path | None = None):
        return write_package(trial, blob, model, profile, out, verify_x=x_val, name=name or default_name,
                             calibration=calibration, source=described, version=version, labels=labels,
                             sign_key=sign_key)

    return finish


def _float32_reference(search: Any, profile: Any) -> dict[str, Any]:
    from modelpress.search.measure import Measurer

    measurer = Measurer(profile, search.data.x_val, search.data.y_val, search.calibration)
    try:
        blob = measurer.convert(search.model, "none")
    except Exception as err:  # noqa: BLE001 - the reference is informative; its failure is reported, not fatal
        return {"error": str(err)}
    from modelpress.files import gzip_bytes

    p50, spread = measurer.latency_ms(blob)
    return {"bytes": len(blob), "gzip_bytes": gzip_bytes(blob),
            "p50_ms": p50, "p50_spread_ms": spread, "accuracy": measurer.accuracy(blob),
            "what": "the source model as float32 TFLite, this host, the profile's threads"}


def _document(search: Any, outcome: Any, source: Any, dataset: Any, options: Any, result: PressResult) -> dict:
    profiles = {}
    for profile in search.profiles:
        chosen, closest = outcome.chosen.get(profile.name), outcome.closest.get(profile.name)
        profiles[profile.name] = {
            "chosen": chosen.to_dict() if chosen else None, "closest": closest.to_dict() if closest else None,
            "package": profile.name if profile.name in result.packages else None,
            "float32_tflite": _float32_reference(search, profile),
            "hardware": profile.hardware}
    return {"kind": "press", "source": {"name": source.name, "path": str(source.path) if source.path else None,
                                        "flavor": source.flavor},
            "data": dataset.describe(), "reference": outcome.reference,
            "options": {"max_drop_points": options.max_drop, "confidence": options.confidence,
                        "objective": options.objective,
                        "time_budget_s": options.time_budget, "epochs": search.epochs,
                        "families": list(options.families) if options.families else None},
            "met": outcome.met, "messages": outcome.messages, "notes": outcome.notes, "stopped": outcome.stopped,
            "seconds": round(outcome.seconds, 1), "phases_s": outcome.phases, "time_slices_s": outcome.slices,
            "priced_epoch_s": outcome.priced_epoch_seconds, "priced_trial_s": outcome.priced_trial_seconds,
            "cache": outcome.cache, "execution": outcome.execution, "profiles": profiles,
            "trials": [t.to_dict() for t in outcome.trials]}
