"""Trials as tasks on a Ray cluster (``modelpress press --ray auto|ADDRESS``; the ``distributed`` extra).

    executor = RayWorkers(search, "auto", trial_cpus=2, trial_gpus=0)
    executor.run(search, profile, measurer, [settings_a, settings_b])    # Trials, in order, measured on the nodes

Each trial is one Ray task with the resources asked for, running the same trial function as local workers
(:func:`modelpress.search.worker.run_trial`). What travels through Ray's object store, so that the cluster needs
no shared filesystem: the source model and the data (put once; each worker process writes them to its own
scratch folder and memory-maps the arrays), and back from every task its trial and the cache files it made (the
.tflite and, for a compressed candidate, the fine-tuned model), which the driver writes into its own cache (the
packages are made from there). Workers use the driver's cache folder where their machine can write it (the same
machine, or a shared filesystem at the same path: then they also reuse each other's fine-tuned models), else a
scratch cache of their own. A task whose worker dies is retried once by Ray (``max_retries=1``), then recorded
as an error.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from modelpress.errors import UsageError
from modelpress.search.executor import Batches, died_trial


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, which is not installed; install the extra with pip install "
                         "'modelpress[distributed]' (or drop --ray to use local worker processes)") from None
    return ray


class RayWorkers(Batches):
    """Trials as Ray tasks on the cluster at ``address`` (``auto``: the one this machine belongs to)."""

    def __init__(self, search: Any, address: str, trial_cpus: float | None = None, trial_gpus: float = 0.0):
        super().__init__()
        ray = _ray()
        self.ray, self.address = ray, address
        self.started_here = not ray.is_initialized()
        if self.started_here:
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise UsageError(f"cannot join the Ray cluster at {address!r}: {err}. Start one with "
                                 "`ray start --head` (or pass its address, host:port), or drop --ray") from None
        self.folder = Path(tempfile.mkdtemp(prefix="modelpress-press-ray-"))
        try:
            self._prepare(search, trial_cpus, trial_gpus)
        except BaseException:
            self.close()
            raise

    def _prepare(self, search: Any, trial_cpus: float | None, trial_gpus: float) -> None:
        from modelpress.search.worker import write_context

        ray = self.ray
        self.cpus = float(trial_cpus or 1)
        self.gpus = float(trial_gpus or 0)
        resources = ray.cluster_resources()
        self.workers = max(1, int(resources.get("CPU", 1) // self.cpus))
        if self.gpus:
            self.workers = min(self.workers, max(1, int(resources.get("GPU", 0) // self.gpus)))
            if resources.get("GPU", 0) < self.gpus:
                raise UsageError(f"--trial-gpus {self.gpus:g} asks for more GPUs than the Ray cluster has "
                                 f"({resources.get('GPU', 0):g}); lower it or add GPU nodes")
        self.context = write_context(search, self.folder, max(1, int(self.cpus)))
        self.context["shipped"] = {name: ray.put(Path(path).read_bytes()) for name, path in
                                   {"model": self.context["model"], **self.context["arrays"]}.items()}
        self.task = ray.remote(_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=1)
        self.nodes: set[str] = set()
        self.cluster_nodes = len([n for n in ray.nodes() if n.get("Alive")])

    def run(self, search: Any, profile: Any, measurer: Any, batch: list) -> list:
        self.count(batch)
        refs = self.in_flight = [self.task.remote(self.context, profile.get_config(), settings) for settings in batch]
        trials = []
        for settings, ref in zip(batch, refs):
            try:
                reply = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as err:  # the trial raised: the task is not retried
                trials.append(died_trial(profile, settings, _short(err), "the trial failed on the cluster"))
                continue
            except self.ray.exceptions.RayError as err:  # the worker died twice, or the node went away
                trials.append(died_trial(profile, settings, _short(err)))
                continue
            if reply["files"]:
                search.cache.put_files(reply["files"])
            self.nodes.add(reply["trial"].worker.partition(" node ")[2])
            trials.append(reply["trial"])
        return trials

    def describe(self) -> dict[str, Any]:
        return {"kind": "ray", "address": self.address, "workers": self.workers, "trial_cpus": self.cpus,
                "trial_gpus": self.gpus, "nodes_used": sorted(n for n in self.nodes if n),
                "cluster_nodes": self.cluster_nodes, **self.offered()}

    def abort(self) -> None:
        """Ctrl-C: the batch's tasks still running on the cluster are cancelled."""
        for ref in getattr(self, "in_flight", []):
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.started_here:
            self.ray.shutdown()


def _task(context: dict[str, Any], profile_config: dict[str, Any], settings: Any) -> dict[str, Any]:
    from modelpress.search.worker import limit_threads, run_trial

    limit_threads(context["threads"])
    return run_trial(context, profile_config, settings, ship=True)


def _check_reachable(address: str) -> None:
    """A host:port nobody listens on fails now, with the fix (Ray itself would retry connecting for minutes)."""
    import socket

    host, _, port = address.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host.removeprefix("ray://") or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as err:
        raise UsageError(f"cannot join the Ray cluster at {address!r}: nothing answers there ({err}). Start one "
                         "with `ray start --head --port=PORT` (or pass the head's host:port), or drop --ray") from None


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
