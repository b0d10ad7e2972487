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

Repetitions (`seeds` > 1, `hilbert evaluate --seeds N`): repetition r (0-based) is the whole grid again
with fold seed `seed + r` and training seed `train.seed + r` (the CLI's --seed sets both, so repetition r
uses seed + r for both). Each repetition's cells are ordinary cells with their own keys, so repetition 0
is exactly the run without --seeds, and a later, larger --seeds trains only the new repetitions.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
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
from .metrics import corrected_resampled_ttest, mean_sd, over_seeds, paired_bootstrap_test, roc_auc, summarize
from .subgroups import check_group_column, subgroup_aucs
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
    repetition: int = 0  # which repetition of the cross-validation (--seeds), 0 for the first

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
    cells: list[Cell]  # the first repetition's cells (seed `seed`)
    setups: dict[str, TaskSetup]  # the first repetition's folds
    warnings: list[str]
    n_trained: int
    n_cached: int
    seconds: float
    seeds: list[int] = field(default_factory=list)  # fold seed of every repetition ([seed] without --seeds)
    repetitions: list[tuple[list[Cell], dict[str, TaskSetup]]] = field(default_factory=list)  # every repetition
    group_by: str | None = None


# --- the entry point --------------------------------------------------------------------------

def evaluate(
    workspace: Workspace | str | None, tasks, configurations=None, audio_backbones="whisper-tiny",
    text_backbones="minilm", *, k: int = DEFAULT_FOLDS, seed: int = 0, ablations=None,
    config: Optional[HilbertConfig] = None, run_name: Optional[str] = None, jobs: Optional[int] = None,
    allow_download: bool = False, device=None,
    progress: Optional[Callable[[str, int, int], None]] = None, seeds: int = 1, group_by: str | None = None,
    engine=None,
) -> EvalResult:
    """Cross-validate every cell of the grid (reusing kept cells) and write the report.

    seeds: repetitions of the whole cross-validation, repetition r with fold seed `seed + r` and training seed
    `train.seed + r`; the report gives mean ± sd over them, and the paired tests use all of them.
    group_by: a label column of labels.csv that is not a task: AUC per subgroup of its values (subgroups.py).
    `progress(stage, done, total)` is called for embedding stages and for trained cells ("train").
    engine: where the cells train (engine.make_engine; None = local, in `jobs` processes): with Ray, each cell is a
    Ray task; either way a cell is kept as it finishes and the report is made from the kept cells. Features
    missing from the cache are embedded here, locally (`hilbert embed --engine ray` first for a large corpus)."""
    t0 = time.perf_counter()
    if engine is not None and engine.name != "local" and jobs is not None:
        raise HilbertError(f"--jobs: the local engine's number of processes; with --engine {engine.name} each cell is "
                           "a task of --cpus-per-worker CPUs, so leave --jobs out.", param="--jobs")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise HilbertError(f"--seeds: give the number of repetitions, a whole number of at least 1 (got {seeds!r}).",
                           param="--seeds")
    dev = resolve_device(device, param="device")  # before any work: a missing GPU stops at once
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    check_writable_dir(ws.runs_dir, "--workspace", label=ws.root)  # before any training: where the cells and the report go
    if run_name is not None:
        check_writable_dir(ws.runs_dir / run_name, "--name")
    manifest = ws.load_manifest()
    every_task = tasks in ("all", ["all"])
    task_list = [t for t in manifest.tasks if t != group_by] if every_task else _split(tasks, "--task")
    for t in task_list:
        manifest.task_labels(t)  # raises for an unknown task, listing the valid ones
    if group_by is not None:
        check_group_column(group_by, manifest.tasks, task_list)
        if not task_list:
            raise HilbertError(f"--group-by {group_by}: labels.csv has no other column to evaluate as a task; add a "
                               "label column.", param="--group-by")
    ablation_sets = parse_ablations(ablations)
    if configurations is None:
        configurations = [] if ablation_sets else list(PAPER_CONFIGURATIONS)
    else:
        configurations = _split(configurations, "--config")
    variants = variant_configs(configurations, ablation_sets, config)
    requested = [(a, t) for a in _split(audio_backbones, "--audio") for t in _split(text_backbones, "--text")]
    runs_on = {name: cfg.spec.pairs(requested) for name, cfg in variants.items()}  # clap: its own pair only
    pairs = list(dict.fromkeys(p for ps in runs_on.values() for p in ps))
    seed_list = [seed + r for r in range(int(seeds))]

    # features (embedded once, here in the parent) and folds (one assignment per task and repetition)
    from ..learn.data import load_task_data

    by_rep: list[dict[str, TaskSetup]] = [{} for _ in seed_list]
    data: dict[tuple[str, str, str], dict] = {}
    warnings: list[str] = []
    for task in task_list:
        for audio, text in pairs:
            td = load_task_data(ws, task, audio, text, allow_download=allow_download, progress=progress, device=dev)
            if task not in by_rep[0]:
                groups = subject_groups(td.doc_ids, td.subjects)
                for r, s_r in enumerate(seed_list):
                    folds = make_folds(td.y, k, s_r, groups, td.doc_ids, td.label_names, task)
                    by_rep[r][task] = TaskSetup(task, td.doc_ids, td.subjects, td.y, td.label_names, folds, groups)
                warnings += [f"{task}: {w}" for w in by_rep[0][task].folds.warnings]  # the same for every seed
            data[(task, audio, text)] = {"A": td.A, "T": td.T, "hash": _features_hash(td.A, td.T)}
    setups = by_rep[0]
    if group_by is not None:
        warnings += _missing_group_warnings(manifest, group_by, setups)

    reps = [[Cell(task, a, t, name, _seeded(cfg, r), repetition=r) for task in task_list for a, t in pairs
             for name, cfg in variants.items() if (a, t) in runs_on[name]] for r in range(len(seed_list))]
    cells = reps[0]
    cache_dir = ws.runs_dir / CELLS_DIR
    todo: dict[str, Cell] = {}
    for c in itertools.chain.from_iterable(reps):
        s = by_rep[c.repetition][c.task]
        c.key = _cell_key(c, s, data[(c.task, c.audio, c.text)]["hash"])
        if _load_cell(cache_dir / f"{c.key}.json", c, s):
            continue
        todo.setdefault(c.key, c)  # identical cells (e.g. hilbert and its full ablation) train once
    _run_cells(list(todo.values()), by_rep, data, jobs, dev, cache_dir, progress, engine)
    for c in itertools.chain.from_iterable(reps):
        if c.key in todo:
            if not _load_cell(cache_dir / f"{c.key}.json", c, by_rep[c.repetition][c.task]):
                raise HilbertError(f"{cache_dir / (c.key + '.json')}: the result just written cannot be read back; check the disk.")
            c.cached = False
    repetitions = list(zip(reps, by_rep))
    metrics = compute_metrics(cells, setups, seed, repetitions=repetitions[1:],
                              group_by=None if group_by is None else (group_by, _group_values(manifest, group_by)))

    from .report import write_report

    name = run_name or datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = ws.runs_dir / name
    grid = {"folds": k, "seed": seed, "tasks": task_list, "configurations": list(variants),
            "audio": sorted({a for a, _ in pairs}), "text": sorted({t for _, t in pairs})}
    if len(seed_list) > 1:
        grid["seeds"] = seed_list
    if group_by is not None:
        grid["group_by"] = group_by
    try:
        files = write_report(run_dir, cells, setups, metrics, variants, pairs, warnings, grid,
                             repetitions=repetitions[1:])
    except OutputError as e:
        raise OutputError(f"{str(e).rstrip('.')}; the {len(cells)} finished cell(s) are kept in {cache_dir}, so the same "
                          "command run again only writes the report.") from None
    return EvalResult(run_dir, files, task_list, list(variants), pairs, metrics, cells, setups, warnings,
                      len(todo), sum(1 for rc in reps for c in rc if c.cached), time.perf_counter() - t0,
                      seed_list, repetitions, group_by)


