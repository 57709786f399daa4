"""``modelpress.deploy``: compress (optionally), convert, verify and publish into a model repository.

    import modelpress
    result = modelpress.deploy("model.keras", profiles=["raspberry-pi-4", "coral-edgetpu"],
                               repo="repo/", data="train.npz", recipe="prune-80")
    for item in result.published:
        print(item.model, item.version, item.artifact.summary()["top1_agreement"])

Each profile's artifact becomes the next integer version of a model in ``repo`` (``<repo>/<model>/<n>/``),
renamed into place complete, so a running ``modelpress serve`` picks it up without a restart. With one
profile the model is published under ``name``; with several, under ``name-profile`` each. With ``data``,
each published artifact is also scored on held-out data and timed (:mod:`modelpress.api.deploy_run`), and
with ``out`` the run folder gets ``deploy.json`` and a report with plots.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.converters.artifact import Artifact
from modelpress.errors import UsageError


@dataclass
class Published:
    profile: str
    model: str
    version: int
    path: Path
    artifact: Artifact
    measured: dict[str, Any] = field(default_factory=dict)  # held-out accuracy and latency, with data

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "model": self.model, "version": self.version, "path": str(self.path),
                **{k: v for k, v in self.artifact.summary().items() if k not in ("profile", "path")},
                **self.measured}


@dataclass
class DeployResult:
    repo: Path
    published: list[Published] = field(default_factory=list)
    compression: dict[str, Any] | None = None
    run: Path | None = None          # the run folder (deploy.json), when ``out`` was given
    report: Any = None               # its report's paths (modelpress.report.render.ReportPaths)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "deploy", "repo": str(self.repo), "compression": self.compression,
                "rows": [p.to_dict() for p in self.published], "run": str(self.run) if self.run else None,
                "report": str(self.report.html) if self.report else None}


def _model_name(name: str | None, source_name: str, profile: str, several: bool) -> str:
    base = name or source_name
    return f"{base}-{profile}" if several else base


def _compressed(model: Any, recipe: str, data: Any, workdir: Path, echo: Callable[[str], None]):
    """Run the compressor; returns the compressed model file and its report as a dict."""
    import modelpress

    echo(f"compressing with recipe {recipe}")
    out = workdir / "compressed"
    result = modelpress.compress(model, recipe, data, out=out, quiet=True)
    return result.model_path, result.report.to_dict()


def _deploy_made_elsewhere(model: Path, profiles: list[str], repo: Path, name: str | None, labels: Any,
                           verify_data: Any, echo: Callable[[str], None],
                           sign_key: str | Path | None = None) -> DeployResult:
    """A .tflite made elsewhere: packaged as it is (checked against each profile), published as next versions."""
    from modelpress.api.package import package
    from modelpress.converters.publish import next_version, publish_package, staging

    result = DeployResult(repo=repo)
    for profile in profiles:
        model_name = _model_name(name, model.stem, profile, len(profiles) > 1)
        with staging(repo, model_name) as folder:
            version = next_version(repo / model_name)
            echo(f"packaging {model.name} for {profile} -> {model_name} version {version}")
            artifact = package(model, folder / "package", name=model_name, labels=labels, profile=profile,
                               verify_data=verify_data, version=str(version))
            final = publish_package(artifact.path, repo, model_name, version, sign_key=sign_key)
        result.published.append(Published(profile, model_name, version, final, Artifact.open(final)))
        echo(f"published {final}")
    return result


def _pressed(model: Any, names: list[str], data: Any, max_drop: float, time_budget: Any, workdir: Path,
             echo: Callable[[str], None], confidence: float | None = None) -> tuple[Any, dict[str, Any]]:
    """Run ``modelpress press`` for every profile; (its result, summary). BudgetError if one missed.

    Press only chooses here: each package is finished once, straight into the repository's staging folder
    under its model name and version (``PressResult.write_package``)."""
    from modelpress.api.press import press
    from modelpress.errors import BudgetError

    echo(f"searching for the smallest model within {max_drop:g} accuracy point(s) for {', '.join(names)}")
    result = press(model, names, data, out=workdir / "press", max_drop=max_drop, time_budget=time_budget,
                   progress=False, packages=False, echo=echo, confidence=confidence)
    if not result.met:
        raise BudgetError("nothing was published: " + " ".join(result.messages))
    return result, {"press": result.rows(), "max_drop": max_drop}


def deploy(model: Any, profiles: str | Sequence[str], repo: str | Path, *, recipe: str | None = None,
           data: str | Path | None = None, calibration: Any = None, verify_data: Any = None,
           name: str | None = None, labels: str | Path | list[str] | None = None, image_scale: str = "0..1",
           safe_mode: bool = True, max_drop: float | None = None, time_budget: Any = None,
           out: str | Path | None = None, echo: Callable[[str], None] | None = None,
           sign_key: str | Path | None = None, confidence: float | None = None) -> DeployResult:
    """Compress with ``recipe`` (needs ``data``), convert for each profile, verify, publish as next versions.

    A ``.tflite`` file made elsewhere is packaged as it is (see :func:`modelpress.package`) for each
    profile instead: ``deploy("wakeword.tflite", "raspberry-pi-4", "repo/")``.

    ``calibration`` defaults to ``data`` (its ``x_val`` / ``x_train`` arrays). Every version folder
    appears complete or not at all; a failed profile publishes nothing for that profile and raises.
    With ``max_drop`` (accuracy points, needs ``data``), ``modelpress.press`` picks each profile's smallest
    package within that budget instead of a recipe (``confidence``: as press's); nothing is published when a
    profile has none.
    With ``data``, every published artifact's held-out accuracy and latency are measured; ``out`` names a run
    folder for ``deploy.json`` and ``report/`` (report.md, report.html, size / latency vs accuracy plots)::

        r = deploy("model.keras", "cortex-m", "repo/", data="train.npz", max_drop=0.5, out="runs/d1")
        r.published[0].measured["accuracy"], r.report.html

    ``sign_key`` (a PEM EC private key) signs each package before its version appears (``modelpress sign``).
    """
    from modelpress.signing import check_signing_key

    check_signing_key(sign_key)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out} is a file; name a folder for the run's deploy.json and report")
    result = _deploy(model, profiles, repo, recipe=recipe, data=data, calibration=calibration,
                     verify_data=verify_data, name=name, labels=labels, image_scale=image_scale, safe_mode=safe_mode,
                     max_drop=max_drop, time_budget=time_budget, echo=echo or (lambda line: None),
                     sign_key=sign_key, confidence=confidence)
    if data is not None and result.published:
        from modelpress.api.deploy_run import held_out, measure_artifact, write_run

        held = held_out(data)
        for item in result.published:
            item.measured = measure_artifact(item.path, held)
        if out is not None:
            result.run = Path(out)
            result.report = write_run(result, out)
    return result


def _deploy(model: Any, profiles: str | Sequence[str], repo: str | Path, *, recipe: str | None, data: Any,
            calibration: Any, verify_data: Any, name: str | None, labels: Any, image_scale: str, safe_mode: bool,
            max_drop: float | None, time_budget: Any, echo: Callable[[str], None],
            sign_key: str | Path | None = None, confidence: float | None = None) -> DeployResult:
    from modelpress.api.convert import convert
    from modelpress.converters.publish import check_model_name, next_version, publish_package, staging
    from modelpress.device_profiles import load_profile
    from modelpress.model_io import load_model

    names = [profiles] if isinstance(profiles, str) else list(profiles)
    if not names:
        raise UsageError("deploy needs at least one --profile")
    if recipe and data is None:
        raise UsageError(f"recipe {recipe!r} fine-tunes the model: pass --data FILE.npz with x_train / y_train")
    if max_drop is not None and (recipe or data is None):
        raise UsageError("--max-drop searches for the compression itself: pass --data FILE.npz and no --recipe")
    if confidence is not None and max_drop is None:
        raise UsageError("--confidence sets how sure press's search must be; it needs --max-drop")
    repo = Path(repo)
    if repo.exists() and not repo.is_dir():
        raise UsageError(f"--repo {repo} is a file; pass a folder (it is created when missing)")
    if name is not None:
        check_model_name(name)
    if isinstance(model, (str, Path)) and Path(model).suffix == ".tflite":
        if recipe:
            raise UsageError(f"{model} is already a TFLite model: it cannot be compressed; deploy it without --recipe")
        return _deploy_made_elsewhere(Path(model), names, repo, name, labels, verify_data, echo, sign_key)
    source = load_model(model, safe_mode=safe_mode)
    result = DeployResult(repo=repo)
    with tempfile.TemporaryDirectory(prefix="modelpress-deploy-") as work:
        pressed = None
        if recipe:
            compressed_path, result.compression = _compressed(source.model, recipe, data, Path(work), echo)
            source = load_model(compressed_path, safe_mode=safe_mode)
        elif max_drop is not None:
            pressed, result.compression = _pressed(source.model, names, data, max_drop, time_budget, Path(work), echo,
                                                   confidence)
        for profile in names:
            model_name = _model_name(name, source.name, profile, len(names) > 1)
            with staging(repo, model_name) as folder:
                version = next_version(repo / model_name)
                if pressed is not None:  # the very artifact press measured, finished as a convert's would be
                    echo(f"publishing press's choice for {profile} -> {model_name} version {version}")
                    package = pressed.write_package(load_profile(profile).name, folder / "package", name=model_name,
                                                    version=str(version), labels=labels).path
                else:
                    echo(f"converting for {profile} -> {model_name} version {version}")
                    calib = data if calibration is None else calibration
                    package = convert(source, profile, folder / "package", calibration=calib,
                                      verify_data=verify_data, labels=labels, name=model_name,
                                      version=str(version), image_scale=image_scale, safe_mode=safe_mode).path
                final = publish_package(package, repo, model_name, version, sign_key=sign_key)
            result.published.append(Published(profile, model_name, version, final, Artifact.open(final)))
            echo(f"published {final}")
    return result

