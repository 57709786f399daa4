"""The order of trials for one profile: cheap steps first, bisection on ratios, hopeless branches cut.

1. ``quantize``: the source model under every quantization the device runs (no training).
2. ``fallback``: full int8 failed the budget: rank layers by the accuracy each costs in int8 (on a small
   ranking subset), keep the most harmful in float one at a time until the drop fits (CPU / GPU only).
3. ``prune``: global magnitude pruning, bisection on the sparsity; the first failing level above the best
   gets one retry with twice the fine-tuning.
4. ``prune-layerwise``: per-layer levels along a size-aware path through one-shot sensitivity curves
   (large redundant layers first), bisection along the path; only points that prune more than the best
   global level are tried.
5. ``cluster``: the smallest passing pruned model plus 16 (then 8) shared values per layer.
6. ``prune-mn``: 2:4 sparsity.  7. ``slim``: structured channel removal, bisection on the ratio.

A latency objective runs ``slim`` right after the cheap steps. Compressed candidates use the smallest
quantization that passed on the source; when even that failed, they are skipped (compression only loses
accuracy from there).

    Strategy(search, profile, measurer).run()
"""

from __future__ import annotations

from collections.abc import Callable

from modelpress.device_profiles import DeviceProfile
from modelpress.errors import ModelpressError
from modelpress.search import space
from modelpress.search.measure import Measurer
from modelpress.search.space import Settings
from modelpress.search.trial import Trial

HOPELESS = 4.0  # a trial this many budgets (plus 2 points) over ends its branch's way down


