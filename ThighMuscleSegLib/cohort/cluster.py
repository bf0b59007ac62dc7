"""The Ray a batch runs on: imported only when a batch runs, a local one started here or an
existing cluster joined, and the workers' share of its CPUs and GPUs."""

from __future__ import annotations

import logging
import os

from .resume import BatchError


def import_ray():
    try:
        import ray
    except ImportError:
        raise BatchError("thighseg batch runs on Ray, which is not installed: pip install 'ThighMuscleSeg[batch]'") \
            from None
    return ray


def connect(ray, address: str | None):
    """A local Ray started here (``address`` None) or an existing cluster; returns whether we started it."""
    kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
              ignore_reinit_error=False)
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, **kw)
            return True
        # Ray starts its workers 15 nice levels below the raylet (its own jobs reset that to 0);
        # a cohort the user started should run at the priority they started it with (`nice
        # thighseg batch ...` for a background run), not be starved on a busy workstation.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", **kw)
        return True
    except ConnectionError as e:
        raise BatchError(f"cannot join the Ray cluster at {address}: {e}; start one with `ray start --head` "
                         "or leave out --address to run on this machine") from None
    except Exception as e:  # noqa: BLE001 - Ray raises plain Exceptions for a start that timed out
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise BatchError(f"cannot start {where}: {e}") from None


def worker_resources(ray, device: str, workers: int | None, cpus_per_worker: float | None, todo: int):
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 1)), float(res.get("GPU", 0))
    use_gpu = device.startswith("cuda") or (device == "auto" and gpus >= 1)
    if use_gpu and gpus < 1:
        raise BatchError(f"--device {device}: the Ray cluster has no GPU; use --device cpu or auto")
    if workers is None:
        workers = int(gpus) if use_gpu else max(1, int(cpus // (cpus_per_worker or 2)))
    workers = max(1, min(workers, todo))
    if cpus_per_worker is None:
        cpus_per_worker = 1.0 if use_gpu else max(cpus / workers, 0.01)
        if cpus_per_worker >= 1:
            cpus_per_worker = float(int(cpus_per_worker))
    gpu_per_worker = 1.0 if use_gpu else 0.0
    if use_gpu and workers > gpus:  # share the GPUs evenly (several workers per GPU)
        gpu_per_worker = gpus / workers
    return workers, cpus_per_worker, gpu_per_worker
