"""Where the work of `segment`, `embed` and `evaluate` runs: `local` (this process, and `evaluate --jobs` processes)
or `ray` (actors and tasks on a Ray cluster, or a Ray started on this machine).

Two kinds of work, one interface:
  - `map_documents(factory, fn, items, progress)`: documents as units of work on workers that each build their
    state once (`factory()`: a loaded ASR model or encoder) and then run `fn(state, item, report)` per item;
    yields (index, result, error) as items finish, in any order. `error` is the item's own HilbertError or
    OSError (its one line, as locally); any other exception stops the run.
  - `run_tasks(fn, arg_tuples)`: independent calls `fn(*args)` (grid cells); yields (index, result) as they finish.
  - `call(fn, *args)`: one call on one worker (the corpus's text embedding, batched as locally).

The local engine runs everything in this process, in order: today's code path. The Ray engine runs
documents on `workers` actors (each with `cpus_per_worker` CPUs, as many torch threads, and `gpus_per_worker`
GPUs), restarted by Ray when their process dies, the document they held retried on the new one; tasks are
retried likewise. Results come back to the driver, which writes them into the workspace (under its lock), so a
document finished is kept even when the run stops later. Inputs (the recordings) and the workspace must be at the
same path on every node (a shared filesystem); the ASR cache of a recording being transcribed is written by the
worker transcribing it, so a restarted worker resumes from the recording's last finished chunk.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Iterator, Optional

from .errors import HilbertError

ENGINES = ("local", "ray")
RAY_MISSING = "--engine ray: Ray is not installed; pip install 'hilbert-cli[ray]'"
MAX_RESTARTS = 3  # a Ray worker whose process dies is restarted this many times (the document it held is retried)
MAX_RETRIES = 3  # a Ray task (grid cell) whose process dies is retried this many times

Progress = Optional[Callable[[int, float], None]]  # (item index, fraction of it done)


def _apply(fn, state, item, report):
    """(result, None), or (None, the item's own error): what a local run reports per document."""
    try:
        return fn(state, item, report), None
    except (HilbertError, OSError) as e:
        return None, e


class LocalEngine:
    """Everything in this process, in order (evaluate's cells: its own process pool, --jobs)."""

    name = "local"
    threads: Optional[int] = None  # None: each command's own default (device.default_threads)

    def map_documents(self, factory, fn, items: list, progress: Progress = None) -> Iterator[tuple]:
        if not items:
            return
        state = factory()
        for i, item in enumerate(items):
            report = (lambda f, i=i: progress(i, f)) if progress else (lambda f: None)
            result, error = _apply(fn, state, item, report)
            yield i, result, error

    def call(self, fn, *args):
        return fn(*args)

    def worker_device(self, device):
        """The device the workers' models run on: the command's own."""
        return device

    def run_tasks(self, fn, arg_tuples: list) -> Iterator[tuple]:
        for i, args in enumerate(arg_tuples):
            yield i, fn(*args)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def close(self) -> None:
        pass


def _ignore(fraction: float) -> None:
    pass


class _InitFailed:
    """What a Ray worker answers when its state (the model) could not be built: the error, raised on the driver."""

    def __init__(self, error: BaseException):
        self.error = error


class _Worker:
    """A Ray actor's body: builds its state once (in its own process), then runs documents on it."""

    def __init__(self, factory, threads: Optional[int]):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.state, self.init_error = None, None
        try:
            self.state = factory()
        except (HilbertError, OSError) as e:  # e.g. a model that is not on this node: told on the driver
            self.init_error = e

    def run(self, fn, item):
        if self.init_error is not None:
            return _InitFailed(self.init_error)
        return _apply(fn, self.state, item, _ignore)

    def pid(self) -> int:
        return os.getpid()


def _threaded(threads: Optional[int], fn, *args):
    """`fn(*args)` with `threads` torch threads (a Ray task's body)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return fn(*args)


class RayEngine:
    """Documents on Ray actors, grid cells as Ray tasks. Connects to `address` (or RAY_ADDRESS), else starts a
    Ray on this machine; a Ray already initialised in this process (e.g. by a test or a notebook) is used as is."""

    name = "ray"

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None, cpus_per_worker: float = 1,
                 gpus_per_worker: float = 0):
        self.ray = _import_ray()
        self.address, self.workers = address, workers
        self.cpus, self.gpus = cpus_per_worker, gpus_per_worker
        self.threads = max(1, math.floor(cpus_per_worker)) if cpus_per_worker >= 1 else 1
        self._started = False
        # Ray sets a worker's OMP_NUM_THREADS to its CPUs, and CTranslate2's int8 products (Whisper) differ with it:
        # the workers get this process's value (unset: its cores, libgomp's default), so their vectors are the
        # local engine's bit for bit
        from .device import _usable_cores

        omp = os.environ.get("OMP_NUM_THREADS") or str(_usable_cores())
        self.options = {"num_cpus": cpus_per_worker, "num_gpus": gpus_per_worker,
                        "runtime_env": {"env_vars": {"OMP_NUM_THREADS": omp}}}
        self.actors: list = []  # the actors of the running map_documents (their pid(): the kill test)

    # -- lifecycle --
    def _connect(self):
        ray = self.ray
        if not ray.is_initialized():
            import logging

            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR)
            except ConnectionError as e:
                raise HilbertError(f"--ray-address {self.address or os.environ.get('RAY_ADDRESS', '')}: cannot connect "
                                   f"to a Ray cluster there ({' '.join(str(e).split())[:200]}); start it with `ray "
                                   "start --head` or fix the address.", param="--ray-address") from None
            self._started = True
        return ray

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _n_workers(self, n_items: int) -> int:
        if self.workers is not None:
            return max(1, min(self.workers, n_items))
        res = self.ray.cluster_resources()
        fits = [res.get("CPU", 1) / self.cpus] if self.cpus > 0 else []
        if self.gpus > 0:
            fits.append(res.get("GPU", 0) / self.gpus)
        n = int(min(fits)) if fits else n_items
        if n < 1:
            raise HilbertError(f"--gpus-per-worker {self.gpus:g}: the Ray cluster has {res.get('GPU', 0):g} GPU(s) and "
                               f"{res.get('CPU', 0):g} CPU(s), too few for one worker; lower --gpus-per-worker or "
                               "--cpus-per-worker, or add nodes.", param="--gpus-per-worker")
        return max(1, min(n, n_items))

    def _died(self, e: BaseException) -> HilbertError:
        return HilbertError(f"--engine ray: a Ray worker died more than {MAX_RESTARTS} times (often: out of memory) "
                            f"({' '.join(str(e).split())[:200]}); run again (finished documents and cells are kept), "
                            "with fewer --workers or more --cpus-per-worker.")

    # -- work --
    def map_documents(self, factory, fn, items: list, progress: Progress = None) -> Iterator[tuple]:
        if not items:
            return
        ray = self._connect()
        Actor = ray.remote(_Worker).options(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RETRIES, **self.options)
        self.actors = [Actor.remote(factory, self.threads) for _ in range(self._n_workers(len(items)))]
        pending, idle, todo = {}, list(self.actors), list(range(len(items)))
        try:
            while todo or pending:
                while todo and idle:
                    actor, i = idle.pop(), todo.pop(0)
                    pending[actor.run.remote(fn, items[i])] = (i, actor)
                done, _ = ray.wait(list(pending), num_returns=1)
                i, actor = pending.pop(done[0])
                try:
                    out = ray.get(done[0])
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                    raise self._died(e) from None
                if isinstance(out, _InitFailed):
                    raise out.error
                idle.append(actor)
                if progress:
                    progress(i, 1.0)
                yield (i, *out)
        finally:
            for ref in pending:
                ray.cancel(ref, force=False)
            for a in self.actors:
                ray.kill(a, no_restart=True)
            self.actors = []

    def call(self, fn, *args):
        ray = self._connect()
        task = ray.remote(_threaded).options(max_retries=MAX_RETRIES, **self.options)
        try:
            return ray.get(task.remote(self.threads, fn, *args))
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
            raise self._died(e) from None
        except ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None

    def run_tasks(self, fn, arg_tuples: list) -> Iterator[tuple]:
        if not arg_tuples:
            return
        ray = self._connect()
        task = ray.remote(_threaded).options(max_retries=MAX_RETRIES, **self.options)
        pending = {task.remote(self.threads, fn, *args): i for i, args in enumerate(arg_tuples)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                    raise self._died(e) from None
                except ray.exceptions.RayTaskError as e:
                    raise e.as_instanceof_cause() from None
                yield i, result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def worker_device(self, device):
        """The device the workers' models run on: a GPU of their own with --gpus-per-worker, else the CPU (Ray
        sets CUDA_VISIBLE_DEVICES, so a worker's GPU is its cuda:0)."""
        return "cuda" if self.gpus > 0 else "cpu"

    def worker_pids(self) -> list[int]:
        """The process ids of the running map_documents' workers."""
        return self.ray.get([a.pid.remote() for a in self.actors])


def _import_ray():
    try:
        import ray
    except ImportError:
        raise HilbertError(RAY_MISSING, param="--engine") from None
    return ray


def make_engine(name: str = "local", *, address: Optional[str] = None, workers: Optional[int] = None,
                cpus_per_worker: float = 1, gpus_per_worker: float = 0):
    """The engine `name` ("local" or "ray") with its options checked; Ray is imported here (so a missing extra stops
    before any work) and started on first use. Use it as a context manager: a Ray it started is shut down."""
    if name not in ENGINES:
        raise HilbertError(f"--engine: unknown engine {name!r}; choose one of {', '.join(ENGINES)}.", param="--engine")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise HilbertError(f"--workers: must be at least 1, got {workers}.", param="--workers")
    if not cpus_per_worker > 0:
        raise HilbertError(f"--cpus-per-worker: must be more than 0, got {cpus_per_worker:g}.", param="--cpus-per-worker")
    if not gpus_per_worker >= 0:
        raise HilbertError(f"--gpus-per-worker: must be 0 or more, got {gpus_per_worker:g}.", param="--gpus-per-worker")
    if name == "local":
        given = [flag for flag, v in (("--ray-address", address), ("--workers", workers),
                                      ("--cpus-per-worker", cpus_per_worker != 1), ("--gpus-per-worker", gpus_per_worker))
                 if v]
        if given:
            raise HilbertError(f"{given[0]}: only the Ray engine uses it; add --engine ray, or leave {given[0]} out.",
                               param=given[0])
        return LocalEngine()
    return RayEngine(address, workers, cpus_per_worker, gpus_per_worker)
