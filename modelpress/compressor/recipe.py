"""Compression recipes: the steps in order plus fine-tuning settings, in YAML or as Python objects.

    recipe = load_recipe("deep-compression")          # a built-in name, a .yaml path, a dict or a Recipe
    recipe.steps[0]                                    # Step(type='prune', params={'sparsity': 0.9, ...})
    Recipe.from_config(recipe.get_config()) == recipe
    recipe = Recipe("mine", [Step("prune", {"sparsity": 0.5}), Step("cluster", {"clusters": 8})],
                    FineTune(epochs=2))

A recipe file::

    name: prune-80
    description: unstructured magnitude pruning to 80% with a polynomial-decay schedule
    finetune: {epochs: 3, batch_size: 32}       # + learning_rate, schedule, restore_best, distill, ... (FineTune)
    steps:
      - {type: prune, sparsity: 0.8, schedule: polynomial}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from modelpress.compressor.finetune import FineTune
from modelpress.compressor.gates import parse_groups
from modelpress.compressor.schedules import SCHEDULES, check_sparsity
from modelpress.errors import RecipeError


def _fraction(name):
    return lambda v: check_sparsity(v, name)


def _choice(name, options):
    def check(value):
        if value not in options:
            raise RecipeError(f"{name} {value!r} is not one of {', '.join(options)}")
        return value
    return check


def _positive_int(name, minimum=1):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise RecipeError(f"{name} {value!r} must be a whole number >= {minimum}")
        return value
    return check


def _non_negative(name):
    def check(value):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise RecipeError(f"{name} {value!r} is not a number") from None
        if value < 0:
            raise RecipeError(f"{name} {value} must not be negative")
        return value
    return check


def _pattern(value):
    try:
        m, n = (int(part) for part in str(value).split(":"))
    except ValueError:
        raise RecipeError(f"pattern {value!r} is not m:n, such as 2:4") from None
    if not 0 < m < n:
        raise RecipeError(f"pattern {value!r} needs 0 < m < n, such as 2:4")
    return f"{m}:{n}"


def _names(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"layers {value!r} must be a list of layer names")
    return value


def _bits(value):
    if value not in (8, 4) or isinstance(value, bool):
        raise RecipeError(f"qat bits {value!r} must be 8 (int8) or 4 (weights on the int4 grid)")
    return int(value)


def _share(name):
    def check(value):
        value = _non_negative(name)(value)
        if not 0 < value <= 1 and not (name == "alpha" and value == 0):
            none = " (0: no distillation)" if name == "alpha" else ""
            raise RecipeError(f"{name} {value} must be in (0, 1]{none}")
        return value
    return check


_EPOCHS = ("epochs", lambda v: _positive_int("epochs", 0)(v), None)
# step type -> {parameter: (validator, default)}; "required" when the default is ...
STEP_TYPES: dict[str, dict[str, tuple[Any, Any]]] = {
    "prune": {"sparsity": (_fraction("sparsity"), ...), "schedule": (_choice("schedule", tuple(SCHEDULES)),
                                                                     "polynomial"),
              "frequency": (_positive_int("frequency"), None), "layers": (_names, None)},
    "prune_mn": {"pattern": (_pattern, "2:4"), "layers": (_names, None)},
    "regularize": {"penalty": (_choice("penalty", ("l1", "l2", "group_lasso")), "group_lasso"),
                   "strength": (_non_negative("strength"), 1e-4), "layers": (_names, None)},
    "l0": {"strength": (_non_negative("strength"), 10.0), "layers": (_names, None),
           "groups": (lambda v: "+".join(parse_groups(v)), "weights")},
    "slim": {"ratio": (_fraction("ratio"), ...), "criterion": (_choice("criterion", ("l2", "bn")), "l2")},
    "cluster": {"clusters": (_positive_int("clusters", 2), ...), "preserve_sparsity": (bool, False),
                "layers": (_names, None)},
    "recover": {"rate": (_share("rate"), 0.1), "alpha": (_share("alpha"), 0.5)},
    "qat": {"bits": (_bits, 8), "granularity": (_choice("granularity", ("channel", "tensor")), "channel"),
            "rate": (_share("rate"), 1.0)},
    "int8": {},
}
STEP_HELP = {
    "prune": "unstructured magnitude pruning (sparsity, schedule constant|polynomial)",
    "prune_mn": "m:n structured sparsity (pattern 2:4)",
    "regularize": "fine-tuning with L(w) + λR(w) (penalty l1|l2|group_lasso, strength λ, layers)",
    "l0": "train hard-concrete gates under an L0 penalty (strength λ, layers, groups weights|units|inputs "
          "joined by +): exact zeros where gates close, whole hidden units and input features with units/inputs",
    "slim": "remove channels physically (ratio, criterion l2|bn)",
    "cluster": "k-means weight sharing (clusters, preserve_sparsity)",
    "recover": "fine-tuning with every zero held at zero (the size cannot grow), distilled from the source model "
               "(alpha, 0 = none), from a share of the fine-tuning rate (rate) decaying to 0, the best epoch on the "
               "validation split kept",
    "qat": "quantization-aware training (bits 8: int8, tfmot for tf_keras models; bits 4: weights on the int4 grid, "
           "granularity channel: a scale per output channel, tensor: one per kernel; rate: a share of the fine-tuning "
           "rate)",
    "int8": "full-integer int8 at conversion (reported sizes and accuracy use it)",
}


@dataclass
class Step:
    """One technique and its parameters; ``epochs`` overrides the recipe's fine-tuning epochs."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None

    def __post_init__(self):
        if self.type not in STEP_TYPES:
            raise RecipeError(f"unknown recipe step {self.type!r}; known steps: {', '.join(STEP_TYPES)}")
        spec = STEP_TYPES[self.type]
        unknown = sorted(set(self.params) - set(spec))
        if unknown:
            raise RecipeError(f"step {self.type!r} has unknown parameter(s) {', '.join(unknown)}; it takes "
                              f"{', '.join(spec) or 'no parameters'}")
        checked = {}
        for name, (check, default) in spec.items():
            if name in self.params and not (self.params[name] is None and default is None):
                checked[name] = check(self.params[name])
            elif default is ...:
                raise RecipeError(f"step {self.type!r} needs {name!r} ({STEP_HELP[self.type]})")
            else:
                checked[name] = default
        self.params = checked
        if self.type == "qat" and checked["granularity"] == "tensor" and checked["bits"] != 4:
            raise RecipeError("qat granularity 'tensor' needs bits 4 (one int4 scale per kernel); int8 QAT is per "
                              "channel")
        if self.epochs is not None:
            _positive_int("epochs", 0)(self.epochs)

    def get_config(self) -> dict[str, Any]:
        config = {"type": self.type, **self.params}
        if self.epochs is not None:
            config["epochs"] = self.epochs
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Step:
        if not isinstance(config, dict) or "type" not in config:
            raise RecipeError(f"a recipe step must be a mapping with a 'type' ({', '.join(STEP_TYPES)}); "
                              f"got {config!r}")
        params = dict(config)
        kind = params.pop("type")
        epochs = params.pop("epochs", None)
        return cls(kind, params, epochs)


