"""The model repository on disk: ``<repo>/<model>/<version>/`` package folders (integer versions) and an
optional ``<repo>/<model>/config.yaml``::

    # repo/digits/config.yaml
    version_policy: {latest: 2}        # latest (= latest: 1), all, {latest: n} or {specific: [1, 3]}
    labels: {stable: 1, canary: 2}
    batching: {enabled: true, max_batch_size: 16, max_queue_delay_ms: 5}
    interpreter_threads: 2
    delegate: xnnpack

    scan = scan_repository("repo/")    # {"digits": ModelEntry(config=..., versions={1: VersionFolder, ...})}

A version folder without a complete manifest is not ready: it is skipped (it may still be copying). A
folder holding only a model made elsewhere (``model.tflite``, one ``*.tflite`` or a SavedModel) is served
with a manifest inferred from the model (:mod:`modelpress.manifest_inference`); copy such a file in under
a temporary name and rename it, so the server never reads half of it. ``config.yaml`` can rename its
tensors: ``tensor_names: {"serving_default_x.1:0": audio_features}``.
Names are checked so that nothing a client sends can reach outside the repository.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.errors import ArtifactError, ModelpressError, NotFoundError, UsageError, excerpt
from modelpress.layout import NAME_RULE, is_model_name, version_folders
from modelpress.manifest import MANIFEST_NAME
from modelpress.manifest_inference import find_model

log = logging.getLogger(__name__)

MODEL_CONFIG = "config.yaml"
BATCHING_KEYS = ("enabled", "max_batch_size", "max_queue_delay_ms", "max_queue_size")


def _excerpt(value: object) -> str:
    return excerpt(repr(value), 40)


def check_name(kind: str, value: str, error: type[ModelpressError] = NotFoundError) -> str:
    """A model name, version or label as sent by a client: plain characters only, never a path. The
    error quotes at most 40 characters of what was sent."""
    if not is_model_name(value):
        raise error(f"{kind} {_excerpt(value)} is not a valid name ({NAME_RULE})")
    return value


def _whole(path: Path, key: str, value: Any, minimum: int) -> int | None:
    """An optional whole-number setting of config.yaml, checked (bool is not a number here)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{path}: {key} must be a whole number of at least {minimum}, got {_excerpt(value)}")
    return value


