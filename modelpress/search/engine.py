"""The search engine: run trials (cached), keep the time budget, show progress, choose per profile.

    search = Search(keras_model, "keras3", dataset, [load_profile("raspberry-pi-4")],
                    SearchOptions(max_drop=0.5, objective="size", time_budget=1200))
    result = search.run()
    result.chosen["raspberry-pi-4"].describe()      # e.g. 'prune fc1 97% + ... + cluster 16 + int8'
    result.messages                                  # why a profile has no passing candidate, if one has none

Every candidate is converted for the profile, checked against its constraints and scored on the held-out
split (``x_val`` / ``y_val``, never used for fine-tuning or calibration); the drop is measured against the
source model as given, and a candidate passes the budget only if its drop plus a safety margin of one
standard error of that drop (z of them at a ``confidence``) fits (:func:`modelpress.search.trial.drop_margin`): a
candidate that fits on the validation samples by less than their noise would likely miss on other data.
Which candidates are tried, in which order, is in :mod:`modelpress.search.strategy`; which one is chosen per
profile once they are in, in :mod:`modelpress.search.choice`.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelpress.compressor.data import Dataset
from modelpress.compressor.report import accuracy
from modelpress.device_profiles import DeviceProfile
from modelpress.errors import ModelpressError, UsageError
from modelpress.search.cache import TrialCache, array_hash, model_hash
from modelpress.search.choice import best_trial, choose, fastest
from modelpress.search.executor import InProcess
from modelpress.search.launch import make_executor
from modelpress.search.measure import Measurer, correct
from modelpress.search.progress import Progress
from modelpress.search.space import Settings
from modelpress.search.trial import CONFIDENCE_RANGE, MARGIN_FORMULA, Trial, drop_margin, is_floor, margin_z

OBJECTIVES = ("size", "latency")
CALIBRATION_SAMPLES = 300
NARROWING_CHECK_SAMPLES = 64
#: how a compressed candidate becomes the file shipped (part of every trial's cache key): dead units and filters
#: removed before conversion, the strings a deployed file does not need removed after, int4 weights that lie on one
#: grid per kernel stored tensorwise; a change here must not answer from older entries
SHIPPED_FORM = "narrowed+stripped+int4-tensorwise-on-a-tensor-grid"
#: where training steps cannot be timed (or there is no time budget), an epoch is priced at this many inference
#: passes over the training data (forward, backward and update, plus the epoch's scoring on the samples set
#: aside): a first fine-tuning of a ResNet that took 256 s was otherwise started with 104 s of its profile's share
#: left, and the next profile got none; under load it also priced one 4x too high (pricing.py times steps instead)
TRAINING_COST_FACTOR = 4
#: training steps are timed (seconds: 44 s for a MobileNetV2's tracing on a loaded host) only for a trial whose
#: inference-priced cost is within this factor of the time left: that guess was 0.44x to 4x what trials took
PRICE_WITHIN = 4


@dataclass
class SearchOptions:
    """``max_drop``: accuracy points the candidate may lose on held-out data; ``time_budget``: seconds."""

    max_drop: float = 1.0
    objective: str = "size"
    time_budget: float | None = None
    epochs: int | None = None            # fine-tuning epochs per compressed candidate; None: from the data size
    rank_samples: int = 300              # the subset that ranks layers for fallback and pruning sensitivity
    families: tuple[str, ...] | None = None  # limit the search to these branches (see space.FAMILIES)
    progress: bool = True
    latency_runs: int = 100
    workers: int | None = None           # trials at once; None: from the cores and GPUs (see executor)
    ray: str | None = None               # run trials on a Ray cluster: "auto" or its address
    trial_cpus: float | None = None      # per-trial resources on Ray (CPUs: None = the threads per worker)
    trial_gpus: float = 0.0
    #: how sure a pass must be that the candidate's drop on unseen data fits max_drop (one-sided); None: the
    #: margin is one standard error (about 0.84)
    confidence: float | None = None

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise UsageError(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if not isinstance(self.max_drop, (int, float)) or self.max_drop < 0:
            raise UsageError(f"max_drop {self.max_drop!r} must be a number of accuracy points >= 0 (0.5 = half a "
                             "point of top-1)")
        low, high = CONFIDENCE_RANGE
        if self.confidence is not None and not (isinstance(self.confidence, (int, float))
                                                and low <= self.confidence <= high):
            raise UsageError(f"confidence {self.confidence!r} must be a probability from {low} to {high} (0.95: the "
                             "drop plus 1.645 standard errors must fit the budget; leave it out for one standard "
                             "error, about 0.84)")
        if self.time_budget is not None and self.time_budget <= 0:
            raise UsageError(f"time budget {self.time_budget!r} must be positive (seconds)")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise UsageError(f"workers {self.workers!r} must be a whole number >= 1 (1 runs every trial in this "
                             "process)")
        if (self.trial_gpus or self.trial_cpus) and not self.ray:
            raise UsageError("--trial-cpus and --trial-gpus set a Ray task's resources; add --ray auto (or the "
                             "cluster's address), or leave them out for local workers")


@dataclass
class SearchResult:
    reference: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    chosen: dict[str, Trial | None] = field(default_factory=dict)
    closest: dict[str, Trial | None] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0
    cache: dict[str, Any] = field(default_factory=dict)
    #: seconds spent per named phase ("raspberry-pi-4: fallback ranking"), added up over the search
    phases: dict[str, float] = field(default_factory=dict)
    #: one fine-tuning epoch's price before any was timed (seconds; timed on a few steps), when there was a budget
    priced_epoch_seconds: float | None = None
    priced_trial_seconds: float | None = None  # ... and what a fine-tuning trial pays once (copying, tracing)
    #: per profile, the share of the time budget it was given (seconds), when there was a budget
    slices: dict[str, float] = field(default_factory=dict)
    #: how trials ran: in this process, in local worker processes, or on a Ray cluster (and its nodes)
    execution: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return bool(self.chosen) and all(t is not None for t in self.chosen.values())


class Search:
    """One search over one source model, for one or more profiles."""

    def __init__(self, model: Any, flavor: str, data: Dataset, profiles: list[DeviceProfile],
                 options: SearchOptions, cache: TrialCache | None = None):
        for profile in profiles:
            if "tflite" not in profile.formats:
                raise UsageError(f"profile {profile.name} builds {', '.join(profile.formats)}; press searches "
                                 "TFLite artifacts, so pick a profile whose formats include tflite")
        self.model, self.flavor, self.data, self.profiles, self.options = model, flavor, data, profiles, options
        self.cache = cache or TrialCache()
        self.interrupted = False  # Ctrl-C: no trial starts after it
        self.calibration = data.x_train[:CALIBRATION_SAMPLES]
        n = len(data.x_train)
        self.epochs = options.epochs or int(np.clip(round(60000 / max(n, 1)), 3, 8))
        self.batch_size = 64 if n > 10000 else 32
        self.source_hash = model_hash(model)
        self.data_hash = array_hash(data.x_train, data.y_train)
        self.eval_hash = array_hash(data.x_val, data.y_val)
        started = time.perf_counter()
        reference_outputs = self._keras_outputs(model)
        self.inference_seconds = (time.perf_counter() - started) / max(len(data.x_val), 1)  # per sample
        self.reference_accuracy = accuracy(data.y_val, reference_outputs)
        self.source_correct = correct(data.y_val, reference_outputs)
        self.models: dict[str, Any] = {}
        self.outputs: dict[str, np.ndarray] = {}
        self.epoch_seconds: float | None = None
        self.priced_epoch: float | None = None  # an epoch's price before any fine-tuning here was timed
        self.priced_trial = 0.0  # ... and what a trial pays once (copy, tracing)
        self.start = 0.0
        self.result = SearchResult(reference={"accuracy": self.reference_accuracy, "samples": int(len(data.x_val)),
                                              "what": "the source model as given (Keras, float32) on the held-out "
                                                      "split", "epochs": self.epochs,
                                              "margin": MARGIN_FORMULA, "margin_z": margin_z(options.confidence),
                                              "confidence": options.confidence})
        self.progress = Progress(options.progress)
        self.slice_end: float | None = None
        self.executor: Any = InProcess()

    # -- time ---------------------------------------------------------------------------------------------
    def time_left(self) -> float:
        """Seconds left for the profile being searched: its share of what remains of the budget."""
        if self.options.time_budget is None:
            return float("inf")
        now = time.perf_counter()
        left = self.options.time_budget - (now - self.start)
        return min(left, self.slice_end - now) if self.slice_end is not None else left

    def record_phase(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to a named phase's cost (written to press.json)."""
        self.result.phases[name] = round(self.result.phases.get(name, 0.0) + seconds, 3)

    def epoch_cost(self, price: bool = True) -> float:
        """Seconds one fine-tuning epoch likely takes: as timed in this search; before that, under a time budget,
        timed once on a few training steps of the source (:mod:`~modelpress.search.pricing`; not with ``price``
        False); else priced from inference."""
        if self.epoch_seconds:
            return self.epoch_seconds
        guess = TRAINING_COST_FACTOR * self.inference_seconds * len(self.data.x_train)
        if self.options.time_budget is None or not price:  # nothing is refused for its cost: why time it
            return self.priced_epoch or guess
        if self.priced_epoch is None:
            self.priced_epoch, self.priced_trial = self._price_epoch(guess)
        return self.priced_epoch

    def trial_overhead(self) -> float:
        """Seconds a fine-tuning trial spends once (copying, tracing), as priced; 0 once one is timed (its time
        per epoch includes them)."""
        return 0.0 if self.epoch_seconds else self.priced_trial

    def _price_epoch(self, guess: float) -> tuple[float, float]:
        from modelpress.compressor.data import selection_split
        from modelpress.search.pricing import epoch_seconds

        started = time.perf_counter()
        self.progress.phase("timing a few training steps (to price fine-tuning against the time budget)")
        tuning = selection_split(self.data)
        try:
            price, once = epoch_seconds(self.model, self.flavor, tuning, self.batch_size,
                                        self.inference_seconds * len(tuning.x_val))
        except Exception as error:  # noqa: BLE001 - a price is an estimate: the trials themselves report failures
            self.result.notes.append(f"fine-tuning priced from inference time ({guess:.0f} s an epoch): timing "
                                     f"training steps failed ({type(error).__name__}: {error})")
            price, once = guess, 0.0
        self.record_phase("pricing fine-tuning", time.perf_counter() - started)
        self.result.priced_epoch_seconds = round(price, 2)
        self.result.priced_trial_seconds = round(once, 2)
        return price, once

    def affordable(self, settings: Settings) -> bool:
        """False (and the search marked stopped) when the trial would likely end past the time budget, or the
        user pressed Ctrl-C."""
        if self.interrupted:
            return False
        left = self.time_left()
        cost = 0.0
        if settings.compressed and not self._compressed_cached(settings):
            epochs = sum(s.get("epochs", settings.epochs) for s in settings.steps if s["type"] != "int8")
            cost = self.epoch_cost(price=False) * epochs
            if cost * PRICE_WITHIN > left:  # the guess cannot tell: timing training steps costs seconds, so only now
                cost = self.epoch_cost() * epochs + self.trial_overhead()
        if left <= 0 or cost > left:
            elapsed = time.perf_counter() - self.start
            if left > 0:
                self.result.stopped = (f"stopped after {elapsed:.0f} s of the {self.options.time_budget:.0f} s time "
                                       f"budget: the next candidate ({settings.describe()}) would fine-tune for about "
                                       f"{cost:.0f} s and {left:.0f} s were left for its profile")
            elif self.options.time_budget - elapsed > max(cost, 0.0) and len(self.profiles) > 1:
                self.result.stopped = (f"a profile's share of the {self.options.time_budget:.0f} s time budget "
                                       f"ended after {elapsed:.0f} s; the next profile got what was left")
            else:
                self.result.stopped = (f"time budget of {self.options.time_budget:.0f} s reached after "
                                       f"{elapsed:.0f} s; the search stopped there")
            return False
        return True

    # -- models -------------------------------------------------------------------------------------------
    def _keras_outputs(self, model: Any) -> np.ndarray:
        x = self.data.x_val
        return np.concatenate([np.asarray(model(x[i:i + 512], training=False)) for i in range(0, len(x), 512)])

    def _model_key(self, settings: Settings) -> str:
        if not settings.compressed:
            return self.source_hash
        return TrialCache.key(self.source_hash, self.data_hash, settings.compression_key())

    def _compressed_cached(self, settings: Settings) -> bool:
        key = self._model_key(settings)
        return key in self.models or self.cache.model_path(key) is not None

    def model_for(self, settings: Settings) -> tuple[Any, str, float]:
        """(Keras model, its cache key, seconds spent training it now): the source, or a fine-tuned copy."""
        key = self._model_key(settings)
        if not settings.compressed:
            return self.model, key, 0.0
        if key in self.models:
            return self.models[key], key, 0.0
        hit = self.cache.load_model(key)
        if hit is not None:
            self.models[key] = hit[0]
            return hit[0], key, 0.0
        from modelpress.compressor.data import selection_split
        from modelpress.compressor.pipeline import run_recipe

        started = time.perf_counter()
        self.progress.phase(_training_text(settings))
        # fine-tuning picks its best epoch on training samples it sets aside, never on x_val (which scores it);
        # with progress on, its own bar counts the epochs and steps under the search's line
        model, steps, notes = run_recipe(self.model, self.flavor, settings.recipe(), selection_split(self.data),
                                         quiet=not self.options.progress)
        seconds = time.perf_counter() - started
        epochs = sum(s.get("epochs") or 0 for s in steps)
        if epochs:
            per_epoch = seconds / epochs
            self.epoch_seconds = per_epoch if self.epoch_seconds is None else max(self.epoch_seconds, per_epoch)
        self.cache.save_model(key, model, {"settings": settings.to_dict(), "seconds": seconds, "steps": steps,
                                           "notes": notes})
        self.models[key] = model
        return model, key, seconds

    def outputs_for(self, key: str, model: Any) -> np.ndarray:
        if key not in self.outputs:
            self.outputs[key] = self._keras_outputs(model)
        return self.outputs[key]

    # -- trials -------------------------------------------------------------------------------------------
    def trial(self, profile: DeviceProfile, measurer: Measurer, settings: Settings) -> Trial | None:
        """Run (or read from the cache) one candidate; None when the time budget does not allow it."""
        return self.trials(profile, measurer, [settings])[0]

    def trials(self, profile: DeviceProfile, measurer: Measurer, batch: list[Settings]) -> list[Trial | None]:
        """Run candidates at once on the executor's workers, recorded in the order given; None for each one the
        time budget does not allow (from the first such one on: they would run side by side, so each must fit),
        except the profile's post-training int8 candidate: every profile gets that one, even past the budget
        (a conversion; a profile left with no candidate at all is worse than a budget overrun by one)."""
        allowed: list[bool] = []
        for settings in batch:
            allowed.append((not allowed or allowed[-1]) and self.affordable(settings))
        allowed = [ok or (is_floor(settings) and not self.interrupted) for ok, settings in zip(allowed, batch)]
        runnable = [settings for ok, settings in zip(allowed, batch) if ok]
        if len(runnable) == 1 and self.executor.workers == 1:
            done = [self.measure_trial(profile, measurer, runnable[0])]
        else:
            if runnable:
                self.progress.phase(f"{len(runnable)} trial(s) on {self.executor.workers} worker(s): "
                                    + "; ".join(s.describe() for s in runnable))
            done = self.executor.run(self, profile, measurer, runnable) if runnable else []
        finished = iter([self._finish(trial, None) for trial in done])
        return [next(finished) if ok else None for ok in allowed]

    def measure_trial(self, profile: DeviceProfile, measurer: Measurer, settings: Settings) -> Trial:
        """Build (fine-tune), convert and measure one candidate, or read it from the cache; not yet recorded.
        The one trial function: the driver runs it in-process, workers (processes, Ray tasks) run it too."""
        started = time.perf_counter()
        trial = Trial(profile=profile.name, settings=settings)
        try:
            model, model_key, _ = self.model_for(settings)
        except ModelpressError as err:
            trial.error = f"compression failed: {err}"
            trial.seconds = time.perf_counter() - started
            return trial
        key = TrialCache.key(model_key, repr(sorted(profile.get_config().items())), settings.conversion_key(),
                             self.eval_hash, self.data_hash, SHIPPED_FORM)
        record = self.cache.load_trial(key)
        if record is not None:
            trial = Trial.from_record(record, settings)
            trial.profile, trial.cached = profile.name, True
        else:
            trial.model_key = model_key if settings.compressed else ""
            blob, not_scored = None, None
            try:
                shipped = self.shipped_model(model, settings, trial)
                blob, row = measurer.measure(shipped, settings.quantization, settings.fallback,
                                             self.outputs_for(model_key, model), phase=self.progress.phase,
                                             strip=settings.compressed, slower_than_ms=settings.slower_than_ms)
                trial.error = not_scored = row.get("not_scored")
                trial.accuracy, trial.bytes, trial.gzip_bytes = row["accuracy"], row["bytes"], row["gzip_bytes"]
                trial.p50_ms, trial.problems, trial.ops = row["p50_ms"], row["problems"], row["ops"]
                trial.p50_spread_ms = row.get("p50_spread_ms")
                trial.worse, trial.better = row.get("worse"), row.get("better")
            except ModelpressError as err:
                trial.error = str(err)
            trial.seconds = time.perf_counter() - started
            trial.artifact_key = key
            if not not_scored:  # a timing against one run's float32 is no result for another run
                self.cache.save_trial(key, trial.record(), blob)
        trial.artifact_key = key
        return trial

    def shipped_model(self, model: Any, settings: Settings, trial: Trial) -> Any:
        """The model a compressed candidate is converted from: its fine-tuned model with the units and filters
        that pruning or gates left dead removed (:mod:`modelpress.compressor.narrowing`; same answers, checked on
        the calibration samples); the source model as given otherwise. ``trial.narrowed`` records what went."""
        if not settings.compressed:
            return model
        from modelpress.compressor.narrowing import narrow_model

        result = narrow_model(model, sample=self.calibration[:NARROWING_CHECK_SAMPLES])
        trial.narrowed = dict(result.kept)
        return result.model

    def _finish(self, trial: Trial, started: float | None) -> Trial:
        if started is not None:
            trial.seconds = time.perf_counter() - started
        if trial.epoch_seconds:  # measured in a worker: the driver's estimate of what training costs learns it
            self.epoch_seconds = max(self.epoch_seconds or 0.0, trial.epoch_seconds)
        if trial.accuracy is not None:
            trial.drop_points = round((self.reference_accuracy - trial.accuracy) * 100, 4)
            trial.margin_points = drop_margin(len(self.data.y_val), trial.worse, trial.better, self.reference_accuracy,
                                              trial.accuracy, z=self.result.reference["margin_z"])
            trial.within_budget = trial.drop_points + trial.margin_points <= self.options.max_drop + 1e-9
        trial.id = len(self.result.trials) + 1
        self.result.trials.append(trial)
        best = self.best(trial.profile)
        self.progress.trial_done(f"best {best.gzip_bytes / 1024:.1f} KB gzip, {best.p50_ms:.3f} ms, drop "
                                 f"{best.drop_points:+.2f} pt" if best is not None else None)
        return trial

    # -- choice (modelpress.search.choice) -------------------------------------------------------------------
    def best(self, profile: str) -> Trial | None:
        return best_trial(self.result.trials, profile, self.options.objective)

    fastest = staticmethod(fastest)

    def passed(self, profile: str, family: str | None = None) -> list[Trial]:
        return [t for t in self.result.trials
                if t.profile == profile and t.passed and (family is None or t.settings.family == family)]

    def measurer(self, profile: DeviceProfile) -> Measurer:
        """The profile's measurer on this search's held-out data (counts the samples each candidate flips)."""
        return Measurer(profile, self.data.x_val, self.data.y_val, self.calibration, self.options.latency_runs,
                        source_correct=self.source_correct)

    def run(self) -> SearchResult:
        from modelpress.search.strategy import Strategy

        self.start = time.perf_counter()
        self.executor = make_executor(self)
        previous = _catch_ctrl_c(self)
        try:
            self._run_profiles(Strategy)
            self.result.execution = self.executor.describe()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
                sys.unraisablehook = sys.__unraisablehook__
            self.executor.close()
        self.result.seconds = time.perf_counter() - self.start
        self.result.cache = {"folder": str(self.cache.folder), "hits": self.cache.hits, "misses": self.cache.misses}
        return self.result

    def _run_profiles(self, Strategy: Any) -> None:  # noqa: N803 - a class, imported late by run()
        for profile_index, profile in enumerate(self.profiles):
            if self.interrupted:  # Ctrl-C: the profiles after it get no trial, and say so
                choose(self, profile)
                continue
            if self.options.time_budget is not None:
                # an equal share of what is left: a profile that finishes early leaves its time to the next ones,
                # and none starts with nothing because an earlier one spent the whole budget
                now = time.perf_counter()
                left = self.options.time_budget - (now - self.start)
                share = max(left, 0.0) / (len(self.profiles) - profile_index)
                self.slice_end = now + share
                self.result.slices[profile.name] = round(share, 1)
            measurer = self.measurer(profile)
            self.progress.start(profile.name)
            try:
                Strategy(self, profile, measurer).run()
            except KeyboardInterrupt:
                # Ctrl-C ends the search, not the run: the trial under way is lost, every measured one is kept
                # and chosen from (a user stopping an hour-long search wants its best so far, not a traceback)
                self.interrupted = True
                self.executor.abort()
            finally:
                self.progress.close()
            if self.interrupted:  # also where TensorFlow swallowed the KeyboardInterrupt (in a __del__)
                self.result.stopped = (f"interrupted (Ctrl-C) after {time.perf_counter() - self.start:.0f} s: the "
                                       f"choice is among the {len(self.result.trials)} trial(s) measured by then; "
                                       "a rerun takes them from the cache")
            choose(self, profile)

