"""What every results file in bench/results says of itself: when, at which commit, on which machine,
with which libraries and by what command it was measured. The docs build refuses a results file
without it, so a benchmark writes it, not a person."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("torch", "transformers", "peft", "accelerate", "datasets", "optuna")
# Read when a benchmark imports this module, at its start: what else the machine ran as it began
STARTING_LOAD = os.getloadavg()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load, now = (", ".join(f"{x:.1f}" for x in loads) for loads in (STARTING_LOAD, os.getloadavg()))
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", {torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB{gpu}, {platform.system()} "
            f"{platform.release()}; load average {load} when it started, {now} when it ended")


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    # a results file another benchmark has just written is not a change to what is measured
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def libraries() -> str:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def command() -> str:
    script = os.path.relpath(sys.argv[0], ROOT) if sys.argv and sys.argv[0] else "python"
    return "python " + " ".join(shlex.quote(a) for a in [script, *sys.argv[1:]])


def line(started: datetime.datetime | None = None) -> str:
    when = (started or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Date: {when}. Commit: `{commit()}`. Machine: {machine()}. Libraries: {libraries()}. "
            f"Command: `{command()}`.")


def stamped(report: str, started: datetime.datetime | None = None) -> str:
    """``report`` with the provenance line under its title (or first, where it has none)."""
    lines = report.splitlines()
    at = 1 if lines and lines[0].startswith("#") else 0
    rest = lines[at:]
    while rest and not rest[0].strip():
        rest.pop(0)
    return "\n".join([*lines[:at], *([""] if at else []), line(started), "", *rest]).rstrip("\n") + "\n"
