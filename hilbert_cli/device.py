"""Compute devices: `auto | cpu | cuda | cuda:N | mps`, resolved once and passed down as a parameter.

`auto` takes the first CUDA GPU when torch sees one, else the CPU (Apple's MPS only when asked for:
its float32-only kernels are not what the CPU and CUDA paths are tested with). A device that was asked
for and is not there stops at once with a DeviceError, before any work starts.
"""
from __future__ import annotations

import re
from typing import Optional, Union

import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DeviceLike = Union[str, torch.device, None]


def resolve_device(spec: DeviceLike = "auto", *, param: str = "device") -> torch.device:
    """The torch.device for `spec` ("auto", "cpu", "cuda", "cuda:1", "mps", a torch.device, or None = auto)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    name = "auto" if spec is None else str(spec).strip().lower()
    if name == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if m:
        if not torch.cuda.is_available():
            raise DeviceError(f"{param}: {spec!r} asked for a CUDA GPU, but torch sees none on this machine "
                              f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                              f"use cpu or auto.", param=param)
        index = int(m.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"{param}: {spec!r} asked for GPU {index}, but this machine has {count} "
                              f"(cuda:0..cuda:{count - 1}).", param=param)
        return torch.device(f"cuda:{index}")
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError(f"{param}: 'mps' asked for Apple's GPU, but torch sees none here; use cpu or auto.",
                              param=param)
        return torch.device("mps")
    raise DeviceError(f"{param}: unknown device {spec!r}; valid: {', '.join(DEVICE_CHOICES)}.", param=param)


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity on Linux, so a container's share, not the host's)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(device: torch.device, jobs: int = 1) -> Optional[int]:
    """torch intra-op threads for one of `jobs` parallel workers on `device`: the cores shared out on the CPU
    (small models thrash with more threads than cores), torch's own setting on a GPU (None)."""
    if device.type != "cpu":
        return None
    return max(1, _usable_cores() // max(1, jobs))


def ctranslate2_options(device: torch.device, threads: Optional[int] = None) -> dict:
    """Keyword arguments of faster-whisper's `WhisperModel` for `device`: float16 on a CUDA GPU, int8 on the CPU
    with `threads` CPU threads (None = default_threads). CTranslate2 has no MPS backend, so `mps` runs it on the
    CPU. float16 and int8 give slightly different numbers (transcripts and encoder vectors)."""
    if device.type == "cuda":
        return {"device": "cuda", "device_index": device.index or 0, "compute_type": "float16",
                "cpu_threads": threads or 0}
    cpu = torch.device("cpu")
    return {"device": "cpu", "compute_type": "int8",
            "cpu_threads": threads if threads is not None else default_threads(cpu)}
