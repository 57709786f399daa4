"""The order of trials for one profile: cheap steps first, bisection on ratios, hopeless branches cut.

1. ``quantize``: the source model under every quantization the device runs (no training).
2. ``fallback``: full int8 failed the budget: rank layers by their int8 error in one debug pass, keep the k
   most harmful in float, the smallest k that fits found by galloping (1, 2, 4, ...) then bisection (CPU /
   GPU only).
3. ``qat``: int8 post-training quantization missed the budget or the device's agreement floor (integer-only
   devices cannot fall back to float): quantization-aware training, its length searched (the base epochs,
   then twice as many). When it passes where plain int8 did not, every compressed candidate after it ends in a
   QAT step too.
3. ``prune``: global magnitude pruning, bisection on the sparsity; the first failing level above the best
   gets one retry with twice the fine-tuning.
4. ``prune-layerwise``: per-layer levels along a size-aware path through one-shot sensitivity curves
   (large redundant layers first), bisection along the path; only points that prune more than the best
   global level are tried.
5. ``l0``: hard-concrete gates trained under an L0 penalty (exact zeros during training), bisection on
   log10 of the penalty strength λ (larger λ, more zeros).
6. ``cluster``: the smallest passing pruned (or gated) model plus 16 (then 8) shared values per layer.

Compact storage: where the device runs int4 weights (LiteRT's quantizer, CPU / GPU, and the source's int4 trial broke
none of the profile's constraints), every pruned or gated candidate ends with its weights trained onto the int4 grid
(15 shared values per output channel, zeros kept) and is stored as int4: 4 bits a weight where int8 codes take 8, so
the bisections judge the artifact that would ship. Its shared values need no clustering after it.
7. ``prune-mn``: 2:4 sparsity.  8. ``slim``: structured channel removal, bisection on the ratio.

With more than one worker the strategy submits what can run at once (:mod:`modelpress.search.bisection` says
which points a gallop or a bisection batches, and why the search still takes exactly the sequential decisions).

A latency objective runs ``slim`` right after the cheap steps, and where int8 timed no faster than another
quantization that passed (:func:`modelpress.search.choice.int8_buys_speed`: XNNPACK's float32 kernels beat int8 on
an AVX2 host without VNNI) it skips the fallback and QAT too, which only rescue int8: slimming gets the time. It
skips the families that keep every channel (``SAME_SPEED``: zeros, shared values and int4 codes run at the dense
speed) unless ``--families`` names them, and a slimming point faster than every passer that misses (not hopelessly)
gets its fine-tuning length searched (2x, then 4x the base epochs, or 4x alone where the time left pays for no
more: :func:`~modelpress.search.bisection.lengthen`); a length that passes is kept for the points after it.
Slimming fine-tunes distilled from the source. For
size, compressed candidates use the profile's own quantization where it passed, else the smallest that passed;
for latency, the fastest that passed (latencies within the noise tie, broken by accuracy, then size). When none
passed on the source, they are skipped (compression only loses accuracy from there).

    Strategy(search, profile, measurer).run()
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from modelpress.device_profiles import DeviceProfile
from modelpress.errors import ModelpressError
from modelpress.search import choice, space
from modelpress.search.bisection import LENGTHS, gallop, lengthen, tree_points
from modelpress.search.measure import Measurer
from modelpress.search.space import Settings
from modelpress.search.trial import Trial, is_floor

# log10 of the L0 strength λ: lowest, highest, first tried. Each point costs a full gate training, so the first
# (λ≈18) sits near where LeNet-300-100 (18k images, 30 epochs) crossed a 0.5 pt budget: λ=31.6 left 97.1% zeros at
# -0.5 pt on validation, λ=60 98.5% at -1.0, λ=200 99.5% at -3.4; λ=15.4 (18 epochs, + cluster 16) 92.7% at +0.1.
L0_LOG10 = (0.0, 2.5, 1.25)
HOPELESS = 4.0  # a trial this many budgets (plus 2 points) over ends its branch's way down
# they keep every channel: TFLite runs their zeros, shared values and int4 codes with the dense kernels (MobileNetV2,
# one thread: prune 90% + int4 0.245 ms against float32's 0.112), so a latency search spends no time on them
#: a ladder's rungs cost their fine-tuning and a fifth more for slimming, conversion and scoring (MobileNetV2 slim 50%,
#: 3 epochs: 78 s a trial where its epochs took ~22 s each)
LADDER_OVERHEAD = 1.2
SAME_SPEED = ("prune", "prune-layerwise", "l0", "cluster", "prune-mn")


class Strategy:
    def __init__(self, search, profile: DeviceProfile, measurer: Measurer):
        self.search, self.profile, self.m = search, profile, measurer
        self.options = search.options
        self.quant = "int8"
        self.fallback: tuple[str, ...] = ()
        self.qat_tail = False  # int8 holds only after QAT: compressed candidates end with a QAT step
        self.stopped = False
        self.width = search.executor.workers  # trials that can run at once
        self.ahead: dict[tuple, Trial] = {}  # measured ahead of need (free workers), by candidate
        self.riders: list[Settings] = []  # candidates of independent branches the search will surely run later
        self.compact = False  # pruned / gated candidates end on the int4 grid, stored as int4 (after step 1)

    def wanted(self, family: str) -> bool:
        return not self.stopped and (self.options.families is None or family in self.options.families)

    def trial(self, settings: Settings) -> Trial | None:
        if self.stopped and not is_floor(settings):  # post-training int8 runs for every profile (Search.trials)
            return None
        result = self.search.trial(self.profile, self.m, settings)
        if result is None:
            self.stopped = True
        return result

    def trials(self, batch: list[Settings]) -> list[Trial | None]:
        """Several candidates at once (on the workers), in order; None for those the budget did not allow."""
        if self.stopped:
            return [None] * len(batch)
        results = self.search.trials(self.profile, self.m, batch)
        if any(r is None for r in results):
            self.stopped = True
        return results

    def probe(self, settings: Settings, ahead: Callable[[], list[Settings]]) -> Trial | None:
        """The trial the sequential search needs next; with free workers, the candidates ``ahead()`` (those it
        may need after it) run beside it and are kept for when it asks."""
        key = _key(settings)
        if key in self.ahead:
            return self.ahead.pop(key)
        if self.width == 1:
            return self.trial(settings)
        batch, keys = [settings], {key}
        for extra in [*ahead(), *self.riders]:
            if len(batch) < self.width and _key(extra) not in keys and _key(extra) not in self.ahead:
                batch.append(extra)
                keys.add(_key(extra))
        self.riders = [r for r in self.riders if _key(r) not in keys]
        results = self.trials(batch)
        for extra, trial in zip(batch[1:], results[1:]):
            if trial is not None:
                self.ahead[_key(extra)] = trial
        return results[0]

    def settings(self, family: str, steps: tuple, epochs: int | None = None) -> Settings:
        if self.compact and family in space.COMPACT_FAMILIES:
            steps = (*steps, space.int4_grid_step(epochs or self.search.epochs, family))
            return Settings(family, steps, epochs or self.search.epochs, "int4", batch_size=self.search.batch_size)
        if self.qat_tail:
            steps = (*steps, dict(space.QAT_STEP))
        # slimming distilled: MobileNetV2 slim 50% + 6 epochs, 79.37% alone, 82.31% with the source's soft targets
        return Settings(family, steps, epochs or self.search.epochs, self.quant, self.fallback,
                        batch_size=self.search.batch_size, distill=family == "slim")

    def _compact_storage(self) -> bool:
        """The device runs int4 weights and the source's int4 trial broke none of its constraints."""
        if not space.runs_int4(self.profile.hardware, self.profile.quantizes_with == "litert"):
            return False
        int4 = next((t for t in self.search.result.trials if t.profile == self.profile.name
                     and t.settings.family == "quantize" and t.settings.quantization == "int4"), None)
        return int4 is not None and int4.error is None and all(p.startswith("top-1 agreement") for p in int4.problems)

    def near(self) -> float:
        """The drop (points) within which twice the fine-tuning may bring a candidate in."""
        return max(2 * self.options.max_drop, self.options.max_drop + 1.0)

    def narrow_miss(self, trial: Trial) -> bool:
        return trial.drop_points is not None and trial.drop_points <= self.near()

    def hopeless(self, trial: Trial) -> bool:
        return trial.drop_points is not None and trial.drop_points > HOPELESS * self.options.max_drop + 2.0

    def run(self) -> None:
        self.quantize()
        rescue = self.options.objective != "latency" or self._int8_buys_speed()
        if rescue and self.wanted("fallback"):
            self.fallback_search()
        if rescue and self.wanted("qat"):
            self.qat_search()
        base = self._pick_quantization()
        self.compact = self._compact_storage()
        if base is None:
            self.search.result.notes.append(self._no_base_note())
            return
        order = [f for f in ["prune", "prune-layerwise", "l0", "cluster", "prune-mn", "slim"] if self.wanted(f)]
        if self.options.objective == "latency":
            named = self.options.families or ()
            skipped = [f for f in order if f in SAME_SPEED and f not in named]
            order = ["slim", *[f for f in order if f != "slim" and f not in skipped]] if "slim" in order else [
                f for f in order if f not in skipped]
            if skipped:
                self.search.result.notes.append(
                    f"{self.profile.name}: {', '.join(skipped)} skipped for latency: they keep every channel, and "
                    "TFLite runs their zeros, shared values and int4 codes at the dense speed (name them in "
                    "--families to try them anyway)")
        if self.width > 1:  # independent of every result before them: they ride along in batches with free slots
            self.riders = [s for f, s in (("prune-mn", self._prune_mn_settings()), ("slim", self._slim_start()))
                           if f in order]
        for family in order:
            if self.wanted(family):
                getattr(self, family.replace("-", "_"))()

    # -- 1, 2: no training ----------------------------------------------------------------------------
    def _no_base_note(self) -> str:
        """Why compression was not tried: no quantization passed to carry it."""
        name = self.profile.name
        if self.stopped:
            return f"{name}: the time budget ended before a quantization within the budget was found; compression " \
                "was not tried"
        untried = [q for q in space.quantizations_for(self.profile.hardware, self.profile.quantizes_with == "litert")
                   if q != "int8"] if not self.wanted("quantize") else []
        if untried:
            return (f"{name}: the source model already misses the budget under int8, the only quantization tried "
                    f"(--only left out quantize); compression was skipped (it only loses accuracy from there): add "
                    f"--only quantize to try {', '.join(untried)} as its base")
        return (f"{name}: the source model already misses the budget under every quantization the device runs; "
                "compression was skipped (it only loses accuracy from there)")

    def quantize(self) -> None:
        batch = [Settings("quantize", quantization=quant)
                 for quant in space.quantizations_for(self.profile.hardware, self.profile.quantizes_with == "litert")
                 if self.wanted("quantize") or quant == "int8"]
        first = next((s for s in batch if s.quantization == "none"), None)
        if self.options.objective == "latency" and first is not None:
            # float32 first: what times slower than it is not scored (scoring a slow int16x8 took minutes)
            reference = self.trial(first)
            batch = [s for s in batch if s is not first]
            if reference is not None and reference.passed and reference.p50_ms:
                gate = reference.p50_ms + (reference.p50_spread_ms or 0.0)
                batch = [dataclasses.replace(s, slower_than_ms=gate) for s in batch]
        if self.width > 1:
            self.trials(batch)
            return
        for settings in batch:
            self.trial(settings)

    def _int8(self) -> Trial | None:
        return next((t for t in self.search.result.trials if t.profile == self.profile.name
                     and t.settings.family == "quantize" and t.settings.quantization == "int8"), None)

    def fallback_search(self) -> None:
        int8 = self._int8()
        device = [p for p in (int8.problems if int8 else []) if not p.startswith("top-1 agreement")]
        if (int8 is None or int8.passed or int8.error or device or self.profile.input_dtype != "float32"
                or self.profile.hardware in space.INTEGER_ONLY):
            return
        from modelpress.search.fallback import rank_layers

        search = self.search
        search.progress.phase("ranking int8 layers for the float fallback (one debug pass)")
        started = time.perf_counter()
        try:
            ranked = rank_layers(search.model, search.calibration)
        except ModelpressError as err:
            search.result.notes.append(f"{self.profile.name}: per-layer fallback unavailable: {err}")
            return
        finally:
            search.record_phase(f"{self.profile.name}: fallback ranking", time.perf_counter() - started)
        if not ranked:
            return
        search.result.notes.append(
            f"{self.profile.name}: int8 layers ranked by their error against float in one debug pass (rms error "
            "as a share of the layer's mean float output, most harmful first): "
            + ", ".join(f"{r.short} {r.relative_error:.1%}" for r in ranked[:12])
            + (f" (+{len(ranked) - 12} more)" if len(ranked) > 12 else ""))
        order = tuple(r.name for r in ranked)
        if self.profile.quantizes_with == "litert":
            # LiteRT's quantizer can keep a layer's int8 weights and give it int16 activations: the smaller step
            # first, float only where int16 is not enough
            from modelpress.search.fallback import INT16

            wider = tuple(INT16 + name for name in order)
            found = self.gallop(lambda k: Settings("fallback", quantization="int8", fallback=wider[:k]), len(wider))
            if found is not None or self.stopped:
                return
        self.gallop(lambda k: Settings("fallback", quantization="int8", fallback=order[:k]), len(order))

    def gallop(self, make: Callable[[int], Settings], n: int) -> int | None:
        return gallop(self.probe, make, n, self.width)

    def qat_search(self) -> None:
        """Quantization-aware training where int8 PTQ missed, on devices that run int8 (or where it was tried)."""
        int8 = self._int8()
        if int8 is None or int8.passed or (int8.error or "").startswith("compression failed"):
            return
        if int8.error is None and any(not p.startswith("top-1 agreement") for p in int8.problems):
            return  # a device constraint (ops, size, I/O types) that training cannot fix
        if self.search.passed(self.profile.name, "fallback") and self.profile.hardware not in space.INTEGER_ONLY:
            return  # a mixed int8/float model already fits: no training needed
        for epochs in (self.search.epochs, 2 * self.search.epochs):
            trial = self.trial(Settings("qat", (dict(space.QAT_STEP),), epochs, "int8",
                                        batch_size=self.search.batch_size))
            if trial is None:
                return
            if trial.passed:
                self.qat_tail = True
                self.search.result.notes.append(
                    f"{self.profile.name}: int8 holds only after quantization-aware training ({epochs} epochs); "
                    "compressed candidates end with a QAT step")
                return

    def _int8_buys_speed(self) -> bool:
        """Latency objective: whether int8 timed faster than the other passing quantizations (else the fallback
        and QAT, which only rescue int8, are skipped and slimming comes next)."""
        if choice.int8_buys_speed(self.search.result.trials, self.profile.name):
            return True
        int8 = self._int8()
        if self.wanted("fallback") or self.wanted("qat"):
            self.search.result.notes.append(
                f"{self.profile.name}: int8 timed no faster than the fastest other quantization that passed "
                f"({int8.p50_ms if int8 else 0.0:.4f} ms) on this host, so its float fallback and quantization-aware "
                "training were skipped: the latency search went to slimming (channels removed) instead")
        return False

    def _pick_quantization(self) -> Trial | None:
        """The quantization compressed candidates use: the profile's own where it passed (size objective), the
        fastest passer for a latency objective (latencies within the noise tie, broken by accuracy, then size)."""
        mine = [t for t in self.search.result.trials if t.profile == self.profile.name and t.passed]
        if not mine:
            return None
        if self.options.objective == "latency":
            plain = [t for t in mine if t.settings.family in ("quantize", "fallback", "qat") and t.p50_ms]
            if plain:
                best = choice.fastest(plain)
                self.quant, self.fallback = best.settings.quantization, best.settings.fallback
                self.qat_tail = best.settings.family == "qat"
                return best
        own = [t for t in mine if t.settings.quantization == self.profile.quantization and not t.settings.fallback
               and (not t.settings.compressed or t.settings.family == "qat")]
        best = own[0] if own else min(mine, key=lambda t: (t.gzip_bytes or 0, len(t.settings.fallback)))
        self.quant, self.fallback = best.settings.quantization, best.settings.fallback
        return best

    # -- bisection --------------------------------------------------------------------------------------
    def bisect(self, make: Callable[[float, int | None], Settings], lo: float, hi: float, start: float,
               resolution: float, discrete: bool = False) -> float | None:
        """The largest value in [lo, hi] whose candidate passes (monotone assumption); None if none did.

        A first failure far over budget that stays hopeless one halving lower ends the branch; the lowest
        failing value above the best, when it missed narrowly, gets one retry with twice the fine-tuning (at
        the end). For a latency objective a miss faster than every passer gets its fine-tuning length searched
        at once, before finer steps (:meth:`lengthen`); a length that passes is used from then on; and once the
        bisection has closed, time left goes to the lowest miss above the best that could still win and was not
        trained longer (:meth:`time_left_for`): if it passes, the bisection goes on above it.
        """
        best, x, fail_at, near, retried, length = None, start, None, False, set(), None
        misses: dict[float, Trial] = {}
        if discrete:
            lo, hi = lo - 1, hi + 1  # open bounds: lo known passing, hi known failing
        top = hi

        def closed() -> bool:
            return (hi - lo <= 1) if discrete else (hi - lo < resolution)

        while True:
            trial = self.probe(make(x, length), lambda x=x, lo=lo, hi=hi, e=length: [
                make(j, e) for j in tree_points(x, lo, hi, self.width - 1, resolution, discrete)])
            if trial is None or (trial.error or "").startswith("compression failed"):
                return best  # out of time, or this technique does not apply to the model at all
            passed = trial.passed
            if not passed and self.worth_longer(trial):
                retried.add(x)
                longer, epochs = self.lengthen(lambda e, x=x: make(x, e), trial, length or self.search.epochs)
                if longer is None:
                    return best
                passed, length = longer.passed, epochs if longer.passed else length
            if passed:
                best, lo = x, x
            else:
                hi, fail_at, misses[x] = x, x, trial
                near = self.narrow_miss(trial)
                if best is None and self.hopeless(trial) and x < start:
                    return None
            if closed():
                passed_at = self.time_left_for(misses, retried, length, make, best)
                if passed_at is None:
                    break
                # that miss passed when trained longer: the points above it were judged at the shorter length, so
                # the bisection goes on above it at the longer one
                best, length = passed_at
                lo, hi, fail_at, near = best, top, None, False
                if closed():
                    break
            x = (lo + hi) // 2 if discrete else round((lo + hi) / 2, 4)
            if discrete and x == lo:
                x += 1
        # one longer try for a narrow miss; a latency search lengthens only what could be faster than every passer
        # (the ladders above), so a miss left here cannot win: MobileNetV2 slim 75% missed at 12 epochs, timed
        # no faster than slim 70%, and was retried at 6
        if (near and fail_at is not None and fail_at not in retried and (best is None or fail_at > best)
                and self.options.objective != "latency"):
            trial = self.trial(make(fail_at, 2 * (length or self.search.epochs)))
            if trial is not None and trial.passed:
                best = fail_at
        return best

    def time_left_for(self, misses: dict[float, Trial], retried: set, length: int | None,
                      make: Callable[[float, int | None], Settings], best: float | None) -> tuple[float, int] | None:
        """Latency, once a bisection has closed: where the time left pays for the length ladder's longest rung, the
        lowest miss above the best that is faster than every passer and not yet trained longer (skipped as
        hopeless at the base length, say) gets the ladder. MobileNetV2 slim 50% lost 9.3 pt at 3 distilled epochs on
        one baseline and 3.6 on another, where 12 epochs passed at -2.5 pt: the drop at the base length says little
        of the longest. The lowest miss of all may be no faster than a passer (slim 20% and 30% timed within the
        noise of float32 on a busy host, while slim 50% ran 1.8x faster): the first one that could win goes.
        Returns (that point, the epochs it passed at), or None."""
        current, longest = length or self.search.epochs, LENGTHS[-1] * self.search.epochs
        if longest <= current or not self.affords(longest):
            return None
        x = next((x for x in sorted(misses) if x not in retried and (best is None or x > best)
                  and self.could_win(misses[x])), None)
        if x is None:
            return None
        retried.add(x)
        longer, epochs = self.lengthen(lambda e: make(x, e), misses[x], current)
        return (x, epochs) if longer is not None and longer.passed else None

    def worth_longer(self, trial: Trial) -> bool:
        """Latency: a miss on the budget alone, not hopeless, faster above the noise than every passer (ResNet slim
        40% missed by 0.01 pt at 3 epochs and the budget ended on slim 35% before a retry; MobileNetV2 slim 50%
        missed by 4.2 pt at 6 epochs, 1.9x faster)."""
        return self.could_win(trial) and not self.hopeless(trial)

    def could_win(self, trial: Trial) -> bool:
        """Latency: a miss on the budget alone (no error, no broken constraint) faster above the noise than every
        passer, so that a longer fine-tuning could make it the choice."""
        return (self.options.objective == "latency" and not trial.error and not trial.problems
                and trial.drop_points is not None
                and choice.faster_than_passers(trial, self.search.result.trials, self.profile.name))

    def affords(self, epochs: int) -> bool:
        """Whether the time left pays for that many epochs of fine-tuning, with a trial's slimming, conversion and
        scoring (``LADDER_OVERHEAD``)."""
        return LADDER_OVERHEAD * self.search.epoch_cost() * epochs <= self.search.time_left()

    def lengthen(self, make: Callable[[int], Settings], trial: Trial, current: int) -> tuple[Trial | None, int]:
        return lengthen(lambda epochs: self.trial(make(epochs)), trial, current, self.search.epochs, self.near(),
                        self.affords)

    # -- 3-7: compression --------------------------------------------------------------------------------
    def prune(self) -> None:
        self.best_sparsity = self.bisect(lambda s, e: self.settings("prune", space.prune_steps(s), e),
                                         0.5, 0.99, 0.9, 0.02)

    def prune_layerwise(self) -> None:
        from modelpress.search.sensitivity import greedy_path, kernel_sizes, layer_sensitivity, overall_sparsity

        search, n = self.search, max(self.options.rank_samples, 500)
        curves = layer_sensitivity(search.model, search.data.x_val[:n], search.data.y_val[:n])
        sizes = kernel_sizes(search.model)
        floor = getattr(self, "best_sparsity", None) or 0.0
        configs, last = [], floor + 0.003
        for levels in greedy_path(curves, sizes):  # steps that remove a visible share of the weights
            if overall_sparsity(levels, sizes) >= last + 0.003:
                configs.append(levels)
                last = overall_sparsity(levels, sizes)
        search.result.notes.append(f"{self.profile.name}: one-shot pruning sensitivity (points lost) on "
                                   f"{min(n, len(search.data.x_val))} held-out samples: {curves}")
        if not configs:
            return

        def make(index: float, epochs: int | None) -> Settings:
            levels = configs[int(index)]
            e = epochs or self.search.epochs
            return self.settings("prune-layerwise", space.layerwise_steps(levels, e), e)

        self.bisect(make, 0, len(configs) - 1, (len(configs) - 1) // 2, 1.0, discrete=True)

    def l0(self) -> None:
        n, base = len(self.search.data.x_train), self.search.epochs

        def make(x: float, e: int | None) -> Settings:  # a retry (twice the epochs) trains the gates twice as long
            return self.settings("l0", space.l0_steps(10 ** x, e or base, max(1, n * base // (e or base))), e)

        self.bisect(make, L0_LOG10[0], L0_LOG10[1], L0_LOG10[2], 0.25)

    def _best_pruned(self) -> Trial | None:
        pruned = [t for f in ("prune-layerwise", "prune", "l0") for t in self.search.passed(self.profile.name, f)]
        return min(pruned, key=lambda t: t.gzip_bytes or 0) if pruned else None

    def cluster(self) -> None:
        base = self._best_pruned()
        if base is None:
            return
        if base.settings.quantization == "int4":
            return  # already shared values (the int4 grid), stored at 4 bits
        for clusters in (16, 8):
            steps = (*base.settings.steps, space.cluster_step(clusters, base.settings.epochs))
            trial = self.trial(self.settings("cluster", steps, base.settings.epochs))
            if trial is None or not trial.passed:
                return

    def _prune_mn_settings(self) -> Settings:
        return self.settings("prune-mn", ({"type": "prune_mn", "pattern": "2:4"},))

    def prune_mn(self) -> None:
        self.probe(self._prune_mn_settings(), list)

    def _slim_start(self) -> Settings:
        return self.settings("slim", space.slim_steps(0.5))

    def slim(self) -> None:
        self.bisect(lambda r, e: self.settings("slim", space.slim_steps(r), e), 0.1, 0.9, 0.5, 0.1)



def _key(settings: Settings) -> tuple:
    return settings.family, settings.compression_key(), settings.conversion_key()
