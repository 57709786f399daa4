"""Memory for the model budget: parsing ``--max-memory``, the machine's (or container's) memory, this
process's resident memory, a package's size estimate, and giving freed memory back to the system::

    parse_memory("512MiB")          # 536870912
    parse_memory("75%")             # 3/4 of the container's memory limit (or of the machine's RAM)
    process_rss()                   # resident bytes of this process, now
    package_estimate(folder, manifest, pool_size=4)   # bytes a loaded version is expected to hold
    release_memory()                # after an unload: return free heap pages to the OS (malloc_trim)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
from pathlib import Path

from modelpress.errors import UsageError
from modelpress.manifest import Manifest

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30,
          "gib": 2**30, "ti": 2**40, "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_SHARE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")
#: what one interpreter holds besides its model and tensors (op kernels, delegate state), from measurements
INTERPRETER_OVERHEAD = 256 * 1024


def machine_memory() -> int:
    """Bytes of memory this process may use: the cgroup limit inside a container (Kubernetes' memory
    limit), else the machine's physical memory::

        machine_memory()     # 2147483648 in a pod limited to 2Gi
    """
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            text = Path(path).read_text().strip()
            if text != "max" and 0 < int(text) < physical:
                return int(text)
    return physical


def parse_memory(text: str | int | float) -> int:
    """A memory budget in bytes from ``"2GiB"``, ``"512M"``, plain bytes (``"1000000"``), a
    share of the machine (``"75%"``) or a fraction below 1 (``0.5``)::

        parse_memory("1.5GiB")    # 1610612736
        parse_memory(0.25)        # a quarter of machine_memory()
    """
    if isinstance(text, bool):
        raise UsageError(f"max_memory {text!r} is not a size; give bytes (512MiB, 2G) or a share (75%, 0.5)")
    if isinstance(text, (int, float)):
        text = str(text)
    share = _SHARE.match(text)
    if share:
        fraction = float(share.group(1)) / 100
    else:
        size = _SIZE.match(text)
        unit = size.group(2).lower() if size else None
        if size is None or unit not in _UNITS:
            raise UsageError(f"max_memory {text!r} is not a size; give bytes with an optional unit (512MiB, 2G, "
                             "1000000) or a share of the machine's memory (75%, 0.5)")
        value = float(size.group(1))
        if unit == "" and value < 1:
            fraction = value
        else:
            if value * _UNITS[unit] < 1:
                raise UsageError(f"max_memory {text!r} is below one byte")
            return int(value * _UNITS[unit])
    if not 0 < fraction <= 1:
        raise UsageError(f"max_memory {text!r} must be a share above 0% and at most 100% of the machine's memory")
    return int(machine_memory() * fraction)


def process_rss() -> int | None:
    """Resident bytes of this process now (None where /proc is missing)::

        before = process_rss(); load(); grown = process_rss() - before
    """
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()


def release_memory() -> None:
    """Ask glibc to return free heap pages to the system (``malloc_trim``): without it an unloaded
    interpreter's memory stays in the process's heap and RSS does not go down (measured: 64 unloaded
    interpreters kept 10 MiB of 12.7 MiB resident; after the trim 0.3 MiB). Interpreters are freed by
    reference counting; no garbage collection here (a full one holds the GIL for tens of ms)::

        backend.unload(); release_memory()
    """
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _activation_bytes(path: Path) -> int:
    try:
        from modelpress.tflite_graph import read_graph

        return read_graph(path.read_bytes()).activation_bytes
    except Exception:  # a package the graph reader does not know (SavedModel, a delegate's model): no estimate
        return 0


def package_estimate(folder: Path, manifest: Manifest, pool_size: int = 1) -> int:
    """Bytes one loaded version of the package in ``folder`` is expected to hold: each interpreter of the
    pool maps the model file, allocates its tensor arena (activations, estimated from the graph) and some
    kernel state::

        package_estimate(Path("repo/digits/1"), read_manifest(Path("repo/digits/1")), pool_size=4)
    """
    model = folder / manifest.model_file
    if model.is_dir():  # a SavedModel: variables are read into memory once
        files = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
        return 2 * files + INTERPRETER_OVERHEAD
    try:
        size = model.stat().st_size
    except OSError:
        return INTERPRETER_OVERHEAD
    arena = _activation_bytes(model) if manifest.model_format == "tflite" else 0
    return max(1, pool_size) * (size + 2 * arena + INTERPRETER_OVERHEAD)
