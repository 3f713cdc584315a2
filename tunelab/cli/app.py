"""The typer app every command registers with, its two consoles, and the options compare and sweep share."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure what fine-tuning methods cost and achieve on your model and data.")



console = Console() if sys.stdout.isatty() else Console(width=400)  # a log file gets the whole table, unwrapped



errors = Console(stderr=True)



# Where runs train: shared by `compare` and `sweep`.
EXECUTOR = typer.Option("local", help="local (a process per run) or ray (Ray tasks on a cluster).")



ADDRESS = typer.Option(None, help="Ray cluster address, e.g. 127.0.0.1:6379 (ray executor).")



CPUS_PER_RUN = typer.Option(1.0, help="CPUs each run declares to Ray.")



GPUS_PER_RUN = typer.Option(0.0, help="GPUs per run. 2 or more: each run trains on that many with DDP (torchrun), "
                                          "each global batch split over them (local and ray); below 1: a share "
                                          "Ray packs several runs on.")
