"""`hilbert evaluate`: k-fold cross-validation of a grid of tasks × backbones × configurations.

A grid cell is one (task, audio, text, configuration) — an ablation is a `hilbert` configuration
with a subset of the auxiliary losses, trained with an inner validation split so that it can be
judged by its validation AUC (the paper's Table 4) without looking at a test fold. A configuration
with its own backbones (`clap`) runs on those alone, whatever --audio / --text say; the others run
on every requested pair. Each cell trains all its folds at once (crossval.py), and
its out-of-fold predictions are kept in the workspace (runs/.cells/<key>.json) under a key made
of everything that determines them: task, backbones, resolved config, folds and the features
themselves. Re-running or extending a grid therefore only trains the new cells. Cells that still
need training run in parallel processes; the report (report.py) is computed from the kept
predictions, so all metrics of a cell come from one set of out-of-fold probabilities.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import multiprocessing
import numpy as np

from ..atomic import atomic_write_json, check_writable_dir
from ..learn.config import AUX_LOSSES, CONFIGURATIONS, PAPER_CONFIGURATIONS, HilbertConfig
from ..learn.registry import REFERENCE
from ..device import default_threads, resolve_device
from ..errors import HilbertError, OutputError
from .folds import DEFAULT_FOLDS, Folds, make_folds, subject_groups
from .metrics import corrected_resampled_ttest, paired_bootstrap_test, summarize
from ..workspace import Workspace

CELL_FORMAT = 1  # bump when a cell's stored result changes meaning; old cells are then retrained
CELLS_DIR = ".cells"  # inside runs/: kept cell results
ABLATION_VAL_FRACTION = 0.2  # inner validation share of an ablation run when the config sets none (train.val_fraction 0)


# --- the grid ---------------------------------------------------------------------------------

def _split(value, what: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    items = [str(v).strip() for v in items if str(v).strip()]
    if not items:
        raise HilbertError(f"{what}: give at least one name.")
    return list(dict.fromkeys(items))  # drop repeats, keep order


def ablation_name(losses) -> str:
    return f"{REFERENCE}[{'+'.join(losses) or 'none'}]"


def parse_ablations(spec) -> list[tuple[str, ...]]:
    """'all' -> every non-empty subset of contrastive/cka/mi (7, as the paper's Table 4); else a list such as
    'none,contrastive,contrastive+cka' (the empty subset only when listed as 'none')."""
    if spec is None:
        return []
    items = _split(spec, "--ablation")
    if "all" in items and len(items) > 1:
        raise HilbertError("--ablation: 'all' already means every non-empty subset; give it alone, or list subsets "
                           "without it.")
    if items == ["all"]:
        return [tuple(c) for r in range(1, len(AUX_LOSSES) + 1) for c in itertools.combinations(AUX_LOSSES, r)]
    subsets = []
    for item in items:
        names = [] if item == "none" else [s.strip().lower() for s in item.split("+")]
        bad = [s for s in names if s not in AUX_LOSSES]
        if bad:
            raise HilbertError(
                f"--ablation: unknown loss {bad[0]!r} in {item!r}; use 'all', 'none', or losses from "
                f"{', '.join(AUX_LOSSES)} joined by '+' (e.g. contrastive+cka)."
            )
        subsets.append(tuple(s for s in AUX_LOSSES if s in names))
    return list(dict.fromkeys(subsets))


def variant_configs(configurations, ablations, base: Optional[HilbertConfig]) -> dict[str, HilbertConfig]:
    """Name -> resolved config for every configuration and ablation of the grid.

    Losses chosen in the base config (YAML) apply to the configuration the YAML names; every other
    configuration gets its own default losses (METHOD.md §7). An ablation keeps the base config's
    train.val_fraction when it is above 0 and uses ABLATION_VAL_FRACTION otherwise: its figure in the
    ablation table is the inner-validation AUC, so it needs a validation split (never a test fold)."""
    base = base or HilbertConfig()
    out: dict[str, HilbertConfig] = {}
    for name in configurations:
        if name not in CONFIGURATIONS:
            raise HilbertError(f"--config: unknown configuration {name!r}; valid: {', '.join(CONFIGURATIONS)}.")
        keep = base.loss.losses if name == base.configuration else None
        out[name] = _with(base, name, keep)
    val_fraction = base.train.val_fraction or ABLATION_VAL_FRACTION
    for subset in ablations:
        out[ablation_name(subset)] = _with(base, REFERENCE, list(subset), val_fraction)
    return out


def _with(base: HilbertConfig, configuration: str, losses, val_fraction: float | None = None) -> HilbertConfig:
    d = base.to_dict()
    d["configuration"] = configuration
    d["loss"]["losses"] = None if losses is None else list(losses)
    if val_fraction is not None:
        d["train"]["val_fraction"] = val_fraction
    return HilbertConfig.from_dict(d, source="--config-file")


# --- results ----------------------------------------------------------------------------------

@dataclass
class Cell:
    """One grid cell and, once run, its out-of-fold predictions."""
    task: str
    audio: str
    text: str
    variant: str
    config: HilbertConfig
    key: str = ""
    proba: Optional[np.ndarray] = None  # (N, C)
    val_auc: list = field(default_factory=list)  # per fold: inner-validation AUC at the kept epoch (None: undefined / no split)
    best_epoch: list[int] = field(default_factory=list)
    epochs_run: list[int] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)  # per fold with train.calibrate, else empty
    seconds: float = 0.0
    cached: bool = False
    metrics: dict = field(default_factory=dict)

    @property
    def pair(self) -> str:
        return f"{self.audio}+{self.text}"


@dataclass
class TaskSetup:
    task: str
    doc_ids: list[str]
    subjects: list
    y: np.ndarray
    label_names: list[str]
    folds: Folds
    groups: Optional[np.ndarray]


@dataclass
class EvalResult:
    run_dir: Path
    files: dict[str, Path]  # report, metrics, folds, oof, config, roc_<task>
    tasks: list[str]
    variants: list[str]
    pairs: list[tuple[str, str]]
    metrics: dict  # as metrics.json
    cells: list[Cell]
    setups: dict[str, TaskSetup]
    warnings: list[str]
    n_trained: int
    n_cached: int
    seconds: float


# --- the entry point --------------------------------------------------------------------------

def evaluate(
    workspace: Workspace | str | None, tasks, configurations=None, audio_backbones="whisper-tiny",
    text_backbones="minilm", *, k: int = DEFAULT_FOLDS, seed: int = 0, ablations=None,
    config: Optional[HilbertConfig] = None, run_name: Optional[str] = None, jobs: Optional[int] = None,
    allow_download: bool = False, device=None,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> EvalResult:
    """Cross-validate every cell of the grid (reusing kept cells) and write the report.

    `progress(stage, done, total)` is called for embedding stages and for trained cells ("train")."""
    t0 = time.perf_counter()
    dev = resolve_device(device, param="device")  # before any work: a missing GPU stops at once
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    check_writable_dir(ws.runs_dir, "--workspace", label=ws.root)  # before any training: where the cells and the report go
    if run_name is not None:
        check_writable_dir(ws.runs_dir / run_name, "--name")
    manifest = ws.load_manifest()
    task_list = manifest.tasks if tasks in ("all", ["all"]) else _split(tasks, "--task")
    for t in task_list:
        manifest.task_labels(t)  # raises for an unknown task, listing the valid ones
    ablation_sets = parse_ablations(ablations)
    if configurations is None:
        configurations = [] if ablation_sets else list(PAPER_CONFIGURATIONS)
    else:
        configurations = _split(configurations, "--config")
    variants = variant_configs(configurations, ablation_sets, config)
    requested = [(a, t) for a in _split(audio_backbones, "--audio") for t in _split(text_backbones, "--text")]
    runs_on = {name: cfg.spec.pairs(requested) for name, cfg in variants.items()}  # clap: its own pair only
    pairs = list(dict.fromkeys(p for ps in runs_on.values() for p in ps))

    # features (embedded once, here in the parent) and folds (one assignment per task)
    from ..learn.data import load_task_data

    setups: dict[str, TaskSetup] = {}
    data: dict[tuple[str, str, str], dict] = {}
    warnings: list[str] = []
    for task in task_list:
        for audio, text in pairs:
            td = load_task_data(ws, task, audio, text, allow_download=allow_download, progress=progress, device=dev)
            if task not in setups:
                groups = subject_groups(td.doc_ids, td.subjects)
                folds = make_folds(td.y, k, seed, groups, td.doc_ids, td.label_names, task)
                setups[task] = TaskSetup(task, td.doc_ids, td.subjects, td.y, td.label_names, folds, groups)
                warnings += [f"{task}: {w}" for w in folds.warnings]
            data[(task, audio, text)] = {"A": td.A, "T": td.T, "hash": _features_hash(td.A, td.T)}

    cells = [Cell(task, a, t, name, cfg) for task in task_list for a, t in pairs for name, cfg in variants.items()
             if (a, t) in runs_on[name]]
    cache_dir = ws.runs_dir / CELLS_DIR
    todo: dict[str, Cell] = {}
    for c in cells:
        s = setups[c.task]
        c.key = _cell_key(c, s, data[(c.task, c.audio, c.text)]["hash"])
        if _load_cell(cache_dir / f"{c.key}.json", c, s):
            continue
        todo.setdefault(c.key, c)  # identical cells (e.g. hilbert and its full ablation) train once
    _run_cells(list(todo.values()), setups, data, jobs, dev, cache_dir, progress)
    for c in cells:
        if c.key in todo:
            if not _load_cell(cache_dir / f"{c.key}.json", c, setups[c.task]):
                raise HilbertError(f"{cache_dir / (c.key + '.json')}: the result just written cannot be read back; check the disk.")
            c.cached = False
    metrics = compute_metrics(cells, setups, seed)

    from .report import write_report

    name = run_name or datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = ws.runs_dir / name
    try:
        files = write_report(run_dir, cells, setups, metrics, variants, pairs, warnings,
                             {"folds": k, "seed": seed, "tasks": task_list, "configurations": list(variants),
                              "audio": sorted({a for a, _ in pairs}), "text": sorted({t for _, t in pairs})})
    except OutputError as e:
        raise OutputError(f"{str(e).rstrip('.')}; the {len(cells)} finished cell(s) are kept in {cache_dir}, so the same "
                          "command run again only writes the report.") from None
    return EvalResult(run_dir, files, task_list, list(variants), pairs, metrics, cells, setups, warnings,
                      len(todo), sum(1 for c in cells if c.cached), time.perf_counter() - t0)


# --- metrics over the grid --------------------------------------------------------------------------

def compute_metrics(cells: list[Cell], setups: dict[str, TaskSetup], seed: int = 0) -> dict:
    """metrics.json: task -> configuration -> (backbone pair when there are several ->) metrics."""
    several_pairs = len({c.pair for c in cells}) > 1
    by = {(c.task, c.pair, c.variant): c for c in cells}
    out: dict = {}
    for c in cells:
        s = setups[c.task]
        m = summarize(s.y, c.proba, s.folds.test_fold, len(s.label_names), seed=seed)
        m["label_names"] = list(s.label_names)
        m["n_documents"] = len(s.y)
        m["best_epoch"] = c.best_epoch
        m["val_auc_folds"] = list(c.val_auc)
        m["val_auc"] = validation_auc(c)
        if c.temperature:  # train.calibrate: the per-fold temperatures the probabilities were scaled with
            m["temperature_folds"] = c.temperature
        ref = by.get((c.task, c.pair, REFERENCE)) or by.get((c.task, c.pair, ablation_name(AUX_LOSSES)))
        if ref is None and c.config.spec.backbones is not None:  # clap: against hilbert on the first requested pair
            ref = next((r for r in cells if r.task == c.task and r.variant == REFERENCE), None)
        if ref is not None and ref is not c:
            n_train = float(np.mean([len(tr) for tr, _ in s.folds.splits()]))
            n_test = float(np.mean([len(te) for _, te in s.folds.splits()]))
            ref_folds = summarize_folds(s, ref.proba)
            tt = corrected_resampled_ttest(ref_folds, m["auc_folds"], n_train, n_test)
            bs = paired_bootstrap_test(s.y, ref.proba, c.proba, seed=seed)
            m["vs_" + REFERENCE] = {"reference": ref.variant, "reference_backbones": ref.pair,
                                    "auc_diff": bs["diff"], "auc_diff_ci": bs["diff_ci"],
                                    "p_ttest": tt["p"], "t": tt["t"], "n_folds": tt["n_folds"], "p_bootstrap": bs["p"]}
        c.metrics = m
        node = out.setdefault(c.task, {}).setdefault(c.variant, {})
        if several_pairs:
            node[c.pair] = m
        else:
            node.update(m)
    return out


def validation_auc(c: Cell) -> float | None:
    """A run's inner-validation AUC: per fold, the AUC on its inner validation split (documents of its training
    part only) at the epoch whose weights were kept, averaged over the folds where it is defined; None when the
    run had no validation split (train.val_fraction 0) or no fold defines it. What the ablation table selects on."""
    vals = [v for v in c.val_auc if v is not None]
    return float(np.mean(vals)) if vals else None


def summarize_folds(s: TaskSetup, proba: np.ndarray) -> list:
    from .metrics import roc_auc

    return [roc_auc(s.y[te], proba[te]) for _, te in s.folds.splits()]


# --- running cells ---------------------------------------------------------------------------------

def _features_hash(A, T) -> str:
    h = hashlib.sha256()
    for x in itertools.chain(A, T):
        x = np.ascontiguousarray(x, dtype=np.float32)
        h.update(str(x.shape).encode())
        h.update(x.tobytes())
    return h.hexdigest()[:16]


def _cell_key(c: Cell, s: TaskSetup, features: str) -> str:
    payload = {"format": CELL_FORMAT, "task": c.task, "audio": c.audio, "text": c.text, "config": c.config.to_dict(),
               "folds": s.folds.hash, "labels": s.label_names, "y": s.y.tolist(), "features": features}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
    return f"{c.task}-{c.config.configuration}-{digest}"


def _load_cell(path: Path, c: Cell, s: TaskSetup) -> bool:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        proba = np.asarray(d["proba"], dtype=np.float64)
        if d["doc_ids"] != s.doc_ids or proba.shape != (len(s.doc_ids), len(s.label_names)):
            return False  # a key collision or a damaged file: train again
        if c.config.train.val_fraction > 0 and "val_auc" not in d:
            return False  # kept before validation AUCs were recorded: train again to have it
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return False
    c.proba, c.best_epoch, c.epochs_run, c.seconds = proba, d["best_epoch"], d["epochs_run"], d["seconds"]
    c.val_auc = list(d.get("val_auc") or [])
    c.temperature = list(d.get("temperature") or [])
    c.cached = True
    return True


PARENT_POLL_SECONDS = 0.5  # how often a worker checks that the evaluate process that started it is alive


def _watch_parent(parent_pid: int) -> None:
    """Worker initializer: a daemon thread ends this worker as soon as its parent is gone (killed by any
    signal, SIGKILL included, the worker is re-parented), so no worker outlives `hilbert evaluate`."""
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="hilbert-parent-watch", daemon=True).start()


def _cell_job(config_dict: dict, A, T, y, n_classes: int, test_fold, k: int, seed: int, groups, device: str,
              threads: Optional[int] = None) -> dict:
    """Train one cell's folds; runs in a worker process (or inline). Returns plain data only."""
    from .crossval import cross_val_predict

    t0 = time.perf_counter()
    config = HilbertConfig.from_dict(config_dict)
    folds = Folds([str(i) for i in range(len(y))], np.asarray(test_fold), k, seed, groups is not None)
    r = cross_val_predict(config, A, T, np.asarray(y), n_classes, folds, groups, device=device, threads=threads,
                          val_auc=config.train.val_fraction > 0)
    return {"proba": r.proba.tolist(), "best_epoch": list(r.best_epoch), "epochs_run": list(r.epochs_run),
            "val_auc": list(r.val_auc), "temperature": list(r.temperature), "seconds": time.perf_counter() - t0}


