"""The compressor: pruning, m:n sparsity, structured slimming, clustering, regularized fine-tuning and QAT,
for Keras 3 models (native implementations) and tf_keras models (tfmot where tfmot has the technique).

    from modelpress.compressor import load_recipe, builtin_recipes
    builtin_recipes()        # ['cluster-16', 'deep-compression', 'prune-2:4', 'prune-80', ...]
    model, report = modelpress.compress("model.keras", "prune-80", "data.npz")

Modules: ``schedules`` (sparsity schedules), ``pruning`` (magnitude and m:n masks), ``clustering``
(k-means weight sharing), ``regularizers`` (L1 / L2 / group lasso), ``gates`` (L0 hard-concrete gates),
``structured`` (channel removal), ``finetune`` (``FineTune`` and the training loop, distillation),
``tfmot_backend`` (tf_keras only), ``recipe``, ``pipeline`` (runs a recipe), ``report``, ``data``. TensorFlow is
imported by the modules that need it.
"""

from __future__ import annotations

from modelpress.compressor.recipe import STEP_TYPES, Recipe, Step, builtin_recipes, load_recipe
from modelpress.compressor.schedules import ConstantSparsity, PolynomialDecay

__all__ = ["STEP_TYPES", "ConstantSparsity", "PolynomialDecay", "Recipe", "Step", "builtin_recipes", "load_recipe"]
