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


@app.command()
def segment(
    corpus: Path = typer.Argument(..., help="Corpus folder: audio, optional same-stem transcripts, labels.csv."),
    strategy: str = typer.Option("auto", "--strategy", help="auto (sentences and pauses), cues (the timed transcript's cues) or fixed (windows)."),
    target_words: int = typer.Option(17, "--target-words", help="auto: aim for this many words per segment."),
    max_seconds: float = typer.Option(15.0, "--max-seconds", help="auto: no segment longer than this (seconds)."),
    window: float = typer.Option(10.0, "--window", help="fixed: window length in seconds."),
    asr: str = typer.Option("faster-whisper", "--asr", help="faster-whisper[:NAME_OR_DIR] or openai-whisper:NAME_OR_PT."),
    allow_download: bool = AllowDownloadOpt,
    workspace: Optional[Path] = WorkspaceOpt,
):
    """Cut every recording of a corpus into segments (transcribing audio that has no timed transcript).

    Example: hilbert segment ./interviews -w ./hilbert-work
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from .segment import PAPER_SECONDS, PAPER_WORDS, SegmentSettings, segment_corpus
    from .workspace import Workspace

    settings = SegmentSettings(strategy, target_words, max_seconds, window, asr)
    ws = Workspace(workspace)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.1f}/{task.total} documents"),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("segmenting", total=None)

        def on_progress(p):
            bar.update(task, total=p.n_docs, completed=p.doc_index + p.fraction, description=p.doc_id)

        result = segment_corpus(corpus, ws, settings, allow_download=allow_download, progress=on_progress)

    table = Table(title=f"segments in {result.workspace}")
    for col in ("documents", "segments", "mean words / segment", "mean seconds / segment", "left out"):
        table.add_column(col, justify="right")
    table.add_row(str(len(result.documents)), str(result.n_segments), f"{result.mean_words:.1f}",
                  f"{result.mean_seconds:.2f}", str(len(result.problems)))
    console.print(table)
    console.print(f"(the paper's corpus: {PAPER_WORDS} words, {PAPER_SECONDS} s per segment)", style="dim")
    resumed = sum(d.status == "resumed" for d in result.documents)
    if resumed:
        console.print(f"{resumed} document(s) already segmented with these settings were kept.")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    for p in result.problems:
        err_console.print(f"[bold red]problem:[/] {p}", highlight=False, soft_wrap=True)
    if result.failed:
        _fail(f"{len(result.problems)} problem(s) above; those documents were left out. Fix them and re-run "
              "(documents already done are kept).")


def main() -> None:
    """Console-script entry point: run the app, turning HilbertError into one line and exit 1."""
    try:
        app()
    except HilbertError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