@dataclass
class Recipe:
    """Steps applied in order, each followed by fine-tuning with ``finetune`` settings."""

    name: str
    steps: list[Step]
    finetune: FineTune = field(default_factory=FineTune)
    description: str = ""

    def __post_init__(self):
        if not self.steps:
            raise RecipeError(f"recipe {self.name!r} has no steps; add at least one of {', '.join(STEP_TYPES)}")

    @property
    def int8(self) -> bool:
        return any(step.type in ("int8", "qat") for step in self.steps)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "finetune": self.finetune.get_config(),
                "steps": [step.get_config() for step in self.steps]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Recipe:
        if not isinstance(config, dict):
            raise RecipeError(f"a recipe must be a mapping with 'steps'; got {type(config).__name__}")
        unknown = sorted(set(config) - {"name", "description", "finetune", "steps"})
        if unknown:
            raise RecipeError(f"recipe has unknown key(s) {', '.join(unknown)}; known: name, description, "
                              "finetune, steps")
        steps = config.get("steps")
        if not isinstance(steps, list):
            raise RecipeError("recipe 'steps' must be a list of steps, e.g. [{type: prune, sparsity: 0.8}]")
        return cls(name=str(config.get("name", "custom")), steps=[Step.from_config(s) for s in steps],
                   finetune=FineTune.from_config(config.get("finetune")),
                   description=str(config.get("description", "")))


def _builtin_files() -> dict[str, Any]:
    folder = resources.files("modelpress.compressor") / "recipes"
    # file names avoid ':' (not portable); the recipe is named by its `name:` field, e.g. prune-2:4
    files = {}
    for path in folder.iterdir():
        if path.name.endswith(".yaml"):
            name = path.name[:-5]
            files[name.replace("-2-4", "-2:4")] = path
    return files


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped with modelpress."""
    return sorted(_builtin_files())


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"{where} is not valid YAML: {str(err).splitlines()[0]}") from None
    return data


def load_recipe(recipe: str | Path | dict[str, Any] | Recipe) -> Recipe:
    """A Recipe from a built-in name, a YAML file, a config dict or a Recipe."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_config(recipe)
    name = str(recipe)
    builtins = _builtin_files()
    if name in builtins:
        path = builtins[name]
        return Recipe.from_config(_read_yaml(path.read_text(encoding="utf-8"), f"built-in recipe {name}"))
    path = Path(name)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        config = _read_yaml(path.read_text(encoding="utf-8"), str(path))
        if isinstance(config, dict):
            config.setdefault("name", path.stem)
        return Recipe.from_config(config)
    raise RecipeError(f"unknown recipe {name!r}; use a built-in ({', '.join(builtin_recipes())}) or a .yaml file")
