"""The command line: parse, call the library, render. One module per group of commands, each
registering with the one typer ``app``; heavy imports stay inside the commands, so that
``tunelab --help`` answers without torch."""

from __future__ import annotations

import sys

from rich.text import Text

from tunelab.cli import experiments, planning, results  # noqa: F401 (each registers its commands)
from tunelab.cli.app import app, errors
from tunelab.errors import TunelabError

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except TunelabError as err:
        errors.print(Text.assemble(("error:", "red"), f" {err}"), soft_wrap=True)  # user strings: text, not markup
        sys.exit(2)
