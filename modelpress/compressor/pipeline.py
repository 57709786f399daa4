"""Run a recipe's steps in order on a model: apply, fine-tune, strip; one record per step.

    model, steps, notes = run_recipe(model, "keras3", load_recipe("deep-compression"), data, quiet=False)

tf_keras models go through tfmot for pruning, m:n sparsity, clustering and QAT; Keras 3 models (which
tfmot cannot wrap) through the native implementations. Regularization and structured pruning are
native for both. Zeros made by an earlier pruning step are kept through later fine-tuning.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from modelpress.compressor import pruning
from modelpress.compressor.clustering import Clusterer
from modelpress.compressor.data import Dataset
from modelpress.compressor.finetune import FineTune, finetune
from modelpress.compressor.flavors import clone_model, variable_value
from modelpress.compressor.gates import L0Gates
from modelpress.compressor.recipe import Recipe, Step
from modelpress.compressor.regularizers import Penalty
from modelpress.compressor.schedules import make_schedule
from modelpress.compressor.structured import slim_model

DISTILL_TEMPERATURE = 4.0  # a recover step's soft targets, as the fine-tuning default
PTQ_NOTE = ("Keras 3 model: tfmot cannot wrap Keras 3 models, so its qat step fake-quantizes the kernels to int8 "
            "(per channel, straight-through gradients) while it trains; activation ranges come from calibration at "
            "the int8 conversion")


def _kernel_sparsity(model: Any) -> float:
    """Fraction of zeros over all kernels (what tfmot reached before the exact final mask)."""
    from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value

    values = [variable_value(kernel_variable(layer)) for layer in kernel_layers(model)]
    return float(sum((v == 0).sum() for v in values) / max(sum(v.size for v in values), 1))


def _record(epochs: int, history: dict[str, Any]) -> dict[str, Any]:
    """What a fine-tuning step reports: its epochs, the loss and validation curves, the epoch it kept."""
    return {"epochs": epochs, "loss": history["loss"], "val_accuracy": history["val_accuracy"],
            "val_epoch": history["val_epoch"], "best_epoch": history["best_epoch"]}


class _Runner:
    def __init__(self, flavor: str, data: Dataset, settings: FineTune, teacher: Any, quiet: bool, source: Any = None):
        self.flavor, self.data, self.settings, self.teacher, self.quiet = flavor, data, settings, teacher, quiet
        self.source = source  # the uncompressed model, for a recover step's distillation
        self.notes: list[str] = []

    def steps_for(self, epochs: int) -> int:
        return int(np.ceil(len(self.data.x_train) / self.settings.batch_size)) * epochs

    def tune(self, model, step: Step, hooks=(), penalty=None, gates=None, rate: float = 1.0) -> dict[str, Any]:
        epochs = self.epochs(step)
        settings = self.settings if rate == 1.0 else \
            dataclasses.replace(self.settings, learning_rate=self.settings.learning_rate * rate)
        history = finetune(model, self.data, settings, self.flavor, hooks=list(hooks), penalty=penalty,
                           teacher=self.teacher, gates=gates, quiet=self.quiet, desc=step.type, epochs=epochs)
        return _record(epochs, history)

    def epochs(self, step: Step) -> int:
        return self.settings.epochs if step.epochs is None else step.epochs

    def tfmot_ok(self, step: Step) -> bool:
        return self.flavor == "tf_keras" and self.epochs(step) > 0

    def prune(self, model, step: Step):
        p = step.params
        schedule = make_schedule(p["schedule"], p["sparsity"], self.steps_for(self.epochs(step)), p["frequency"])
        if self.tfmot_ok(step):
            from modelpress.compressor import tfmot_backend

            wrapped, hook, _ = tfmot_backend.prune(model, schedule, layers=p["layers"])
            info = self.tune(wrapped, step, [hook])
            model = tfmot_backend.strip_pruning(wrapped)
            info["tfmot_sparsity"] = _kernel_sparsity(model)
            pruning.MagnitudePruner(model, schedule, p["layers"]).end()  # exact final sparsity, as native
            how = "tfmot prune_low_magnitude"
        else:
            hooks = [pruning.KeepZeros(model), pruning.MagnitudePruner(model, schedule, p["layers"])]
            info = self.tune(model, step, hooks)  # zeros from an earlier step (other layers) are kept
            how = "native masks"
        return model, f"prune: {p['sparsity']:.0%} magnitude pruning, {p['schedule']} schedule ({how}), " \
                      f"{info['epochs']} epoch(s) fine-tuning", info

    def prune_mn(self, model, step: Step):
        m, n = (int(v) for v in step.params["pattern"].split(":"))
        if self.tfmot_ok(step):
            from modelpress.compressor import tfmot_backend

            wrapped, hook, skipped = tfmot_backend.prune(model, m_by_n=(m, n), layers=step.params["layers"])
            info = self.tune(wrapped, step, [hook])
            model = tfmot_backend.strip_pruning(wrapped)
            how = "tfmot sparsity_m_by_n"
        else:
            pruner = pruning.MNPruner(model, m, n, step.params["layers"])
            skipped = pruner.skipped
            info = self.tune(model, step, [pruner])
            how = "native masks"
        if skipped:
            self.notes.append(f"{m}:{n} sparsity left {', '.join(skipped)} dense: the input axis is not a "
                              f"multiple of {n}")
        info["skipped"] = skipped
        return model, f"prune_mn: {m}:{n} sparsity ({how}), {info['epochs']} epoch(s) fine-tuning", info

    def regularize(self, model, step: Step):
        p = step.params
        penalty = Penalty(model, p["penalty"], p["strength"], p["layers"])
        info = self.tune(model, step, [pruning.KeepZeros(model)], penalty=penalty)
        return model, f"regularize: {p['penalty']} penalty, lambda={p['strength']:g}, on " \
                      f"{len(penalty.layers)} layer(s), {info['epochs']} epoch(s)", info

    def l0(self, model, step: Step):
        p = step.params
        gates = L0Gates(model, p["strength"], p["layers"], groups=p["groups"])
        info = self.tune(model, step, gates=gates)
        info["zeros"] = gates.strip()  # apply the test-time gates: exact zeros, nothing left wrapped
        info["removed"] = gates.removed()
        share = gates.count and sum(info["zeros"][layer.name] * variable_value(var).size
                                    for layer, var in zip(gates.layers, gates.targets)) / gates.count
        return model, f"l0: hard-concrete gates under an L0 penalty, lambda={p['strength']:g}, on " \
                      f"{len(gates.layers)} layer(s), {info['epochs']} epoch(s): {share:.1%} of their weights " \
                      "exactly zero" + "".join(f", {n} {k} removed" for k, n in info["removed"].items()), info

    def recover(self, model, step: Step):
        """Fine-tune with every zero held (the mask cannot change, so neither can the size), from a share of the
        rate decaying to 0, distilled from the source, the best epoch on the validation split kept."""
        p = step.params
        settings = dataclasses.replace(self.settings, learning_rate=self.settings.learning_rate * p["rate"],
                                       restore_best=True, schedule="cosine",
                                       distill={"alpha": p["alpha"], "temperature": DISTILL_TEMPERATURE}
                                       if p["alpha"] > 0 and self.source is not None else None)
        epochs = self.epochs(step)
        history = finetune(model, self.data, settings, self.flavor, hooks=[pruning.KeepZeros(model)],
                           teacher=self.source if settings.distill else None, quiet=self.quiet, desc="recover",
                           epochs=epochs)
        info = _record(epochs, history)
        how = f", distilled (alpha {p['alpha']:g})" if settings.distill else ""
        return model, f"recover: {epochs} epoch(s) with the zeros held, from {settings.learning_rate:.3g} decaying " \
                      f"to 0{how}, best epoch on the validation split ({history['best_epoch']}) kept", info

    def slim(self, model, step: Step):
        p = step.params
        result = slim_model(model, p["ratio"], p["criterion"], self.flavor)
        new = result.model
        info = self.tune(new, step, [pruning.KeepZeros(new)])
        info.update(kept=result.kept, removed_channels=result.removed_channels)
        return new, f"slim: removed {result.removed_channels} channels/units ({p['ratio']:.0%} of each of " \
                    f"{result.groups} prunable group(s), ranked by {p['criterion']}), {info['epochs']} epoch(s) " \
                    "recovery", info

    def cluster(self, model, step: Step):
        p = step.params
        if self.tfmot_ok(step):
            from modelpress.compressor import tfmot_backend

            wrapped = tfmot_backend.cluster(model, p["clusters"], p["preserve_sparsity"], p["layers"])
            info = self.tune(wrapped, step, [pruning.KeepZeros(wrapped)] if p["preserve_sparsity"] else [])
            model = tfmot_backend.strip_clustering(wrapped)
            how = "tfmot cluster_weights"
        else:
            hooks = [Clusterer(model, p["clusters"], p["preserve_sparsity"], p["layers"])]
            if p["preserve_sparsity"] and p["layers"]:
                hooks.append(pruning.KeepZeros(model))  # the layers left out keep their zeros too
            info = self.tune(model, step, hooks)
            how = "native k-means"
        keep = ", zeros kept" if p["preserve_sparsity"] else ""
        return model, f"cluster: {p['clusters']} clusters per layer{keep} ({how}), {info['epochs']} epoch(s) " \
                      "centroid fine-tuning", info

    def qat(self, model, step: Step):
        if step.params.get("bits", 8) == 4:  # weight sharing on the int4 grid: the native hook, both flavours
            from modelpress.compressor.fake_quant import WeightFakeQuant

            per_tensor = step.params.get("granularity") == "tensor"
            hook = WeightFakeQuant(model, bits=4, per_tensor=per_tensor)
            info = self.tune(model, step, [hook, pruning.KeepZeros(model)], rate=step.params.get("rate", 1.0))
            hook.strip()
            zeros = _kernel_sparsity(model)
            where = "kernel" if per_tensor else "output channel"
            return model, f"qat: weights trained on the int4 grid (15 shared values per {where}, " \
                          f"straight-through), {info['epochs']} epoch(s); {zeros:.1%} of the kernels zero", info
        if self.flavor != "tf_keras":
            from modelpress.compressor.fake_quant import WeightFakeQuant

            # after the fake-quantization hook restores the float weights, the zeros of earlier pruning are put back
            info = self.tune(model, step, [WeightFakeQuant(model), pruning.KeepZeros(model)])
            self.notes.append(PTQ_NOTE)
            return model, f"qat: int8 weight fake-quantization (straight-through), {info['epochs']} epoch(s)", info
        from modelpress.compressor import tfmot_backend

        wrapped = tfmot_backend.quantize(model)
        info = self.tune(wrapped, step)
        plain, missing = tfmot_backend.strip_quantization(wrapped, model)
        if missing:
            self.notes.append(f"QAT weights not found for {', '.join(missing)}; their weights were kept")
        self.notes.append("QAT (tfmot quantize_model) trained the weights under int8 fake quantization; the model "
                          "is saved as plain float weights and int8 conversion calibrates their ranges")
        return plain, f"qat: quantization-aware training (tfmot), {info['epochs']} epoch(s)", info

    def int8(self, model, step: Step):
        return model, "int8: full-integer int8 quantization at conversion (sizes and int8 accuracy below)", {}


def run_recipe(model: Any, flavor: str, recipe: Recipe, data: Dataset, *, quiet: bool = True,
               teacher: Any = None) -> tuple[Any, list[dict[str, Any]], list[str]]:
    """Apply every step of ``recipe`` to a copy of ``model``; returns (model, step records, notes)."""
    settings = recipe.finetune.for_model(model)
    distills = any(step.type == "recover" and step.params["alpha"] > 0 for step in recipe.steps)
    if (settings.distill is not None or distills) and teacher is None:
        teacher = clone_model(model, flavor)
    runner = _Runner(flavor, data, settings, teacher if settings.distill is not None else None, quiet, teacher)
    current = clone_model(model, flavor)
    records = []
    for step in recipe.steps:
        start = time.perf_counter()
        current, summary, info = getattr(runner, step.type)(current, step)
        records.append({"type": step.type, "params": step.params, "summary": summary,
                        "seconds": round(time.perf_counter() - start, 2),
                        **{k: v for k, v in info.items()
                           if k in ("epochs", "loss", "val_epoch", "val_accuracy", "best_epoch", "removed_channels",
                                   "zeros", "removed", "skipped", "tfmot_sparsity")}})
    best = "; the best epoch on the validation split kept" if settings.restore_best else ""
    runner.notes.append(f"fine-tuning: {settings.optimizer} from learning rate {settings.learning_rate:.3g}, "
                        f"{settings.schedule} schedule{best}")
    if settings.distill is not None:
        alpha, temperature = settings.distill.get("alpha", 0.5), settings.distill.get("temperature", 4.0)
        runner.notes.append(f"knowledge distillation from the uncompressed model (alpha {alpha}, "
                            f"temperature {temperature})")
    return current, records, runner.notes
