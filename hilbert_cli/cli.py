"""The `hilbert` command: one thin function per verb that parses options and calls the core.

Library code raises HilbertError and never prints or exits; only `main` below turns an error
into one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import functools
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
DeviceOpt = typer.Option(
    "auto", "--device", help="auto (a CUDA GPU when there is one, else CPU), cpu, cuda, cuda:N or mps.",
)

EngineOpt = typer.Option("local", "--engine", help="local (this machine; evaluate: --jobs processes) or ray (documents, or grid cells, on Ray workers; needs the optional extra: pip install 'hilbert-cli\\[ray]').")
RayAddressOpt = typer.Option(None, "--ray-address", help="--engine ray: the Ray cluster to use (e.g. 10.0.0.1:6379; default RAY_ADDRESS, else a Ray started on this machine).")
WorkersOpt = typer.Option(None, "--workers", help="--engine ray: workers holding a model (default: as many as the cluster's CPUs and GPUs hold).")
CpusPerWorkerOpt = typer.Option(1.0, "--cpus-per-worker", help="--engine ray: CPUs each worker (or grid cell) asks Ray for; its torch threads.")
GpusPerWorkerOpt = typer.Option(0.0, "--gpus-per-worker", help="--engine ray: GPUs each worker (or grid cell) asks Ray for; above 0, its models run on its GPU.")


def _engine(name: str, address: Optional[str], workers: Optional[int], cpus: float, gpus: float, device: str):
    """The engine of --engine and its options (engine.make_engine); with Ray, the workers' device follows
    --gpus-per-worker, so --device is for the local engine."""
    from .engine import make_engine

    engine = make_engine(name, address=address, workers=workers, cpus_per_worker=cpus, gpus_per_worker=gpus)
    if engine.name != "local" and device.strip().lower() != "auto":
        raise HilbertError(f"--device {device}: with --engine {engine.name} the workers' device follows "
                           "--gpus-per-worker (a GPU each when above 0, else the CPU); leave --device out.")
    return engine


def _fail(message: str, code: int = 1) -> None:
    from rich.markup import escape

    # escaped: a message's brackets are text (pip install 'hilbert-cli[ray]'), not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# library parameters (HilbertError.param, or a message's "param:" prefix) -> the flag a CLI user types
FLAGS = {"device": "--device", "configuration": "--configuration", "loss.losses": "--losses", "train.epochs": "--epochs",
         "train.lr": "--lr", "train.seed": "--seed", "jobs": "--jobs", "k": "--folds", "train.calibrate": "--calibrate"}


def _worded(e: HilbertError) -> str:
    """The error's sentence on one line (a library's multi-line message, e.g. a network error, flattened), with a
    library parameter named by its command-line flag."""
    message = " ".join(str(e).split())
    param = e.param or message.split(":", 1)[0]
    if param in FLAGS and message.startswith(param + ":"):
        return FLAGS[param] + message[len(param):]
    return message


def command(name: Optional[str] = None):
    """Register a command whose HilbertError (or operating-system error) becomes one line on stderr and exit code 1.

    Done here rather than only in main() so that every way of invoking the app (the console script,
    `python -m hilbert_cli`, Typer's test runner) shows the user the same sentence, not a traceback.
    """
    def register(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except HilbertError as e:
                _fail(_worded(e))
            except OSError as e:  # a refusal the library did not word itself: still one line, never a traceback
                from .atomic import describe_os_error

                _fail(describe_os_error(e, what="cannot read or write it"))
        return app.command(name)(run)
    return register


def _progress(*extra_columns):
    """The bar every long command shows on stderr; transient, so it is gone when the work is done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    *extra_columns, console=err_console, transient=True)


def _stage_bars(bar, describe, **fields):
    """A library `progress(stage, done, total)` callback: one bar per stage, opened on its first call
    with the label `describe(stage)`."""
    bars = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = bar.add_task(describe(stage), total=total, **fields)
        bar.update(bars[stage], completed=done, total=total)

    return update


# --- commands -------------------------------------------------------------------------------
# Each command: parse options, call one library function, render its result.
# (commands are added below this line)


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