def _catch_ctrl_c(search: Search) -> Any:
    """From now on the first Ctrl-C marks ``search`` interrupted (and raises KeyboardInterrupt, which ends the
    trial under way), a second one aborts as usual. The previous handler, to restore; None off the main thread
    (the API called from a thread: Python delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)

    def first(signum: int, frame: Any) -> None:
        search.interrupted = True
        signal.signal(signal.SIGINT, previous)
        raise KeyboardInterrupt

    def unraisable(info: Any, hook: Any = sys.unraisablehook) -> None:
        # the interrupt landing in a finalizer (TensorFlow's __del__s) would print "Exception ignored ...
        # Traceback"; the search still ends at the next trial, so there is nothing to show
        if info.exc_type is not KeyboardInterrupt:
            hook(info)

    signal.signal(signal.SIGINT, first)
    sys.unraisablehook = unraisable
    return previous


def _training_text(settings: Settings) -> str:
    """What the progress line says while ``settings``'s model trains, named by its first step: QAT, L0 gates'
    training, else fine-tuning (a pruned candidate that ends on the int4 grid is still fine-tuning)."""
    epochs = sum(s.get("epochs", settings.epochs) for s in settings.steps if s["type"] != "int8")
    first = settings.steps[0]["type"] if settings.steps else ""
    what = {"qat": "quantization-aware training", "l0": "training"}.get(first, "fine-tuning")
    return f"{what} {settings.describe()}: {epochs} epoch(s)"
