"""Device profiles: pure Python, importing nothing else of modelpress but its errors."""

from modelpress.device_profiles.profile import (
    DELEGATES,
    FORMATS,
    HARDWARE,
    IO_DTYPES,
    NPUS,
    OP_SETS,
    QUANTIZATIONS,
    DeviceProfile,
)
from modelpress.device_profiles.registry import builtin_names, builtin_profiles, load_profile, load_profile_file

__all__ = [
    "DELEGATES", "FORMATS", "HARDWARE", "IO_DTYPES", "NPUS", "OP_SETS", "QUANTIZATIONS",
    "DeviceProfile", "builtin_names", "builtin_profiles", "load_profile", "load_profile_file",
]