@command("demo-data")
def demo_data(
    out_dir: Path = typer.Argument(..., metavar="DIR", help="Folder to write the corpus into (new, empty, or an earlier demo corpus)."),
    n_docs: int = typer.Option(60, "--n-docs", help="Number of interviews (at least 8; two per subject)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes the same files."),
    min_seconds: float = typer.Option(30.0, "--min-seconds", help="Shortest interview length in seconds."),
    max_seconds: float = typer.Option(90.0, "--max-seconds", help="Longest interview length in seconds."),
):
    """Write a synthetic interview corpus with known ground truth (speech synthesised offline with eSpeak NG).

    Labels: mood (carried by the words of a few revealing answers), prosody (by the voice only), spectrum (4 imbalanced classes that need both) and congruence (whether the revealing answers are spoken in a manner that matches their words: neither modality alone tells). Mixed audio formats and transcript kinds, as in a real corpus; DIR/README.md describes the ground truth.

    Example: hilbert demo-data ./demo --n-docs 60 --seed 0 && hilbert segment ./demo
    """
    from rich.table import Table

    from .demo.corpus import make_demo_corpus

    with _progress() as bar:
        task = bar.add_task("synthesising interviews", total=n_docs)
        r = make_demo_corpus(out_dir, n_docs=n_docs, seed=seed, min_seconds=min_seconds, max_seconds=max_seconds,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"Wrote {r.n_docs} interviews ({r.total_seconds / 60:.1f} min of audio) to {r.out_dir}", highlight=False)
    table = Table(title="labels (labels.csv)")
    for col in ("task", "carried by", "documents per class"):
        table.add_column(col)
    carried = {"mood": "words only", "prosody": "voice only", "spectrum": "words and voice",
               "congruence": "agreement of words and voice"}
    for task_name, counts in r.label_counts.items():
        table.add_row(task_name, carried.get(task_name, ""), ", ".join(f"{k} {v}" for k, v in counts.items()))
    console.print(table)
    console.print("audio:       " + ", ".join(f"{k} ({v})" for k, v in r.audio_formats.items()), highlight=False)
    console.print("transcripts: " + ", ".join(f"{k} ({v})" for k, v in r.transcripts.items()), highlight=False)
    if r.n_new:
        console.print(f"new:         {r.n_new} unlabelled interviews in {r.out_dir / 'new'} (for `hilbert predict`)",
                      highlight=False)
    console.print(f"Next: hilbert segment {r.out_dir}", style="dim", highlight=False)


