"""TensorFlow's, CUDA's and LiteRT's native start-up chatter, kept out of a build script's log.

Importing TensorFlow and creating the first interpreter print lines to file descriptor 2 from C++ (absl's
``WARNING: All log messages before absl::InitializeLog()``, ``I0000 ... cudart_stub.cc`` "Could not find cuda
drivers", ``E0000 ... failed call to cuInit`` on any machine without a GPU, the CPU feature banner, LiteRT's
``INFO: Created TensorFlow Lite XNNPACK delegate``). None needs action, and an ``E`` line looks like a failure.
The Python API runs its steps inside :func:`filtered_stderr` and reads the conversion child's stderr through
:func:`forward_filtered`: every other line (warnings, errors) still reaches stderr::

    with filtered_stderr():
        source = load_model("model.keras")     # TensorFlow's import banner is dropped, a warning is kept

Logging at INFO for ``modelpress`` (the CLI's ``-v``) keeps every line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO

NOISE = re.compile(
    r"^(?:[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "                       # absl / glog lines (I0000, W0000, E0000)
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow"   # the CPU feature banner's second line
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU)")


def is_noise(line: str) -> bool:
    """Whether ``line`` is native start-up chatter::

        is_noise("E0000 00:00:1796572763.250258   10524 cuda_platform.cc:52] failed call to cuInit: ...")  # True
    """
    return bool(NOISE.match(line))


def keep_everything() -> bool:
    """True when modelpress logs at INFO (``modelpress -v``): native logs are shown as they are."""
    return logging.getLogger("modelpress").isEnabledFor(logging.INFO)


def _fd2() -> int | None:
    try:
        os.fstat(2)
    except OSError:
        return None
    return 2


@contextlib.contextmanager
def held_fd2(keep: Callable[[str], bool]) -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the block, then write back the lines ``keep`` accepts
    (``keep=lambda line: False`` silences a block: the MLIR converter's own logs)."""
    if _fd2() is None:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode("utf-8", "replace").splitlines(keepends=True) if keep(line)]
            if kept:
                os.write(2, "".join(kept).encode("utf-8", "replace"))


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """File descriptor 2 without native noise for the block (what else was written comes after it)."""
    if keep_everything():
        yield
        return
    with held_fd2(lambda line: not is_noise(line)):
        yield


def forward_filtered(stream: IO[bytes]) -> threading.Thread:
    """Copy a child's stderr (a pipe) to this process's file descriptor 2 line by line, noise left out."""
    def copy() -> None:
        keep = keep_everything()
        with contextlib.suppress(OSError, ValueError):
            for raw in iter(stream.readline, b""):
                if keep or not is_noise(raw.decode("utf-8", "replace")):
                    os.write(2, raw)

    thread = threading.Thread(target=copy, name="modelpress-child-stderr", daemon=True)
    thread.start()
    return thread
