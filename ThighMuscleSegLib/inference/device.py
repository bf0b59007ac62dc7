"""Where inference runs: device choice with a clear fallback message, precision, threads.

torch is imported only where a GPU could be there (``device_name`` answers "cpu" without it on
a machine with no GPU driver): ONNX Runtime inference on the CPU never needs torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..defaults import DEVICE_CHOICES
from ..io import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
NO_GPU = "no CUDA or Apple MPS GPU found: running on the CPU (slower)"
# What a GPU torch can use needs its driver: NVIDIA's kernel module, or AMD's ROCm device node.
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/kfd")


def _no_gpu_possible() -> bool:
    """True where no GPU can be used, known without importing torch: Linux with no GPU driver."""
    return sys.platform.startswith("linux") and not any(Path(f).exists() for f in GPU_DRIVER_FILES)


def device_name(requested: str = "auto") -> tuple[str, str | None]:
    """``resolve_device`` as a name ("cpu", "cuda", "cuda:1", "mps"): without importing torch when
    the answer is the CPU for certain (asked for, or "auto" where no GPU driver is installed)."""
    kind = (requested or "auto").lower().split(":")[0]
    if kind == "cpu":
        return "cpu", None
    if kind == "auto" and _no_gpu_possible():
        return "cpu", NO_GPU
    dev, why = resolve_device(requested)
    return str(dev), why


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(requested: str = "auto") -> "tuple[torch.device, str | None]":
    """The device to use and, when it is not the one asked for or hoped for, why (else None).

    auto: CUDA if available, then Apple MPS, else the CPU. An explicit GPU that is not
    available falls back to the CPU with a message rather than failing the run.
    """
    import torch

    req = (requested or "auto").lower()
    kind = req.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise InputError(f"unknown device {requested!r}: use one of {', '.join(DEVICE_CHOICES)}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), None
        if _mps_available():
            return torch.device("mps"), None
        return torch.device("cpu"), NO_GPU
    if kind == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu"), f"{requested} was requested but CUDA is not available: running on the CPU"
    if kind == "mps" and not _mps_available():
        return torch.device("cpu"), "mps was requested but Apple MPS is not available: running on the CPU"
    return torch.device(req), None


def autocast_for(device: "torch.device") -> contextlib.AbstractContextManager:
    """float16 autocast on a GPU (twice the speed, same labels in practice); full precision on CPU."""
    import torch

    if device.type in ("cuda", "mps"):
        try:
            return torch.autocast(device_type=device.type, dtype=torch.float16)
        except RuntimeError:  # an older torch without MPS autocast
            return contextlib.nullcontext()
    return contextlib.nullcontext()


def thread_limit() -> int | None:
    """The intra-op thread count this process was given: torch's setting once torch is imported,
    else ``OMP_NUM_THREADS`` (Ray sets it to an actor's CPUs); None when nothing limits it."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return None


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run with ``count`` intra-op threads (default: the CPUs this process may use), then restore."""
    import torch

    before = torch.get_num_threads()
    wanted = count or usable_cpus()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)
