"""What each configuration learns on the learning task suite (hilbert_cli/evaluation/tasks.py).

For every task and seed: build the task, make 5-fold stratified CV folds
(StratifiedKFold(shuffle=True, random_state=seed)), and score on those same folds
  LR(mean)      StandardScaler + LogisticRegression on [mean(A); mean(T)]
  LR(mean+max)  the same on [mean(A); max(A); mean(T); max(T)]
  LR(products)  the same on each document's mean of its segments' audio x text products, after PCA of
                each modality to PRODUCT_PCA components (fitted on the training fold's segments): the
                bilinear pooling a logistic regression needs for the agreement task
  oracle        StandardScaler + LogisticRegression (C = 1) on features that use the planted
                mechanism (tasks.oracle_features: its directions and marked segments); a reference
                for what is learnable, not a method
  <config>      each neural configuration, through run_configuration (the only place that calls
                hilbert_cli's training code)
The score is the macro one-vs-rest ROC AUC of the pooled out-of-fold probabilities.

The logistic regressions choose C by nested CV (GridSearchCV over LR_C_GRID, 3 inner stratified
folds of the training fold, log loss) unless --lr-c gives a fixed C (--quick: C = 1). max_iter = 2000,
no class weights, one BLAS thread.

    python benchmarks/bench_learning.py                                   # all tasks, seed 0, all paper configurations
    python benchmarks/bench_learning.py --tasks needle,agreement --seeds 0,1,2 --configs transfer,hilbert --epochs 40
    python benchmarks/bench_learning.py --configs none                    # the baselines only
    python benchmarks/bench_learning.py --quick                           # smoke run: small tasks, 5 epochs
    python benchmarks/bench_learning.py --set train.val_fraction=0 --epochs 40   # any config override
    python benchmarks/bench_learning.py --json results.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's hilbert_cli first

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from hilbert_cli.evaluation.tasks import MECHANISMS, make_task, oracle_features, pooled_features, product_features

PAPER_CONFIGS = ("transfer", "transfer-moe", "contrastive-moe", "hilbert")
LR_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
PRODUCT_PCA = 16  # components per modality of LR(products): 16 x 16 = 256 product features
QUICK = {"n_docs": 120, "d_audio": 64, "d_text": 64, "segments": (10, 20)}  # --quick task sizes
QUICK_EPOCHS = 5


# --- the one adapter to hilbert_cli's training code ---------------------------------------------------

def run_configuration(name: str, A: list, T: list, y: np.ndarray, n_classes: int, test_fold: np.ndarray,
                      seed: int, epochs: int | None, overrides: dict | None = None) -> np.ndarray:
    """Out-of-fold class probabilities (n, n_classes) of configuration `name` on the given folds.

    `test_fold[i]` is the fold in which document i is tested; `epochs` None keeps the config's
    default; `overrides` are extra config overrides ({"train.val_fraction": 0, ...})."""
    from hilbert_cli.evaluation.crossval import cross_val_predict
    from hilbert_cli.evaluation.folds import Folds
    from hilbert_cli.learn.config import load_config

    test_fold = np.asarray(test_fold, dtype=np.int64)
    folds = Folds([str(i) for i in range(len(y))], test_fold, int(test_fold.max()) + 1, seed, False)
    config = load_config(None, {"configuration": name, "train.epochs": epochs, "train.seed": seed, **(overrides or {})})
    return cross_val_predict(config, A, T, np.asarray(y), n_classes, folds).proba


def explanation_check(name: str, task, test_fold: np.ndarray, seed: int, epochs: int | None,
                      overrides: dict | None = None) -> dict:
    """Explain every document out of fold: for each fold f, fit `name` on the other folds and explain fold f's
    documents (HilbertClassifier.explain). Reports the joint attention's mass on the label-carrying segments
    (task.needles) as a multiple of their uniform share (mean over folds, and each fold's), the share of
    documents with a label-carrying segment among their 3 highest-occlusion segments, and that share among the
    documents whose class the model predicts right and among the others (occlusion explains the *predicted*
    class: where the model missed the needles, removing one does not lower it)."""
    from hilbert_cli import HilbertClassifier

    pick = lambda xs, idx: [xs[i] for i in idx]  # noqa: E731
    hits, right, ratios = [], [], []
    proba = np.zeros((len(task.y), task.n_classes))
    for f in range(int(test_fold.max()) + 1):
        fit, test = np.flatnonzero(test_fold != f), np.flatnonzero(test_fold == f)
        clf = HilbertClassifier(name, {"train.epochs": epochs, **(overrides or {})}, device="cpu", seed=seed)
        clf.fit(pick(task.A, fit), pick(task.T, fit), np.asarray(task.y)[fit])
        ex = clf.explain(pick(task.A, test), pick(task.T, test))
        proba[test] = [e["proba"] for e in ex]
        carry = [i for i in range(len(test)) if task.needles[test[i]].any()]
        hits += [bool(task.needles[test[i]][np.argsort(-ex[i]["occlusion"])[:3]].any()) for i in carry]
        right += [int(np.argmax(ex[i]["proba"])) == int(task.y[test[i]]) for i in carry]
        if "alpha_j" in ex[0]:
            share = np.mean([task.needles[test[i]].mean() for i in carry])
            mass = np.mean([ex[i]["alpha_j"][task.needles[test[i]]].sum() for i in carry])
            ratios.append(float(mass / share))
    hits, right = np.asarray(hits), np.asarray(right)
    out = {"occlusion_top3": float(hits.mean()), "documents": len(hits), "accuracy": float(right.mean()),
           "auc": macro_auc(np.asarray(task.y), proba),  # these fits' own out-of-fold predictions
           "occlusion_top3_right": float(hits[right].mean()) if right.any() else float("nan"),
           "occlusion_top3_wrong": float(hits[~right].mean()) if (~right).any() else float("nan")}
    if ratios:
        out["attention_ratio"] = float(np.mean(ratios))
        out["attention_ratio_folds"] = ratios
    return out


# --- baselines ---------------------------------------------------------------------------------------

def logistic_oof(X: np.ndarray, y: np.ndarray, test_fold: np.ndarray, seed: int, C: float | None) -> np.ndarray:
    """Out-of-fold probabilities of StandardScaler + LogisticRegression; C = None: nested CV over LR_C_GRID."""
    n_classes = int(y.max()) + 1
    out = np.zeros((len(y), n_classes))
    for f in range(int(test_fold.max()) + 1):
        train, test = test_fold != f, test_fold == f
        out[test] = logistic_fit_predict(X[train], y[train], X[test], n_classes, seed, C)
    return out


def logistic_fit_predict(X_fit, y_fit, X_test, n_classes: int, seed: int, C: float | None) -> np.ndarray:
    """(len(X_test), n_classes) probabilities of StandardScaler + LogisticRegression fitted on (X_fit, y_fit)."""
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 if C is None else C, max_iter=2000))
    if C is None:
        inner = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
        pipe = GridSearchCV(pipe, {"logisticregression__C": list(LR_C_GRID)}, cv=inner, scoring="neg_log_loss")
    # one BLAS thread: these fits are small, and on a busy 2-core machine more threads thrash (7x slower)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence / small-class warnings of the inner folds
        pipe.fit(X_fit, y_fit)
    out = np.zeros((len(X_test), n_classes))
    out[:, pipe.classes_] = pipe.predict_proba(X_test)
    return out


def products_oof(task, test_fold: np.ndarray, seed: int, C: float | None, k: int = PRODUCT_PCA) -> np.ndarray:
    """LR(products): out-of-fold probabilities of logistic_oof's pipeline on tasks.product_features, its PCA fitted
    on the training fold's segments only."""
    out = np.zeros((len(task.y), task.n_classes))
    for f in range(int(test_fold.max()) + 1):
        test = test_fold == f
        with threadpool_limits(1):
            X = product_features(task, k, fit=np.flatnonzero(~test), seed=seed)
        out[test] = logistic_fit_predict(X[~test], task.y[~test], X[test], task.n_classes, seed, C)
    return out


def macro_auc(y: np.ndarray, proba: np.ndarray) -> float:
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def make_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    test_fold = np.full(len(y), -1, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" for small-n
        for f, (_, test) in enumerate(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)):
            test_fold[test] = f
    return test_fold


# --- driver ------------------------------------------------------------------------------------------

def run_task(task_name: str, seed: int, args, configs: list[str], overrides: dict) -> list[dict]:
    sizes = QUICK if args.quick else {}
    if task_name == "small-n":
        sizes = {k: v for k, v in sizes.items() if k != "n_docs"}
    t0 = time.perf_counter()
    if args.mean_ratio is not None:
        sizes = {**sizes, "mean_ratio": args.mean_ratio}
    if args.strength != 1.0:
        sizes = {**sizes, "strength": args.strength}
    task = make_task(task_name, seed=seed, **sizes)
    test_fold = make_folds(task.y, args.folds, seed)
    rows = [{"task": task_name, "seed": seed, "method": "make_task", "auc": None, "seconds": time.perf_counter() - t0}]

    def record(method: str, fn):
        t = time.perf_counter()
        proba = fn()
        rows.append({"task": task_name, "seed": seed, "method": method, "auc": macro_auc(task.y, proba),
                     "seconds": time.perf_counter() - t})
        print(f"  {task_name:14s} seed {seed}  {method:16s} AUC {rows[-1]['auc']:.3f}  ({rows[-1]['seconds']:.1f} s)", flush=True)

    C = None if args.lr_c == "cv" else float(args.lr_c)
    record("LR(mean)", lambda: logistic_oof(pooled_features(task, "mean"), task.y, test_fold, seed, C))
    record("LR(mean+max)", lambda: logistic_oof(pooled_features(task, "mean+max"), task.y, test_fold, seed, C))
    record("LR(products)", lambda: products_oof(task, test_fold, seed, C))
    if not args.no_oracle:
        record("oracle", lambda: logistic_oof(oracle_features(task), task.y, test_fold, seed, 1.0))
    for name in configs:
        record(name, lambda: run_configuration(name, task.A, task.T, task.y, task.n_classes, test_fold, seed,
                                               args.epochs, overrides))
        if args.explain:
            t = time.perf_counter()
            check = explanation_check(name, task, test_fold, seed, args.epochs, overrides)
            rows.append({"task": task_name, "seed": seed, "method": name, "explain": check, "auc": None,
                         "seconds": time.perf_counter() - t})
            print(f"  {task_name:14s} seed {seed}  {name:16s} explained out of fold: "
                  + ", ".join(f"{k} {v:.3g}" for k, v in check.items() if not isinstance(v, list)), flush=True)
    return rows


def summarise(rows: list[dict], tasks: list[str], methods: list[str]) -> dict:
    summary: dict = {}
    for t in tasks:
        summary[t] = {}
        for m in methods + ["total"]:
            if m == "total":
                secs = [sum(r["seconds"] for r in rows if r["task"] == t and r["seed"] == s)
                        for s in sorted({r["seed"] for r in rows if r["task"] == t})]
                summary[t][m] = {"seconds": float(np.mean(secs))}
                continue
            aucs = [r["auc"] for r in rows if r["task"] == t and r["method"] == m and r["auc"] is not None]
            secs = [r["seconds"] for r in rows if r["task"] == t and r["method"] == m and r["auc"] is not None]
            summary[t][m] = {"auc_mean": float(np.mean(aucs)), "auc_sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
                             "n_seeds": len(aucs), "seconds": float(np.mean(secs))}
    return summary


def print_tables(summary: dict, tasks: list[str], methods: list[str], n_seeds: int) -> None:
    def cell(s):
        return f"{s['auc_mean']:.3f} ± {s['auc_sd']:.3f}" if n_seeds > 1 else f"{s['auc_mean']:.3f}"

    what = f"mean ± sd over {n_seeds} seeds" if n_seeds > 1 else "one seed"
    print(f"\nMacro one-vs-rest AUC of pooled out-of-fold predictions ({what})\n")
    print("| task | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for t in tasks:
        print(f"| {t} | " + " | ".join(cell(summary[t][m]) for m in methods) + " |")
    print(f"\nWall time in seconds (per seed{', mean over seeds' if n_seeds > 1 else ''})\n")
    print("| task | " + " | ".join(methods) + " | total |")
    print("|---|" + "---:|" * (len(methods) + 1))
    for t in tasks:
        print(f"| {t} | " + " | ".join(f"{summary[t][m]['seconds']:.1f}" for m in methods)
              + f" | {summary[t]['total']['seconds']:.1f} |")


def parse_list(text: str, valid, what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip() and s.strip() != "none"]
    bad = [s for s in items if s not in valid]
    if bad:
        raise SystemExit(f"--{what}: unknown {bad[0]!r}; valid: {', '.join(valid)}")
    return items


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(MECHANISMS), help="comma-separated (default: all)")
    ap.add_argument("--seeds", default="0", help="comma-separated integers (default: 0)")
    ap.add_argument("--configs", default=",".join(PAPER_CONFIGS),
                    help="comma-separated neural configurations, or 'none' (default: the paper's four)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the config's; --quick: 5)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override, repeatable (e.g. train.val_fraction=0)")
    ap.add_argument("--mean-ratio", type=float, default=None,
                    help="norm of the tasks' common mean in noise norms (default: tasks.MEAN_RATIO)")
    ap.add_argument("--strength", type=float, default=1.0,
                    help="multiplies every mechanism's amplitude (default 1.0: the suite's calibration)")
    ap.add_argument("--lr-c", default=None,
                    help="C of the logistic regressions: 'cv' (nested CV; the default) or a number (--quick: 1.0)")
    ap.add_argument("--explain", action="store_true",
                    help="also check each configuration's explanations out of fold (fit on k-1 folds, explain the "
                         "k-th, every fold): joint attention and occlusion on the label-carrying segments")
    ap.add_argument("--no-oracle", action="store_true", help="leave out the oracle column")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: small models run fastest on one thread on a busy machine)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 120 documents of 10-20 segments, 64-d, 5 epochs")
    ap.add_argument("--json", default=None, metavar="PATH", help="write every figure to this JSON file")
    args = ap.parse_args(argv)

    tasks = parse_list(args.tasks, MECHANISMS, "tasks")
    from hilbert_cli.learn.config import CONFIGURATIONS
    configs = parse_list(args.configs, list(CONFIGURATIONS), "configs")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.quick and args.epochs is None:
        args.epochs = QUICK_EPOCHS
    if args.lr_c is None:
        args.lr_c = "1.0" if args.quick else "cv"
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = value.strip()
    if configs:
        import torch
        torch.set_num_threads(args.threads)

    print(f"tasks {tasks}, seeds {seeds}, configs {configs}, folds {args.folds}, epochs {args.epochs or 'config default'}, "
          f"LR C {args.lr_c}, overrides {overrides or 'none'}{', quick' if args.quick else ''}"
          f"{'' if args.mean_ratio is None else f', mean ratio {args.mean_ratio}'}"
          f"{'' if args.strength == 1.0 else f', strength {args.strength}'}", flush=True)
    rows: list[dict] = []
    for t in tasks:
        for s in seeds:
            rows += run_task(t, s, args, configs, overrides)
    methods = ["LR(mean)", "LR(mean+max)", "LR(products)"] + ([] if args.no_oracle else ["oracle"]) + configs
    summary = summarise(rows, tasks, methods)
    print_tables(summary, tasks, methods, len(seeds))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
