"""Where inference runs: device choice with a clear fallback message, precision, threads."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

import torch

from ..defaults import DEVICE_CHOICES
from ..io import InputError

log = logging.getLogger(__name__)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(requested: str = "auto") -> tuple[torch.device, str | None]:
    """The device to use and, when it is not the one asked for or hoped for, why (else None).

    auto: CUDA if available, then Apple MPS, else the CPU. An explicit GPU that is not
    available falls back to the CPU with a message rather than failing the run.
    """
    req = (requested or "auto").lower()
    kind = req.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise InputError(f"unknown device {requested!r}: use one of {', '.join(DEVICE_CHOICES)}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), None
        if _mps_available():
            return torch.device("mps"), None
        return torch.device("cpu"), "no CUDA or Apple MPS GPU found: running on the CPU (slower)"
    if kind == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu"), f"{requested} was requested but CUDA is not available: running on the CPU"
    if kind == "mps" and not _mps_available():
        return torch.device("cpu"), "mps was requested but Apple MPS is not available: running on the CPU"
    return torch.device(req), None


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """float16 autocast on a GPU (twice the speed, same labels in practice); full precision on CPU."""
    if device.type in ("cuda", "mps"):
        try:
            return torch.autocast(device_type=device.type, dtype=torch.float16)
        except RuntimeError:  # an older torch without MPS autocast
            return contextlib.nullcontext()
    return contextlib.nullcontext()


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run with ``count`` intra-op threads (default: the CPUs this process may use), then restore."""
    before = torch.get_num_threads()
    wanted = count or usable_cpus()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)