def _run_cells(todo: list[Cell], setups, data, jobs, device, cache_dir: Path, progress) -> None:
    if not todo:
        return
    cores = os.cpu_count() or 1
    jobs = min(len(todo), jobs or (cores if device.type == "cpu" else 1))  # one process per GPU by default
    if jobs < 1:
        raise HilbertError(f"--jobs: must be at least 1, got {jobs}.")
    threads = default_threads(device, jobs)

    def args(c: Cell):
        s = setups[c.task]
        d = data[(c.task, c.audio, c.text)]
        return (c.config.to_dict(), d["A"], d["T"], s.y, len(s.label_names), s.folds.test_fold, s.folds.k,
                s.folds.seed, s.groups, str(device), threads)

    def store(c: Cell, r: dict):
        if not np.isfinite(r["proba"]).all():
            raise HilbertError(f"{c.task} / {c.variant} ({c.pair}): training diverged (probabilities that are not "
                               "numbers); lower train.lr in --config-file (finished cells are kept).")
        atomic_write_json(cache_dir / f"{c.key}.json", {"key": c.key, "task": c.task, "audio": c.audio,
                                                        "text": c.text, "variant": c.variant,
                                                        "config": c.config.to_dict(),
                                                        "doc_ids": setups[c.task].doc_ids, **r})

    if progress is not None:
        progress("train", 0, len(todo))
    if jobs == 1:
        for i, c in enumerate(todo):
            store(c, _cell_job(*args(c)))
            if progress is not None:
                progress("train", i + 1, len(todo))
        return
    ctx = multiprocessing.get_context("spawn")  # fork after torch has threads is unsafe
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_watch_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_cell_job, *args(c)): c for c in todo}
        try:
            for i, fut in enumerate(as_completed(futures)):
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise HilbertError(
                        f"--jobs {jobs}: a worker process died (often: out of memory); run again with --jobs 1 "
                        f"(finished cells are kept and not redone)."
                    ) from None
                store(futures[fut], result)
                if progress is not None:
                    progress("train", i + 1, len(todo))
        except BaseException:  # a cell that cannot be stored (or Ctrl-C): cells not started are not trained for nothing
            pool.shutdown(wait=False, cancel_futures=True)
            raise