@dataclass
class ModelConfig:
    """A model's serving policy from ``config.yaml``."""

    policy: str = "latest"               # latest | all | specific
    latest: int = 1
    specific: list[int] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    batching: dict[str, Any] = field(default_factory=dict)
    interpreter_threads: int | None = None
    delegate: str | None = None
    pool_size: int | None = None
    tensor_names: dict[str, str] = field(default_factory=dict)   # model's tensor name -> name served

    def choose(self, versions: list[int]) -> list[int]:
        """The versions this policy serves out of the loadable ``versions``, newest first."""
        ordered = sorted(versions, reverse=True)
        if self.policy == "all":
            return ordered
        if self.policy == "specific":
            return [v for v in ordered if v in self.specific]
        return ordered[: self.latest]

    @classmethod
    def read(cls, path: Path) -> ModelConfig:
        if not path.is_file():
            return cls()
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise UsageError(f"{path} cannot be read as UTF-8 YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path} must hold a mapping (version_policy, labels, batching)")
        known = {"version_policy", "labels", "batching", "interpreter_threads", "delegate", "pool_size",
                 "tensor_names"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        delegate = data.get("delegate")
        if delegate is not None and not isinstance(delegate, str):
            raise UsageError(f"{path}: delegate must be a name (none, xnnpack, gpu, edgetpu), got {_excerpt(delegate)}")
        config = cls(interpreter_threads=_whole(path, "interpreter_threads", data.get("interpreter_threads"), 1),
                     delegate=delegate, pool_size=_whole(path, "pool_size", data.get("pool_size"), 1))
        policy = data.get("version_policy", "latest")
        if policy in ("latest", "all"):
            config.policy = policy
        elif isinstance(policy, dict) and set(policy) == {"latest"} and isinstance(policy["latest"], int) \
                and policy["latest"] > 0:
            config.policy, config.latest = "latest", policy["latest"]
        elif isinstance(policy, dict) and set(policy) == {"specific"} and isinstance(policy["specific"], list) \
                and all(isinstance(v, int) for v in policy["specific"]):
            config.policy, config.specific = "specific", list(policy["specific"])
        else:
            raise UsageError(f"{path}: version_policy {policy!r} must be latest, all, {{latest: N}} or "
                             "{specific: [versions]}")
        labels = data.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, int) for v in labels.values()):
            raise UsageError(f"{path}: labels must map names to integer versions, e.g. {{stable: 1, canary: 2}}")
        for label in labels:
            check_name("label", str(label), error=UsageError)
        config.labels = {str(k): int(v) for k, v in labels.items()}
        batching = data.get("batching") or {}
        if not isinstance(batching, dict) or set(batching) - set(BATCHING_KEYS):
            raise UsageError(f"{path}: batching takes {', '.join(BATCHING_KEYS)}")
        if not isinstance(batching.get("enabled", True), bool):
            raise UsageError(f"{path}: batching enabled must be true or false, got {_excerpt(batching['enabled'])}")
        for key in ("max_batch_size", "max_queue_size"):
            _whole(path, f"batching {key}", batching.get(key), 1)
        delay = batching.get("max_queue_delay_ms", 0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 60_000:
            raise UsageError(f"{path}: batching max_queue_delay_ms must be a number of milliseconds from 0 to "
                             f"60000, got {_excerpt(delay)}")
        config.batching = batching
        names = data.get("tensor_names") or {}
        if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
            raise UsageError(f"{path}: tensor_names must map a model's tensor names to the names to serve, e.g. "
                             "{'serving_default_x.1:0': features}")
        for new_name in names.values():
            check_name("tensor name", new_name, error=UsageError)
        config.tensor_names = dict(names)
        return config


@dataclass
class VersionFolder:
    version: int
    path: Path
    fingerprint: tuple


@dataclass
class ModelEntry:
    name: str
    config: ModelConfig
    versions: dict[int, VersionFolder]
    config_error: str | None = None
    ambiguous: dict[int, str] = field(default_factory=dict)  # version -> why it is refused (two folders name it)
    layout_hint: str | None = None  # why a folder with no version folder serves nothing though it holds a model


def _fingerprint(folder: Path) -> tuple | None:
    """Identity of a complete package folder's contents (None when its manifest is not there yet, and it
    holds no model made elsewhere either)."""
    manifest = folder / MANIFEST_NAME
    try:
        if not manifest.is_file() and find_model(folder) is not None:  # served with an inferred manifest
            return tuple((s.st_ino, s.st_size, s.st_mtime_ns)
                         for s in (p.stat() for p in sorted(folder.rglob("*")) if p.is_file()))
        stats = [manifest.stat()] + [p.stat() for p in sorted(folder.iterdir()) if p.is_file() and p != manifest]
    except OSError:
        return None
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


def single_model(root: Path) -> str | None:
    """How a folder holds one model instead of a repository (KServe mounts whatever ``storageUri`` holds at
    ``/mnt/models``): ``"package"`` (a manifest at the root), ``"versions"`` (``<root>/<version>/`` packages)
    or None (a repository of ``<model>/<version>/`` folders)::

        single_model(Path("/mnt/models"))        # "package" when /mnt/models/modelpress.json exists
    """
    if (root / MANIFEST_NAME).is_file():
        return "package"
    try:
        if any((folder / MANIFEST_NAME).is_file() for found in version_folders(root).values() for folder in found):
            return "versions"
    except OSError:
        return None
    return None


def _single_entry(root: Path, name: str, layout: str) -> ModelEntry:
    config, error = ModelConfig(), None
    try:
        config = ModelConfig.read(root / MODEL_CONFIG)
    except UsageError as err:
        error = str(err)
    ambiguous: dict[int, str] = {}
    if layout == "package":
        fingerprint = _fingerprint(root)
        versions = {1: VersionFolder(1, root, fingerprint)} if fingerprint is not None else {}
    else:
        versions, ambiguous = _version_folders(root, root)
    return ModelEntry(name, config, versions, error, ambiguous)


def scan_repository(root: str | Path, model_name: str | None = None) -> dict[str, ModelEntry]:
    """Every model folder under ``root`` with its ready version folders. A root that holds one package
    (or ``<version>/`` packages of one model) serves that model as ``model_name`` (default: the root
    folder's name, or ``model`` when that is not a valid name)::

        scan_repository("/mnt/models", model_name="digits")    # {"digits": ModelEntry(...)}
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise ArtifactError(f"model repository {root} is not a folder; pass a folder holding <model>/<version>/ "
                            "folders, one model package, or <version>/ packages of one model")
    layout = single_model(root)
    if layout is not None:
        name = model_name or (root.name if is_model_name(root.name) else "model")
        return {name: _single_entry(root, name, layout)}
    models: dict[str, ModelEntry] = {}
    for model_dir in sorted(root.iterdir()):
        if not model_dir.is_dir() or not is_model_name(model_dir.name):
            continue
        if not model_dir.resolve().is_relative_to(root):
            log.warning("skipping %s: it links outside the repository", model_dir)
            continue
        config, error = ModelConfig(), None
        try:
            config = ModelConfig.read(model_dir / MODEL_CONFIG)
        except UsageError as err:
            error = str(err)
        except Exception as err:  # whatever a hand-edited file holds, the scan of the others goes on
            error = f"{model_dir / MODEL_CONFIG} cannot be used: {type(err).__name__}: {str(err)[:200]}"
        try:
            versions, ambiguous = _version_folders(model_dir, root)
        except OSError as err:  # removed (or made unreadable) while we looked: gone for this scan
            log.warning("skipping %s: %s", model_dir, err.strerror or err)
            continue
        hint = _unversioned(model_dir) if not versions and not ambiguous else None
        models[model_dir.name] = ModelEntry(model_dir.name, config, versions, error, ambiguous, hint)
    return models


def _unversioned(model_dir: Path) -> str | None:
    """What to do when a model folder holds a package (or a model file) itself instead of ``<version>/``
    folders, as ``modelpress convert --out repo/digits`` leaves it; None when it holds neither."""
    if not (model_dir / MANIFEST_NAME).is_file() and find_model(model_dir) is None:
        return None
    return (f"{model_dir.name}/ holds a model package itself, not <version>/ folders: a repository serves "
            f"<model>/<version>/, so move the package into {model_dir.name}/1/, or serve it alone with "
            f"`modelpress serve <repository>/{model_dir.name}`")  # clients read it: no server path


def _version_folders(model_dir: Path, root: Path) -> tuple[dict[int, VersionFolder], dict[int, str]]:
    """The servable version folders, and the versions refused because several folders name them."""
    versions, ambiguous = {}, {}
    for number, folders in version_folders(model_dir).items():
        folder = folders[-1]
        if len(folders) > 1:
            names = " and ".join(repr(f.name) for f in folders)
            ambiguous[number] = (f"folders {names} all name version {number}; none is served until one is left: "
                                 f"remove or renumber the others (without this check {folder.name!r} would "
                                 "have been served)")
            continue
        if not folder.resolve().is_relative_to(root):
            log.warning("skipping %s: it links outside the repository", folder)
            continue
        fingerprint = _fingerprint(folder)
        if fingerprint is not None:
            versions[number] = VersionFolder(number, folder, fingerprint)
    return versions, ambiguous
