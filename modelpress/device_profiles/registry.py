"""Find device profiles: built-ins shipped as package data, or a user's YAML file by path.

    load_profile("coral-edgetpu")           # a built-in, by name
    load_profile("profiles/my-board.yaml")  # a user profile, by path
    [p.name for p in builtin_profiles()]
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from modelpress.device_profiles.profile import DeviceProfile
from modelpress.errors import ProfileError

_BUILTIN_PACKAGE = "modelpress.device_profiles"


def _builtin_dir():
    return resources.files(_BUILTIN_PACKAGE).joinpath("builtin")


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _builtin_dir().iterdir() if p.name.endswith(".yaml"))


def _parse(text: str, source: str) -> DeviceProfile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ProfileError(f"{source} is not valid YAML: {err}") from None
    return DeviceProfile.from_config(data, source=source)


def load_profile_file(path: str | Path) -> DeviceProfile:
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"profile file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"cannot read profile file {path}: {err}") from None
    return _parse(text, str(path))


def load_profile(name_or_path: str | Path | DeviceProfile) -> DeviceProfile:
    """A built-in profile by name, or a YAML file by path. A DeviceProfile passes through."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    text = str(name_or_path)
    if text in builtin_names():
        resource = _builtin_dir().joinpath(f"{text}.yaml")
        return _parse(resource.read_text(encoding="utf-8"), f"builtin:{text}")
    if text.endswith((".yaml", ".yml")) or "/" in text or Path(text).is_file():
        return load_profile_file(text)
    raise ProfileError(f"unknown device profile {text!r}; built-in profiles: {', '.join(builtin_names())} "
                       "(or pass the path of a YAML file)")


def builtin_profiles() -> list[DeviceProfile]:
    return [load_profile(name) for name in builtin_names()]