class Strategy:
    def __init__(self, search, profile: DeviceProfile, measurer: Measurer):
        self.search, self.profile, self.m = search, profile, measurer
        self.options = search.options
        self.quant = "int8"
        self.fallback: tuple[str, ...] = ()
        self.stopped = False

    def wanted(self, family: str) -> bool:
        return not self.stopped and (self.options.families is None or family in self.options.families)

    def trial(self, settings: Settings) -> Trial | None:
        if self.stopped:
            return None
        result = self.search.trial(self.profile, self.m, settings)
        if result is None:
            self.stopped = True
        return result

    def settings(self, family: str, steps: tuple, epochs: int | None = None) -> Settings:
        return Settings(family, steps, epochs or self.search.epochs, self.quant, self.fallback,
                        batch_size=self.search.batch_size)

    def hopeless(self, trial: Trial) -> bool:
        return trial.drop_points is not None and trial.drop_points > HOPELESS * self.options.max_drop + 2.0

    def run(self) -> None:
        self.quantize()
        if self.wanted("fallback"):
            self.fallback_search()
        base = self._pick_quantization()
        if base is None:
            self.search.result.notes.append(
                f"{self.profile.name}: the source model already misses the budget under every quantization the "
                "device runs; compression was skipped (it only loses accuracy from there)")
            return
        order = ["prune", "prune-layerwise", "cluster", "prune-mn", "slim"]
        if self.options.objective == "latency":
            order = ["slim", *[f for f in order if f != "slim"]]
        for family in order:
            if self.wanted(family):
                getattr(self, family.replace("-", "_"))()

    # -- 1, 2: no training ----------------------------------------------------------------------------
    def quantize(self) -> None:
        for quant in space.quantizations_for(self.profile.hardware, self.profile.quantizes_with == "litert"):
            if self.wanted("quantize") or quant == "int8":
                self.trial(Settings("quantize", quantization=quant))

    def _int8(self) -> Trial | None:
        return next((t for t in self.search.result.trials if t.profile == self.profile.name
                     and t.settings.family == "quantize" and t.settings.quantization == "int8"), None)

    def fallback_search(self) -> None:
        int8 = self._int8()
        device = [p for p in (int8.problems if int8 else []) if not p.startswith("top-1 agreement")]
        if (int8 is None or int8.passed or int8.error or device or self.profile.input_dtype != "float32"
                or self.profile.hardware in space.INTEGER_ONLY):
            return
        search, n = self.search, self.options.rank_samples
        x, y = search.data.x_val[:n], search.data.y_val[:n]
        try:
            base = self.m.accuracy(search.cache.artifact(int8.artifact_key) or self.m.convert(search.model, "int8"),
                                   x, y)
            effect = self._layer_effects(base, x, y)
        except ModelpressError as err:
            search.result.notes.append(f"{self.profile.name}: per-layer fallback unavailable: {err}")
            return
        order = sorted(effect, key=lambda k: -effect[k])
        search.result.notes.append(
            f"{self.profile.name}: int8 layers ranked by the accuracy regained in float (or int16 activations, "
            f"int16x8:) on {len(x)} held-out samples: " + ", ".join(
                f"{k.split('/')[1] if '/' in k else k} {effect[k] * 100:+.1f} pt" for k in order))
        for k in range(1, len(order) + 1):
            trial = self.trial(Settings("fallback", quantization="int8", fallback=tuple(order[:k])))
            if trial is None or trial.passed:
                return

    def _layer_effects(self, base: float, x, y) -> dict[str, float]:
        """{fallback entry: accuracy regained}: each int8 layer alone in float; with LiteRT's quantizer (CPU /
        GPU profiles) also in int16 activations, which wins when it regains nearly as much (int8 weights)."""
        search, effect = self.search, {}
        if self.profile.quantizes_with != "litert":
            from modelpress.search.fallback import quantized_layers, selective_int8

            for name in quantized_layers(search.model, search.calibration):
                if search.time_left() <= 0:
                    break
                effect[name] = self.m.accuracy(selective_int8(search.model, search.calibration, [name]), x, y) - base
            return effect
        from modelpress.converters.tflite import to_tflite_bytes
        from modelpress.model_io import load_model
        from modelpress.search.fallback import INT16, mixed_int8, quantizer_layers

        source = load_model(search.model)
        float_model, name_in = to_tflite_bytes(source, "none"), source.input_specs()[0].name
        for name in quantizer_layers(float_model):
            if search.time_left() <= 0:
                break
            gained = {entry: self.m.accuracy(mixed_int8(float_model, search.calibration, [entry], name_in,
                                                        self.profile.hardware, self.m.threads), x, y) - base
                      for entry in (INT16 + name, name)}
            entry = INT16 + name if gained[INT16 + name] >= gained[name] - 0.001 else name
            effect[entry] = gained[entry]
        return effect

    def _pick_quantization(self) -> Trial | None:
        mine = [t for t in self.search.result.trials if t.profile == self.profile.name and t.passed]
        if not mine:
            return None
        own = [t for t in mine if t.settings.quantization == self.profile.quantization and not t.settings.fallback]
        best = own[0] if own else min(mine, key=lambda t: (t.gzip_bytes or 0, len(t.settings.fallback)))
        self.quant, self.fallback = best.settings.quantization, best.settings.fallback
        return best

    # -- bisection --------------------------------------------------------------------------------------
    def bisect(self, make: Callable[[float, int | None], Settings], lo: float, hi: float, start: float,
               resolution: float, discrete: bool = False) -> float | None:
        """The largest value in [lo, hi] whose candidate passes (monotone assumption); None if none did.

        A first failure far over budget that stays hopeless one halving lower ends the branch; the lowest
        failing value above the best, when it missed narrowly, gets one retry with twice the fine-tuning.
        """
        best, x, fail_at, near = None, start, None, False
        if discrete:
            lo, hi = lo - 1, hi + 1  # open bounds: lo known passing, hi known failing
        while True:
            trial = self.trial(make(x, None))
            if trial is None or (trial.error or "").startswith("compression failed"):
                return best  # out of time, or this technique does not apply to the model at all
            if trial.passed:
                best, lo = x, x
            else:
                hi, fail_at = x, x
                near = trial.drop_points is not None and trial.drop_points <= max(2 * self.options.max_drop,
                                                                                   self.options.max_drop + 1.0)
                if best is None and self.hopeless(trial) and x < start:
                    return None
            if (hi - lo <= 1) if discrete else (hi - lo < resolution):
                break
            x = (lo + hi) // 2 if discrete else round((lo + hi) / 2, 4)
            if discrete and x == lo:
                x += 1
        if near and fail_at is not None and (best is None or fail_at > best):
            trial = self.trial(make(fail_at, 2 * self.search.epochs))  # fine-tuning length: one longer try
            if trial is not None and trial.passed:
                best = fail_at
        return best

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

    def _best_pruned(self) -> Trial | None:
        pruned = [t for f in ("prune-layerwise", "prune") for t in self.search.passed(self.profile.name, f)]
        return min(pruned, key=lambda t: t.gzip_bytes or 0) if pruned else None

    def cluster(self) -> None:
        base = self._best_pruned()
        if base is None:
            return
        for clusters in (16, 8):
            steps = (*base.settings.steps, space.cluster_step(clusters, base.settings.epochs))
            trial = self.trial(self.settings("cluster", steps, base.settings.epochs))
            if trial is None or not trial.passed:
                return

    def prune_mn(self) -> None:
        self.trial(self.settings("prune-mn", ({"type": "prune_mn", "pattern": "2:4"},)))

    def slim(self) -> None:
        self.bisect(lambda r, e: self.settings("slim", space.slim_steps(r), e), 0.1, 0.9, 0.5, 0.1)