def _seeded(config: HilbertConfig, repetition: int) -> HilbertConfig:
    """The configuration of repetition r: training seed train.seed + r (repetition 0: the configuration itself)."""
    if repetition == 0:
        return config
    return replace(config, train=replace(config.train, seed=config.train.seed + repetition))


def _group_values(manifest, column: str) -> dict[str, str | None]:
    """doc_id -> the document's value in `column` (None when the cell is empty)."""
    out = {}
    for doc_id, d in manifest.documents.items():
        v = d.get("labels", {}).get(column)
        out[doc_id] = None if v is None or str(v).strip() == "" else str(v).strip()
    return out


def _missing_group_warnings(manifest, column: str, setups: dict[str, TaskSetup]) -> list[str]:
    values = _group_values(manifest, column)
    out = []
    for t, s in setups.items():
        n = sum(1 for d in s.doc_ids if values.get(d) is None)
        if n:
            out.append(f"{t}: {n} of {len(s.doc_ids)} documents have no {column!r} value, so they are in no subgroup "
                       "(they still count in every other figure).")
    return out


# --- metrics over the grid --------------------------------------------------------------------------

def compute_metrics(cells: list[Cell], setups: dict[str, TaskSetup], seed: int = 0, *,
                    repetitions: list[tuple[list[Cell], dict[str, TaskSetup]]] = (),
                    group_by: tuple[str, dict[str, str | None]] | None = None) -> dict:
    """metrics.json: task -> configuration -> (backbone pair when there are several ->) metrics.

    `cells`/`setups`: the first repetition; `repetitions`: the further ones (--seeds), each (its cells, in the
    same order, and setups with its own folds). Every cell gets its own repetition's metrics; with repetitions,
    the first repetition's cell also gets "seeds" (mean ± sd over repetitions) and "repetitions" (each one's
    figures), and the comparisons with hilbert use every repetition. `group_by`: (column, doc_id -> subgroup or None):
    adds "subgroups" (AUC per subgroup, from the first repetition; with repetitions also per repetition)."""
    several_pairs = len({c.pair for c in cells}) > 1
    all_reps = [(cells, setups), *repetitions]
    for rc, rs in all_reps:
        for c in rc:
            s = rs[c.task]
            m = summarize(s.y, c.proba, s.folds.test_fold, len(s.label_names), seed=seed)
            m["label_names"] = list(s.label_names)
            m["n_documents"] = len(s.y)
            m["best_epoch"] = c.best_epoch
            c.metrics = m
    by = [{(c.task, c.pair, c.variant): c for c in rc} for rc, _ in all_reps]
    out: dict = {}
    for c in cells:
        s = setups[c.task]
        m = c.metrics
        m["val_auc_folds"] = list(c.val_auc)
        m["val_auc"] = validation_auc(c)
        if c.temperature:  # train.calibrate: the per-fold temperatures the probabilities were scaled with
            m["temperature_folds"] = c.temperature
        mine = [b[(c.task, c.pair, c.variant)] for b in by]  # this cell in every repetition
        ref = by[0].get((c.task, c.pair, REFERENCE)) or by[0].get((c.task, c.pair, ablation_name(AUX_LOSSES)))
        if ref is None and c.config.spec.backbones is not None:  # clap: against hilbert on the first requested pair
            ref = next((r for r in cells if r.task == c.task and r.variant == REFERENCE), None)
        if ref is not None and ref is not c:
            refs = [b[(ref.task, ref.pair, ref.variant)] for b in by]
            splits = [sp for _, rs in all_reps for sp in rs[c.task].folds.splits()]
            n_train = float(np.mean([len(tr) for tr, _ in splits]))
            n_test = float(np.mean([len(te) for _, te in splits]))
            ref_folds = [a for x, (_, rs) in zip(refs, all_reps) for a in summarize_folds(rs[c.task], x.proba)]
            tt = corrected_resampled_ttest(ref_folds, [a for x in mine for a in x.metrics["auc_folds"]], n_train, n_test)
            bs = paired_bootstrap_test(s.y, [x.proba for x in refs], [x.proba for x in mine], seed=seed)
            m["vs_" + REFERENCE] = {"reference": ref.variant, "reference_backbones": ref.pair,
                                    "auc_diff": bs["diff"], "auc_diff_ci": bs["diff_ci"],
                                    "p_ttest": tt["p"], "t": tt["t"], "n_folds": tt["n_folds"], "p_bootstrap": bs["p"]}
            if repetitions:
                m["vs_" + REFERENCE]["n_repetitions"] = len(all_reps)
        if repetitions:
            m["seeds"] = over_seeds([x.metrics for x in mine])
            m["repetitions"] = [{"seed": rs[c.task].folds.seed, "train_seed": x.config.train.seed,
                                 **{key: v for key, v in x.metrics.items() if key not in ("label_names", "n_documents")}}
                                for x, (_, rs) in zip(mine, all_reps)]
        if group_by is not None:
            values = [group_by[1].get(d) for d in s.doc_ids]
            m["subgroups"] = {"column": group_by[0], **subgroup_aucs(s.y, c.proba, values, s.label_names, seed=seed)}
            if repetitions:
                for g, d in m["subgroups"]["groups"].items():
                    idx = np.asarray([i for i, v in enumerate(values) if v == g])
                    d["auc_seeds"] = [roc_auc(s.y[idx], x.proba[idx]) for x in mine]
                    d["auc_seeds_mean"], d["auc_seeds_sd"] = mean_sd(d["auc_seeds"])
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


def _run_cells(todo: list[Cell], by_rep: list[dict[str, TaskSetup]], data, jobs, device, cache_dir: Path,
               progress, engine=None) -> None:
    if not todo:
        return
    remote = engine is not None and engine.name != "local"
    if remote:  # each cell a task of the engine's workers, on their device with their threads
        device, threads = engine.worker_device(device), engine.threads
    else:
        cores = os.cpu_count() or 1
        jobs = min(len(todo), jobs or (cores if device.type == "cpu" else 1))  # one process per GPU by default
        if jobs < 1:
            raise HilbertError(f"--jobs: must be at least 1, got {jobs}.")
        threads = default_threads(device, jobs)

    def args(c: Cell):
        s = by_rep[c.repetition][c.task]
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
                                                        "doc_ids": by_rep[c.repetition][c.task].doc_ids, **r})

    if progress is not None:
        progress("train", 0, len(todo))
    if remote:
        for n_done, (i, result) in enumerate(engine.run_tasks(_cell_job, [args(c) for c in todo]), 1):
            store(todo[i], result)
            if progress is not None:
                progress("train", n_done, len(todo))
        return
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
