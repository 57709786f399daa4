"""Run the steps that can die in native code (TFLite conversion, int8 calibration, the first invoke) in a
child process, so that a signal (SIGFPE, SIGSEGV, SIGABRT) becomes one clear ConversionError instead of
killing the caller::

    warm_up()                                    # start the fork server early (imports TensorFlow once)
    data = run_isolated("TFLite conversion", convert_fn, source_path, options)
    # ConversionError: TFLite conversion crashed in native code (signal SIGFPE: ...); nothing was written

Children are forked from a small server process (``python -m modelpress.converters.isolation``) that
imports TensorFlow once: the first job of a process waits for that import (started by :func:`warm_up`
while the caller loads its own model), each later job starts in a fraction of a second. Unlike
multiprocessing's spawn / forkserver, the caller's ``__main__`` is never re-imported, so a plain script
without an ``if __name__ == "__main__"`` guard works. ``MODELPRESS_ISOLATE=0`` runs the steps
in-process instead (faster, unprotected). The server's stderr reaches the caller without TensorFlow's native
start-up chatter (:mod:`modelpress.native_logs`).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from modelpress.errors import ConversionError, ModelpressError
from modelpress.native_logs import forward_filtered

#: what a server imports before forking: TensorFlow for conversions, only the interpreter for .tflite runs
PRELOAD = ("numpy", "tensorflow")
LITE = ("numpy", "ai_edge_litert.interpreter")
_LOCK = threading.Lock()
_SERVERS: dict[tuple[str, ...], tuple[subprocess.Popen, Connection]] = {}
_CONN: Connection | None = None  # in a child: the connection to the caller, for step()


def enabled() -> bool:
    """Whether native steps run in a child process (the default; ``MODELPRESS_ISOLATE=0`` turns it off)."""
    return os.environ.get("MODELPRESS_ISOLATE", "1").strip().lower() not in ("0", "false", "no", "off")


def _start(preload: tuple[str, ...]) -> tuple[subprocess.Popen, Connection]:
    server = _SERVERS.get(preload)
    if server is not None and server[0].poll() is None:
        return server
    ours, theirs = socket.socketpair()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    # its stderr is read through a filter: TensorFlow's import banner and CUDA probing never reach the caller
    process = subprocess.Popen([sys.executable, "-m", "modelpress.converters.isolation", str(theirs.fileno())],
                               pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env, start_new_session=False)
    forward_filtered(process.stderr)
    theirs.close()
    conn = Connection(ours.detach())
    conn.send((list(sys.path), list(preload)))
    _SERVERS[preload] = (process, conn)
    return _SERVERS[preload]


def _stop(preload: tuple[str, ...] | None = None) -> None:
    for key in [k for k in list(_SERVERS) if preload is None or k == preload]:
        process, conn = _SERVERS.pop(key)
        conn.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


atexit.register(_stop)


def warm_up(preload: tuple[str, ...] = PRELOAD) -> None:
    """Start the server now, so its TensorFlow import overlaps the caller's own work."""
    if enabled():
        with _LOCK:
            _start(preload)


def step(name: str) -> None:
    """Tell the caller which step runs now (so that a crash names it); a no-op outside a child."""
    if _CONN is not None:
        _CONN.send(("step", name))


def _signal_name(code: int) -> str:
    try:
        sig = signal.Signals(code)
        return f"{sig.name}: {signal.strsignal(sig) or ''}".rstrip(": ")
    except ValueError:
        return f"signal {code}"


def run_isolated(step_name: str, fn: Callable, *args: Any, preload: tuple[str, ...] = PRELOAD, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a child process; its result, its ModelpressError, or a ConversionError
    naming the step (``step_name``, or the last one ``fn`` announced with :func:`step`) when it raised
    something else or died of a signal. ``fn`` must be a module-level function and its arguments and
    result picklable; ``preload`` names the modules the server imports once (default: TensorFlow)."""
    if not enabled():
        return fn(*args, **kwargs)
    current, outcome, status = step_name, None, None
    with _LOCK:
        _, conn = _start(preload)
        try:
            conn.send((fn, args, kwargs))
            while True:
                kind, payload = conn.recv()
                if kind == "step":
                    current = payload
                elif kind == "exit":
                    status = payload
                    break
                else:
                    outcome = (kind, payload)
        except (EOFError, OSError, BrokenPipeError):
            _stop(preload)
            raise ConversionError(f"{current} failed: the isolation server stopped; nothing was written") from None
        except BaseException:  # interrupted: the server and its child go with this process
            _stop(preload)
            raise
    if outcome is not None:
        kind, payload = outcome
        if kind == "ok":
            return payload
        if kind == "modelpress":
            raise payload
        name, message, _ = payload
        raise ConversionError(f"{current} failed: {name}: {message}")
    if status is not None and status < 0:
        raise ConversionError(f"{current} crashed in native code (signal {_signal_name(-status)}); nothing was "
                              "written. Check the input shapes (--input-shape) and the calibration data, or try "
                              "a milder --quantization")
    raise ConversionError(f"{current} stopped with exit code {status} before answering; nothing was written")


def _run_child(conn: Connection, job: tuple) -> None:
    global _CONN
    _CONN = conn
    try:
        fn, args, kwargs = job
        result: tuple = ("ok", fn(*args, **kwargs))
    except ModelpressError as err:
        result = ("modelpress", err)
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the caller as a message
        text = str(err).strip()
        result = ("error", (type(err).__name__, text.splitlines()[0] if text else "", traceback.format_exc()))
    try:
        conn.send(result)
    except Exception as err:  # noqa: BLE001 - an unpicklable result or exception
        conn.send(("error", (type(err).__name__, str(err), traceback.format_exc())))


def _serve(fd: int) -> None:
    """The server: import TensorFlow once, then fork one child per job and report how it ended."""
    import pickle

    conn = Connection(fd)
    sys.path[:], preload = conn.recv()
    for module in preload:
        try:
            __import__(module)
        except ImportError:
            pass
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                # the module by its real name (this server runs as __main__), so that step() finds the pipe
                from modelpress.converters import isolation

                isolation._run_child(conn, pickle.loads(data))
            except BaseException:  # noqa: BLE001 - unpickling failed: tell the caller, never raise in a fork
                try:
                    conn.send(("error", ("ImportError", "the job could not be loaded in the child", "")))
                except Exception:  # noqa: BLE001
                    code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        try:
            conn.send(("exit", code))
        except OSError:
            return


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
