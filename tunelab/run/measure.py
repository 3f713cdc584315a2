"""What a run costs, measured in the run's own process."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

_IMPORTED = time.monotonic()


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total); peft's own count for adapters, so base weights kept twice don't count."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def peak_memory_mb() -> tuple[float, str]:
    """Peak memory of this process: CUDA max allocated on a GPU, peak RSS on a CPU.

    On Linux the peak RSS is the kernel's high-water mark of this process's own memory (``VmHWM``),
    not ``getrusage``'s ``ru_maxrss``: a process started by ``subprocess`` inherits its parent's peak
    in ``ru_maxrss`` (exec keeps the larger of the two), so a worker spawned by a parent holding
    1.5 GB would report 1.5 GB whatever it used."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024, \
            "peak_rss"
    except (OSError, StopIteration, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_rss"  # Linux: KiB


def process_age() -> float:
    """Seconds since this process started (interpreter start-up and imports included): from the
    kernel's record on Linux, else since tunelab was imported."""
    try:
        stat = Path("/proc/self/stat").read_text()
        started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        return float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def environment() -> dict[str, Any]:
    """Versions and machine, recorded with every run so a number can be traced to its setup."""
    import torch

    versions = {name: _version(name) for name in ("torch", "transformers", "peft", "datasets", "accelerate")}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        **versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "precision": precision(),
        "threads": torch.get_num_threads(),
    }


def precision() -> str:
    """What a run computes in: bf16 on a GPU that has it, fp16 on one without, fp32 on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
