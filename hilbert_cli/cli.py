"""The `hilbert` command: one thin function per verb that parses options and calls the core.

Library code raises HilbertError and never prints or exits; only `main` below turns an error
into one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .errors import HilbertError

app = typer.Typer(
    name="hilbert",
    help="HILBERT: from a folder of interview recordings to per-task predictions and cross-validated AUC reports, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

WorkspaceOpt = typer.Option(
    None, "--workspace", "-w", envvar="HILBERT_WORKSPACE",
    help="Workspace folder where state is kept (default ./hilbert-work).",
)
AllowDownloadOpt = typer.Option(
    False, "--allow-download", help="Allow a one-time download of model weights that are not on this machine.",
)


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# --- commands -------------------------------------------------------------------------------
# Each command: parse options, call one library function, render its result.
# (commands are added below this line)


def main() -> None:
    """Console-script entry point: run the app, turning HilbertError into one line and exit 1."""
    try:
        app()
    except HilbertError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
