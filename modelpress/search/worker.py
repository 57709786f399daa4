"""The worker side of parallel trials: one process builds its own search once, then runs trials for the driver.

    context = write_context(search, folder, threads=2)      # driver: source model saved, data as .npy files
    start(context)                                           # in the worker process, once (TF threads capped)
    reply = run_trial(context, profile.get_config(), settings)
    reply["trial"]                                           # a Trial measured here, not yet recorded
    reply["files"]                                           # its cache entries as bytes, when asked to ship them
    reply["startup"]                                         # on a process's first trial: what its start-up cost

The worker loads the source model from its saved file and memory-maps the data (nothing large is pickled per
trial); it runs :meth:`modelpress.search.engine.Search.measure_trial`, the same trial function the driver runs
in-process, against the trial cache folder every worker on the machine shares. TensorFlow keeps memory within a
process, so a worker that dies (out of memory, a crash in a converter) takes down its trial only.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ARRAYS = ("x_train", "y_train", "x_val", "y_val")
_STATE: dict[str, Any] = {}   # per process: the context's id -> its Search (built once, reused by every trial)
_STARTUP: dict[str, Any] = {}  # per process: its start-up figures, until the first trial's reply carries them


def write_context(search: Any, folder: Path, threads: int, gpus: list[str] | None = None) -> dict[str, Any]:
    """Save what workers need under ``folder`` (source model, data as .npy) and describe it in a small dict."""
    from modelpress.model_io import save_model

    folder.mkdir(parents=True, exist_ok=True)
    model_file = save_model(search.model, folder / "source.keras")
    arrays = {}
    for name in ARRAYS:
        np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(search.data, name)))
        arrays[name] = str(folder / f"{name}.npy")
    options = dataclasses.replace(search.options, progress=False, time_budget=None, workers=1, ray=None,
                                  trial_cpus=None, trial_gpus=0.0, epochs=search.epochs)
    return {"id": f"{os.getpid()}-{folder.name}", "model": str(model_file), "flavor": search.flavor,
            "arrays": arrays, "cache": str(search.cache.folder), "options": dataclasses.asdict(options),
            "profiles": [p.get_config() for p in search.profiles],
            "hashes": {"source": search.source_hash, "data": search.data_hash, "eval": search.eval_hash},
            "threads": int(threads), "gpus": list(gpus or []),
            # the driver's classes, passed in (pickled by reference) rather than imported: the engine imports the
            # executors, which import this module, so importing the engine here would close a loop
            "classes": (type(search), type(search.options))}


def limit_threads(threads: int, gpu: str | None = None) -> None:
    """Cap this process's TensorFlow (intra-op, inter-op) and BLAS threads; pin it to one GPU (or none)."""
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(min(2, threads))
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        for device in tf.config.list_physical_devices("GPU"):  # take GPU memory as needed, not all of it
            tf.config.experimental.set_memory_growth(device, True)
    except RuntimeError:
        pass  # TensorFlow already ran an op in this process (a reused Ray worker): its pools stay as they are


def start(context: dict[str, Any], slot: Any = None) -> None:
    """Process-pool initializer: cap threads (one GPU per worker when there are GPUs), then build the search.
    Ctrl-C reaches the whole process group; the driver alone answers it (it ends the search and terminates us)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gpu = None
    if slot is not None and context["gpus"]:
        with slot.get_lock():
            index, slot.value = slot.value, slot.value + 1
        gpu = context["gpus"][index % len(context["gpus"])]
    began = time.perf_counter()
    limit_threads(context["threads"], gpu)
    _search(context)
    _STARTUP.update(startup_figures(time.perf_counter() - began))


def startup_figures(search_seconds: float) -> dict[str, Any]:
    """What this worker process's start-up cost: seconds from the process's creation to ready (interpreter,
    imports, TensorFlow, the source model loaded and its search built), of which ``search_seconds`` in
    :func:`start` itself."""
    import psutil

    return {"worker": where(), "seconds": round(time.time() - psutil.Process().create_time(), 2),
            "search_s": round(search_seconds, 2)}


def _search(context: dict[str, Any]) -> Any:
    search = _STATE.get(context["id"])
    if search is not None:
        return search
    from modelpress.compressor.data import Dataset
    from modelpress.device_profiles import DeviceProfile
    from modelpress.model_io import load_model
    from modelpress.search.cache import TrialCache

    Search, SearchOptions = context["classes"]  # noqa: N806 - classes, named as they are

    files = _local_files(context)
    model = load_model(files["model"], flavor=context["flavor"]).model
    data = Dataset(*(np.load(files[name], mmap_mode="r") for name in ARRAYS))
    profiles = [DeviceProfile.from_config(dict(c), source="press driver") for c in context["profiles"]]
    options = SearchOptions(**{**context["options"], "families": tuple(context["options"]["families"])
                               if context["options"]["families"] else None})
    search = Search(model, context["flavor"], data, profiles, options, TrialCache(_cache_folder(context)))
    # the driver's hashes: every cache key a worker makes is the one the driver would have made
    search.source_hash, search.data_hash, search.eval_hash = (context["hashes"][k] for k in ("source", "data", "eval"))
    _STATE.clear()
    _STATE[context["id"]] = search
    return search


def _local_files(context: dict[str, Any]) -> dict[str, str]:
    """The source model and .npy paths on this machine; on a node without them, written from the bytes the
    driver put in Ray's object store (``context["shipped"]``) once per process."""
    wanted = {"model": context["model"], **context["arrays"]}
    shipped = context.get("shipped")
    if shipped is None:
        return wanted
    import ray

    folder = Path(tempfile.mkdtemp(prefix="modelpress-worker-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # the copies live as long as this worker process
    local = {}
    for name, path in wanted.items():
        target = folder / Path(path).name
        target.write_bytes(ray.get(shipped[name]))
        local[name] = str(target)
    return local


def _cache_folder(context: dict[str, Any]) -> str:
    """The driver's cache folder where this machine can write it (the same machine, or a shared filesystem);
    else a folder of this node's own (results then travel back to the driver as bytes)."""
    folder = Path(context["cache"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True)
        probe.close()
        return str(folder)
    except OSError:
        return tempfile.mkdtemp(prefix="modelpress-node-cache-")


def where() -> str:
    """``host:pid`` of this process (and the Ray node id when it runs as a Ray task)."""
    here = f"{socket.gethostname()}:{os.getpid()}"
    try:
        import ray

        if ray.is_initialized():
            return f"{here} node {ray.get_runtime_context().get_node_id()[:12]}"
    except ImportError:
        pass
    return here


def run_trial(context: dict[str, Any], profile_config: dict[str, Any], settings: Any,
              ship: bool = False) -> dict[str, Any]:
    """Run one trial in this worker: the Trial (unrecorded), where it ran, and with ``ship`` its cache files."""
    search = _search(context)
    profile = next(p for p in search.profiles if p.name == profile_config["name"])
    measurer = search.measurer(profile)
    measurer.threads = min(measurer.threads, context["threads"])  # interpreter threads: the worker's share
    trial = search.measure_trial(profile, measurer, settings)
    trial.worker, trial.epoch_seconds = where(), search.epoch_seconds
    files = search.cache.entry_files(trial.artifact_key, trial.model_key) if ship else None
    startup = dict(_STARTUP) or None
    _STARTUP.clear()
    return {"trial": trial, "files": files, "startup": startup}