@command()
def segment(
    corpus: Path = typer.Argument(..., help="Corpus folder: audio, optional same-stem transcripts, labels.csv."),
    strategy: str = typer.Option("auto", "--strategy", help="auto (sentences and pauses), cues (the timed transcript's cues) or fixed (windows)."),
    target_words: int = typer.Option(17, "--target-words", help="auto: aim for this many words per segment."),
    max_seconds: float = typer.Option(15.0, "--max-seconds", help="auto: no segment longer than this (seconds)."),
    window: float = typer.Option(10.0, "--window", help="fixed: window length in seconds."),
    min_seconds: float = typer.Option(1.0, "--min-seconds", help="Recordings shorter than this (seconds) are reported as too short, not transcribed."),
    replace: bool = typer.Option(False, "--replace", help="Replace another corpus already segmented in the workspace."),
    speakers: Optional[str] = typer.Option(None, "--speakers", metavar="NAME[,NAME]",
                                           help="Model only these speakers' speech (names as the transcripts or --channels give them; default: everyone's). "
                                                "With --diarize, 'participant' is the voice with the most speech in each recording."),
    channels: str | None = typer.Option(None, "--channels", metavar="NAME,NAME",
                                           help="Stereo with one speaker per channel: name the channels, left first; each is transcribed on its own (default: channels averaged)."),
    diarize: bool = typer.Option(False, "--diarize", help="Recordings whose transcript names no speaker: find the speakers by offline diarization (needs the optional extra: pip install 'hilbert-cli\\[diarize]')."),
    num_speakers: int = typer.Option(2, "--num-speakers", help="--diarize: at most this many voices per recording (voices too alike are merged)."),
    beam_size: int = typer.Option(1, "--beam-size", help="ASR beam width (1 = greedy); decoding is deterministic (temperature 0) either way."),
    asr: str = typer.Option("faster-whisper", "--asr", help="faster-whisper[:NAME_OR_DIR] or openai-whisper:NAME_OR_PT."),
    tier: Optional[str] = typer.Option(None, "--tier", metavar="NAME[,NAME]",
                                       help="TextGrids: read these tiers, one speaker each (default: each speaker's word tier, never a phone tier)."),
    allow_download: bool = AllowDownloadOpt,
    device: str = DeviceOpt,
    engine: str = EngineOpt,
    ray_address: Optional[str] = RayAddressOpt,
    workers: Optional[int] = WorkersOpt,
    cpus_per_worker: float = CpusPerWorkerOpt,
    gpus_per_worker: float = GpusPerWorkerOpt,
    workspace: Optional[Path] = WorkspaceOpt,
):
    """Cut every recording of a corpus into segments (transcribing audio that has no timed transcript).

    Example: hilbert segment ./interviews -w ./hilbert-work
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from .corpus.segment import PAPER_SECONDS, PAPER_WORDS, SegmentSettings, segment_corpus
    from .device import resolve_device
    from .workspace import Workspace

    torch_device = resolve_device(device, param="--device")  # a device that is not there stops here, before any work
    settings = SegmentSettings(strategy, target_words, max_seconds, window, asr, min_seconds=min_seconds, tier=tier,
                               speakers=speakers, beam_size=beam_size, channels=channels, diarize=diarize,
                               num_speakers=num_speakers)
    runner = _engine(engine, ray_address, workers, cpus_per_worker, gpus_per_worker, device)
    ws = Workspace(workspace)
    with ws.lock("segment"), runner, Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.completed:.1f}/{task.total} documents"),
                                      TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("segmenting", total=None)

        def on_progress(p):
            bar.update(task, total=p.n_docs, completed=p.doc_index + p.fraction, description=p.doc_id)

        result = segment_corpus(corpus, ws, settings, allow_download=allow_download, progress=on_progress,
                                device=torch_device, replace=replace, engine=runner)

    table = Table(title=f"segments in {result.workspace}")
    for col in ("documents", "segments", "mean words / segment", "mean seconds / segment", "left out"):
        table.add_column(col, justify="right")
    table.add_row(str(len(result.documents)), str(result.n_segments), f"{result.mean_words:.1f}",
                  f"{result.mean_seconds:.2f}", str(len(result.problems)))
    console.print(table)
    console.print(f"(the paper's corpus: {PAPER_WORDS} words, {PAPER_SECONDS} s per segment)", style="dim")
    if any(result.speech):  # some transcript names its speakers
        kept = {n.casefold() for n in settings.speakers or []}
        parts = [f"{name or '(unnamed)'} {seconds / 60:.1f} min" + (" (modelled)" if name.casefold() in kept else "")
                 for name, seconds in result.speech.items()]
        note = " (speakerN: diarized, named per recording)" if any(d.diarized for d in result.documents) else ""
        console.print("speakers: " + ", ".join(parts) + note, highlight=False, soft_wrap=True)
    picked = [f"{d.doc_id} {d.participant}" for d in result.documents if d.participant]
    if picked:
        console.print("participant (the voice with the most speech): " + ", ".join(picked), highlight=False,
                      soft_wrap=True)
    if result.mono:
        shown = ", ".join(result.mono[:8]) + (", ..." if len(result.mono) > 8 else "")
        console.print(f"--channels: {len(result.mono)} mono recording(s) segmented as one channel ({shown}); their "
                      "speakers are those their transcripts name, if any.", highlight=False, soft_wrap=True)
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


@command()
def embed(
    audio: str = typer.Option("whisper-tiny", "--audio", help="Audio backbone: alias (see `hilbert backbones`), Hugging Face id or folder."),
    text: str = typer.Option("minilm", "--text", help="Text backbone: alias, Hugging Face id or sentence-transformers folder."),
    layer: Optional[int] = typer.Option(None, "--layer", help="Audio encoder layer to pool (0 = input embeddings; default the last)."),
    pooling: str = typer.Option("mean", "--pooling", help="Pooling of encoder frames inside a segment: mean or mean+std."),
    allow_download: bool = AllowDownloadOpt,
    device: str = DeviceOpt,
    engine: str = EngineOpt,
    ray_address: Optional[str] = RayAddressOpt,
    workers: Optional[int] = WorkersOpt,
    cpus_per_worker: float = CpusPerWorkerOpt,
    gpus_per_worker: float = GpusPerWorkerOpt,
    workspace: Optional[Path] = WorkspaceOpt,
):
    """Embed every segment with a frozen audio and text encoder; vectors are cached, so re-running costs nothing.

    Example: hilbert embed --audio whisper-tiny --text minilm -w ./hilbert-work
    """
    from rich.table import Table

    from .device import resolve_device
    from .features.embed import embed_corpus
    from .workspace import Workspace

    torch_device = resolve_device(device, param="--device")
    runner = _engine(engine, ray_address, workers, cpus_per_worker, gpus_per_worker, device)
    ws = Workspace(workspace)
    with ws.lock("embed"), runner, _progress() as bar:
        on_progress = _stage_bars(bar, lambda stage: f"{stage} ({audio if stage == 'audio' else text}): "
                                                     f"{'documents' if stage == 'audio' else 'segments'}")
        r = embed_corpus(ws, audio, text, layer=layer, pooling=pooling, allow_download=allow_download, progress=on_progress,
                         device=torch_device, engine=runner)

    table = Table(title=f"embeddings in {ws.embeddings_dir}")
    for col in ("documents", "segments", "audio: computed / cached", "text: computed / cached", "dims (audio, text)", "time"):
        table.add_column(col, justify="right")
    table.add_row(str(r.docs), str(r.segments), f"{r.audio_computed} / {r.audio_cached}", f"{r.text_computed} / {r.text_cached}",
                  f"{r.audio_dim}, {r.text_dim}", f"{r.seconds:.1f} s")
    console.print(table)
    if r.audio_seconds:
        console.print(f"{r.audio_seconds / 60:.1f} min of audio embedded at {r.realtime_factor:.0f}x real time.")
    else:
        console.print("Everything was cached: no model was run.")
    if r.corrupt:
        console.print(f"[yellow]warning:[/] {r.corrupt} damaged cache file(s) were found and recomputed.")


@command()
def backbones():
    """List the audio and text encoders, their aliases, and whether each is usable offline now.

    Example: hilbert backbones
    """
    from rich.markup import escape
    from rich.table import Table

    from .features.backbones import DEFAULT_AUDIO, DEFAULT_TEXT, available_backbones

    table = Table(title="backbones (any Hugging Face model id or local model folder works too)")
    for col in ("alias", "kind", "model", "dimension", "usable offline now"):
        table.add_column(col)
    for row in available_backbones():
        alias = f"{row.alias} (default)" if row.alias in (DEFAULT_AUDIO, DEFAULT_TEXT) else row.alias
        table.add_row(alias, row.kind, escape(row.model), str(row.dimension or "?"),
                      "[green]yes[/]" if row.offline else "[red]no[/] (--allow-download)")
    console.print(table)


@command()
def train(
    task: str = typer.Option(..., "--task", help="Task (a label column of labels.csv) to train on."),
    audio: str = typer.Option("whisper-tiny", "--audio", help="Audio backbone: alias (see `hilbert backbones`), Hugging Face id or folder."),
    text: str = typer.Option("minilm", "--text", help="Text backbone: alias, Hugging Face id or sentence-transformers folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with hyperparameters (configuration:, model:, loss:, train:)."),
    configuration: Optional[str] = typer.Option(None, "--configuration", help="hilbert, contrastive-moe, transfer, transfer-moe, audio-only, text-only or clap (CLAP embeddings: embeds with the clap backbones whatever --audio/--text say)."),
    losses: Optional[str] = typer.Option(None, "--losses", help="Auxiliary losses, comma-separated subset of contrastive,cka,mi (or none)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs (early stopping usually ends sooner)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="AdamW learning rate."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (training is deterministic on CPU)."),
    calibrate: bool | None = typer.Option(None, "--calibrate/--no-calibrate", help="Temperature-scale the probabilities (train.calibrate), fitted on held-out documents: the validation split, or (without one) train.calibration_fraction of the documents, held out of training."),
    output: Path = typer.Option(Path("model.pt"), "--output", "-o", help="Model file to write."),
    device: str = DeviceOpt,
    allow_download: bool = AllowDownloadOpt,
    workspace: Optional[Path] = WorkspaceOpt,
):
    """Train one model on every labelled document of a task and write model.pt (plus its loss curves and config).

    Example: hilbert train --task spectrum --audio whisper-tiny --text minilm --configuration hilbert -o spectrum.pt
    """
    from rich.panel import Panel
    from rich.progress import TextColumn

    from .atomic import check_writable_file
    from .learn.config import load_config
    from .learn.train import train_task
    from .learn.trainer import HISTORY_KEYS
    from .workspace import Workspace

    from .device import resolve_device

    torch_device = resolve_device(device, param="--device")  # a device that is not there stops here, before any work
    overrides = {"configuration": configuration, "loss.losses": losses, "train.epochs": epochs, "train.lr": lr,
                 "train.seed": seed, "train.calibrate": calibrate}
    cfg = load_config(config, overrides)
    if output.suffix == ".pt":  # (train_task words the other case)
        check_writable_file(output, "-o")  # before the config is shown and any work starts
    console.print(Panel(cfg.to_yaml().rstrip(), title="resolved config", expand=False))
    ws = Workspace(workspace)
    with ws.lock("train"), _progress(TextColumn("{task.fields[losses]}")) as bar:
        on_embed = _stage_bars(bar, lambda stage: f"embed {stage}", losses="")
        train_bar = bar.add_task(f"train {cfg.configuration}", total=cfg.train.epochs, losses="")

        def on_epoch(epoch: int, total: int, r: dict):
            parts = " ".join(f"{k} {r[k]:.3f}" for k in HISTORY_KEYS if r[k] != 0)
            auc = "" if r["val_auc"] != r["val_auc"] else f" val AUC {r['val_auc']:.3f}"
            bar.update(train_bar, completed=epoch, total=total, losses=f"{parts} | val {r['val_loss']:.3f}{auc}")

        r = train_task(ws, task, audio, text, cfg, output, allow_download=allow_download,
                       progress=on_epoch, embed_progress=on_embed, device=torch_device)
    counts = ", ".join(f"{n}: {c}" for n, c in zip(r.label_names, r.class_counts))
    console.print(f"Trained {cfg.configuration} on {r.n_documents} documents of task {r.task!r} ({counts}) in "
                  f"{r.seconds:.1f} s: {r.epochs_run} epochs, weights from epoch {r.best_epoch} (lowest validation loss).")
    if r.calibration is not None:
        c = r.calibration
        console.print(f"Calibrated: temperature T = {c.temperature:.3g} fitted on {c.n_documents} held-out documents "
                      f"(their mean negative log-likelihood {c.nll_before:.3f} -> {c.nll_after:.3f}).", highlight=False)
        if c.at_bound:
            console.print(f"[yellow]warning:[/] the temperature stopped at the end of its range ({c.temperature:.3g}): the "
                          f"{c.n_documents} held-out documents say little about over-confidence (the model ranks them "
                          "all right, or all wrong); hold out more (train.calibration_fraction or train.val_fraction).",
                          highlight=False, soft_wrap=True)
    console.print(f"model   {r.model_path}\nlosses  {r.losses_csv}\nplot    {r.losses_png}\nconfig  {r.config_yaml}",
                  highlight=False)


@command()
def evaluate(
    task: str = typer.Option(..., "--task", help="Task(s) to evaluate: a label column of labels.csv, several comma-separated, or all."),
    configs: Optional[str] = typer.Option(None, "--config", help="Configurations, comma-separated: transfer, transfer-moe, contrastive-moe, hilbert, audio-only, text-only, clap (the paper's CLAP-LAION row: CLAP audio and text embeddings, run on the clap backbones only, whatever --audio/--text say) (default: the paper's four; none when only --ablation is given)."),
    ablation: Optional[str] = typer.Option(None, "--ablation", help="Loss ablation of hilbert: all (the 7 non-empty subsets of contrastive, cka, mi, as the paper's Table 4) or a list such as none,contrastive,contrastive+cka; judged by inner-validation AUC (an inner split of train.val_fraction, 0.2 when that is 0)."),
    audio: str = typer.Option("whisper-tiny", "--audio", help="Audio backbone(s), comma-separated: aliases (see `hilbert backbones`), Hugging Face ids or folders."),
    text: str = typer.Option("minilm", "--text", help="Text backbone(s), comma-separated."),
    folds: int = typer.Option(25, "--folds", "-k", help="Number of cross-validation folds (the paper: 25)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the fold assignment, the bootstrap and training (default 0; training otherwise uses train.seed of --config-file)."),
    calibrate: bool | None = typer.Option(None, "--calibrate/--no-calibrate", help="Temperature-scale each fold's probabilities on documents held out of its training part, as `train --calibrate` does."),
    seeds: int = typer.Option(1, "--seeds", help="Repeat the whole cross-validation N times, repetition r with fold and training seed --seed + r; the report gives mean ± sd over repetitions and the paired tests use them all (the paper's protocol: 1)."),
    group_by: str | None = typer.Option(None, "--group-by", help="A labels.csv column that is not a task (e.g. sex, site): AUC per subgroup with its 95% interval and the largest gap, in report.md and metrics.json."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Grid cells trained in parallel processes (default: one per core)."),
    config_file: Optional[Path] = typer.Option(None, "--config-file", help="YAML file with hyperparameters (model:, loss:, train:), as for `hilbert train --config`."),
    name: Optional[str] = typer.Option(None, "--name", help="Report folder name under runs/ in the workspace (default: date and time)."),
    device: str = DeviceOpt,
    engine: str = EngineOpt,
    ray_address: Optional[str] = RayAddressOpt,
    workers: Optional[int] = WorkersOpt,
    cpus_per_worker: float = CpusPerWorkerOpt,
    gpus_per_worker: float = GpusPerWorkerOpt,
    allow_download: bool = AllowDownloadOpt,
    workspace: Optional[Path] = WorkspaceOpt,
):
    """Cross-validate configurations, backbones and tasks; write an AUC report (Markdown, JSON, CSV, ROC plots).

    Finished grid cells are kept in the workspace, so re-running or extending a grid only trains what is new.

    Example: hilbert evaluate --task spectrum --config transfer,hilbert --audio whisper-tiny --text minilm --folds 25

    Example: hilbert evaluate --task depression --seeds 5 --group-by sex
    """
    from rich.markup import escape
    from rich.table import Table

    from .learn.config import load_config
    from .evaluation.grid import evaluate as run_evaluation
    from .evaluation.report import CALIBRATION_NOTE, auc_caption, auc_table, calibration_table
    from .workspace import Workspace

    from .device import resolve_device

    torch_device = resolve_device(device, param="--device")
    if name is not None and (not name.strip() or "/" in name or "\\" in name or name.startswith(".")):
        _fail(f"--name {name!r}: give a plain folder name (no slashes, not starting with a dot).")
    over = {"train.seed": seed, "train.calibrate": calibrate}
    base = load_config(config_file, over) if config_file is not None or any(v is not None for v in over.values()) else None
    runner = _engine(engine, ray_address, workers, cpus_per_worker, gpus_per_worker, device)
    ws = Workspace(workspace)
    with ws.lock("evaluate"), runner, _progress() as bar:
        on_progress = _stage_bars(bar, lambda stage: "cross-validate grid cells" if stage == "train" else f"embed {stage}")
        r = run_evaluation(ws, task, configs, audio, text, k=folds, seed=seed or 0, ablations=ablation,
                           config=base, run_name=name, jobs=jobs, allow_download=allow_download, device=torch_device,
                           progress=on_progress, seeds=seeds, group_by=group_by, engine=runner)
    for w in r.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    header, rows, bold = auc_table(r.cells, r.tasks, r.pairs, r.variants)
    ks = sorted({s.folds.k for s in r.setups.values()})
    reps = f" × {len(r.seeds)} seeds" if len(r.seeds) > 1 else ""
    table = Table(title=f"AUC (%), {'/'.join(map(str, ks))}-fold CV{reps}", caption=auc_caption(r.cells))
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < 2 else "right")
    for row, b in zip(rows, bold):
        offset = len(row) - len(b)
        cells = [escape(x) for x in row]  # names such as hilbert[cka] are not markup
        table.add_row(*[f"[bold]{x}[/]" if j >= offset and b[j - offset] else x for j, x in enumerate(cells)])
    console.print(table)
    header, rows = calibration_table(r.cells, r.tasks, r.pairs, r.variants)
    table = Table(title="Calibration of the pooled out-of-fold probabilities", caption=CALIBRATION_NOTE)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*[escape(x) for x in row])
    console.print(table)
    if r.group_by is not None:
        console.print(f"AUC per subgroup of {r.group_by!r}, with intervals and the largest gap: report.md, metrics.json.",
                      highlight=False)
    console.print(f"{r.n_trained} cell(s) trained, {r.n_cached} kept from earlier runs, in {_clock(r.seconds)}.")
    console.print(f"report  {r.files['report']}\nmetrics {r.files['metrics']}", highlight=False)


@command()
def predict(
    model: Path = typer.Argument(..., metavar="MODEL.pt", help="Model file written by `hilbert train`."),
    inputs: list[Path] = typer.Argument(..., metavar="FILE_OR_DIR...", help="Recordings, or folders of recordings (a same-stem transcript beside one is used)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the predictions as JSON (one object per file); '-' writes them to standard output (everything else then goes to standard error)."),
    explain_csv: Optional[Path] = typer.Option(None, "--explain", help="Write every segment's weight per modality to this CSV."),
    allow_download: bool = AllowDownloadOpt,
    device: str = DeviceOpt,
    workspace: Optional[Path] = WorkspaceOpt,
):
    """Classify new recordings with a trained model: label, every class probability, and the segments that weighed most.

    Transcripts and embeddings are cached in the workspace, so predicting a file again runs no ASR and no encoder. Exits 1 if any file failed.

    Example: hilbert predict model.pt demo/new --json predictions.json --explain segments.csv
    """
    from rich.markup import escape
    from rich.table import Table

    from .atomic import check_writable_file
    from .device import resolve_device
    from .predict import json_text, predict_files, write_explain_csv, write_json

    to_stdout = json_out is not None and str(json_out) == "-"
    out = err_console if to_stdout else console  # with --json -, standard output carries the JSON only
    torch_device = resolve_device(device, param="--device")
    for path, flag in ((None if to_stdout else json_out, "--json"), (explain_csv, "--explain")):
        if path is not None:
            check_writable_file(path, flag)  # before any model work
    units = {"segment": "files", "audio": "files", "text": "segments"}
    with _progress() as bar:
        on_progress = _stage_bars(bar, lambda stage: f"{'segment' if stage == 'segment' else 'embed ' + stage} "
                                                     f"({units.get(stage, '')})")
        r = predict_files(model, inputs, workspace=workspace, allow_download=allow_download, progress=on_progress,
                          device=torch_device)

    for w in r.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    ok = [p for p in r.predictions if p.error is None]
    table = Table(title=f"task {r.task!r}: {r.configuration} ({r.backbones['audio']} + {r.backbones['text']})")
    table.add_column("file")
    table.add_column("label", style="bold")
    for name in r.label_names:
        table.add_column(f"p({escape(name)})", justify="right")
    for p in ok:
        table.add_row(escape(p.file), escape(p.label), *(f"{p.probabilities[n]:.3f}" for n in r.label_names))
    if ok:
        out.print(table)
        out.print(f"probabilities: {r.probability_kind}.", highlight=False, soft_wrap=True)
    for p in ok:
        out.print(f"\n[bold]{escape(p.file)}[/]: {escape(p.label)} (p = {p.probabilities[p.label]:.3f}); "
                  f"top {len(p.top_segments)} of {len(p.segments)} segments:", highlight=False)
        seg = Table()
        for col, just in (("time", "left"), ("occlusion", "right"), ("weight", "right"), ("text", "left")):
            seg.add_column(col, justify=just, overflow="fold")
        for s in p.top_segments:
            seg.add_row(f"{_clock(s.start)}–{_clock(s.end)}", f"{s.occlusion:+.3f}", f"{s.weight:.3f}", escape(s.text))
        out.print(seg)
    if ok:
        out.print(f"occlusion = how much p({'{'}label{'}'}) drops without the segment (segments ranked by it); "
                  f"weight = {r.weighting}.", style="dim", highlight=False)
    # each output file on its own: one that cannot be written gets its line, the others are still written
    output_problems = []
    if to_stdout:
        sys.stdout.write(json_text(r))
        sys.stdout.flush()
    for path, what, writer in ((None if to_stdout else json_out, "predictions", write_json),
                               (explain_csv, "segment weights", write_explain_csv)):
        if path is None:
            continue
        try:
            out.print(f"{what}  {writer(r, path)}", highlight=False)
        except HilbertError as e:
            output_problems.append(str(e))
    for problem in [p.error for p in r.failed] + output_problems:
        err_console.print(f"[bold red]problem:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if r.failed:
        _fail(f"{len(r.failed)} of {len(r.predictions)} file(s) could not be predicted (see above); the others were.")
    if output_problems:
        _fail(f"{len(output_problems)} output file(s) could not be written (see above); the predictions are shown above.")


def main() -> None:
    """Console-script entry point: run the app, turning HilbertError into one line and exit 1."""
    try:
        app()
    except HilbertError as e:
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
