"""The evaluation report: report.md, metrics.json, folds.csv, oof_predictions.csv, roc_<task>.png,
reliability_<task>.png, config.yaml.

Tables are laid out like the paper's Tables 2–4 (rows backbone × configuration, columns tasks,
AUC in %, best per column in bold). `auc_table` is shared with the terminal table, so the two
always show the same numbers.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import yaml

from ..atomic import atomic_save, atomic_write_json, atomic_write_text
from ..learn.config import AUX_LOSSES
from ..learn.registry import display_name as registry_display
from .grid import ablation_name

def display_name(variant: str) -> str:
    """The paper's name of a configuration (learn/registry.py), or the variant's own name (an ablation)."""
    return registry_display(variant) or variant


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _both(m: dict) -> str:
    """Both AUC summaries of one cell: pooled out-of-fold AUC · fold mean ± sd (folds where the AUC is defined
    / folds). The paper's figure is most likely a fold mean; with small classes many folds have no AUC."""
    folds = f"{m['n_folds_defined']}/{len(m['auc_folds'])}"
    if m["auc_mean"] is None:
        return f"{_pct(m['auc_pooled'])} · – ({folds})"
    sd = "–" if m["auc_std"] is None else f"{100 * m['auc_std']:.1f}"
    return f"{_pct(m['auc_pooled'])} · {100 * m['auc_mean']:.1f} ± {sd} ({folds})"


BOTH_AUCS = ("Each cell: pooled out-of-fold AUC · mean ± sd of the per-fold AUCs (folds where it is defined / folds); "
             "the mean column averages the pooled AUCs.")


def auc_table(cells, tasks: list[str], pairs, variants: list[str]):
    """(header, rows, bold): one row per backbone pair × configuration, per task both AUC summaries (`_both`,
    in %), and the mean pooled AUC over tasks when there are several; bold[r][j] marks the best pooled AUC of
    column j."""
    by = {(c.task, c.pair, c.variant): c for c in cells}
    several = len(tasks) > 1
    header = ["backbones (audio + text)", "configuration", *tasks] + (["mean"] if several else [])
    values, rows = [], []
    for audio, text in pairs:
        for v in _run_on(by, tasks, f"{audio}+{text}", variants):
            vals = [headline_auc(by[(t, f"{audio}+{text}", v)].metrics) for t in tasks]
            if several:
                vals.append(None if None in vals else float(np.mean(vals)))
            values.append(vals)
            cells_text = [headline(by[(t, f"{audio}+{text}", v)].metrics) for t in tasks]
            rows.append([f"{audio} + {text}", display_name(v), *cells_text, *(_pct(x) for x in vals[len(tasks):])])
    bold = [[False] * len(values[0]) for _ in values]
    for j in range(len(values[0])):
        col = [r[j] for r in values if r[j] is not None]
        if col and len(values) > 1:
            best = round(max(col), 4)
            for i, r in enumerate(values):
                bold[i][j] = r[j] is not None and round(r[j], 4) == best
    return header, rows, bold


ABLATION_SELECTION = ("Best inner-validation AUC (%) over the non-empty ablation subsets without (✗) and with (✓) each "
                      "loss. A run's validation AUC: per fold, the AUC on the fold's inner validation split (documents "
                      "of its training part) at the epoch whose weights were kept, averaged over the folds; no test "
                      "fold is used.")
ABLATION_TEST = ("Each ablation run's inner-validation AUC (%) and its pooled out-of-fold AUC (%) on the test folds, "
                 "the latter reported for reference only.")


def _run_on(by: dict, tasks, pair: str, variants) -> list[str]:
    """The variants that ran on a backbone pair (a configuration with its own backbones, clap, runs on those only)."""
    return [v for v in variants if all((t, pair, v) in by for t in tasks)]


def _ablations(cells, pair: str) -> list:
    """The ablation runs (hilbert with a subset of the auxiliary losses) on one backbone pair."""
    return [c for c in cells if c.pair == pair and c.variant == ablation_name(c.config.active_losses)]


def ablation_table(cells, tasks: list[str], pairs):
    """Table 4 of the paper: per loss, the best inner-validation AUC (grid.validation_auc) over the non-empty
    ablation subsets without it (✗) and with it (✓). Selection never sees a test fold; the empty subset, when
    listed (`none`), is left out as in the paper (it is in `ablation_test_table`)."""
    rows = []
    for audio, text in pairs:
        abl = [c for c in _ablations(cells, f"{audio}+{text}") if c.config.active_losses]
        if len({c.variant for c in abl}) < 2:
            continue
        for loss in AUX_LOSSES:
            row = [f"{audio} + {text}", loss]
            for t in tasks:
                for has in (False, True):
                    vals = [c.metrics["val_auc"] for c in abl if c.task == t
                            and (loss in c.config.active_losses) == has and c.metrics["val_auc"] is not None]
                    row.append(_pct(max(vals)) if vals else "–")
            rows.append(row)
    header = ["backbones", "auxiliary loss", *[f"{t} {m}" for t in tasks for m in ("✗", "✓")]]
    return header, rows


def ablation_test_table(cells, tasks: list[str], pairs):
    """Every ablation run's pooled out-of-fold AUC on the test folds, beside its inner-validation AUC; the test
    figures are reported only, never used to choose between runs."""
    rows = []
    for audio, text in pairs:
        abl = _ablations(cells, f"{audio}+{text}")
        if len({c.variant for c in abl}) < 2:
            continue
        by = {(c.task, c.variant): c for c in abl}
        for v in dict.fromkeys(c.variant for c in abl):
            row = [f"{audio} + {text}", v]
            for t in tasks:
                m = by[(t, v)].metrics
                row += [_pct(m["val_auc"]), _pct(m["auc_pooled"])]
            rows.append(row)
    header = ["backbones", "ablation", *[f"{t} {m}" for t in tasks for m in ("validation", "test")]]
    return header, rows


def _md_table(header, rows, bold=None) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, r in enumerate(rows):
        cells = list(r)
        if bold is not None:
            offset = len(r) - len(bold[i])
            cells = [f"**{x}**" if j >= offset and bold[i][j - offset] else x for j, x in enumerate(cells)]
        out.append("| " + " | ".join(str(x) for x in cells) + " |")
    return "\n".join(out)


def _p(v) -> str:
    return "–" if v is None else ("< 0.001" if v < 0.001 else f"{v:.3f}")


def render_markdown(cells, setups, variants, pairs, warnings, grid) -> str:
    tasks = grid["tasks"]
    k = {t: setups[t].folds.k for t in tasks}
    lines = ["# HILBERT evaluation", ""]
    lines.append(f"{'/'.join(str(v) for v in sorted(set(k.values())))}-fold cross-validation (seed {grid['seed']}), "
                 "the same folds for every configuration and backbone. AUC: binary — positive class (the second "
                 "label); multi-class — macro one-vs-rest. Main figure: AUC of the pooled out-of-fold predictions, %.")
    lines.append("")
    for t in tasks:
        s = setups[t]
        counts = ", ".join(f"{n}: {c}" for n, c in zip(s.label_names, np.bincount(s.y, minlength=len(s.label_names))))
        grouped = "grouped by subject" if s.folds.grouped else "no subject ids (documents split independently)"
        lines.append(f"- **{t}**: {len(s.y)} documents ({counts}); {s.folds.k} folds, stratified, {grouped}.")
    if warnings:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in warnings]
    lines += seeds_intro(grid)
    header, rows, bold = auc_table(cells, tasks, pairs, list(variants))
    lines += ["", "## AUC (%)", "", _md_table(header, rows, bold), "", auc_caption(cells) + " Best pooled AUC per column in **bold**."]
    ah, ar = ablation_table(cells, tasks, pairs)
    if ar:
        lines += ["", "## Auxiliary-loss ablation (as the paper's Table 4)", "", ABLATION_SELECTION, "", _md_table(ah, ar)]
    th, tr = ablation_test_table(cells, tasks, pairs)
    if tr:
        lines += ["", "### Ablation runs on the test folds (not used for selection)", "", ABLATION_TEST, "",
                  _md_table(th, tr)]
    by = {(c.task, c.pair, c.variant): c for c in cells}
    for t in tasks:
        s = setups[t]
        lines += ["", f"## {t}", ""]
        for audio, text in pairs:
            pair = f"{audio}+{text}"
            if len(pairs) > 1:
                lines += [f"### {audio} + {text}", ""]
            head = ["configuration", "pooled AUC [95% CI]", "fold mean ± std (folds)", *[f"AUC {n}" for n in s.label_names],
                    "balanced acc.", "macro F1", "Δ AUC vs hilbert", "p (corrected t)", "p (bootstrap)"]
            rows = []
            for v in _run_on(by, [t], pair, variants):
                m = by[(t, pair, v)].metrics
                lo, hi = m["auc_pooled_ci"]
                mean = "–" if m["auc_mean"] is None else (
                    f"{_pct(m['auc_mean'])} ± {_pct(m['auc_std'])} ({m['n_folds_defined']}/{s.folds.k})")
                cmp_ = m.get("vs_hilbert")
                rows.append([display_name(v), f"{_pct(m['auc_pooled'])} [{_pct(lo)}, {_pct(hi)}]", mean,
                             *(_pct(a) for a in m["auc_per_class"]), _pct(m["balanced_accuracy"]), _pct(m["macro_f1"]),
                             "–" if not cmp_ or cmp_["auc_diff"] is None else f"{100 * -cmp_['auc_diff']:+.2f}",
                             _p(cmp_["p_ttest"]) if cmp_ else "–", _p(cmp_["p_bootstrap"]) if cmp_ else "–"])
            lines += [_md_table(head, rows), ""]
            lines += ["Δ is this configuration minus hilbert; p-values: Nadeau–Bengio corrected resampled t-test over "
                      "folds, and a paired stratified bootstrap of the pooled AUC.", ""]
            elsewhere = {by[(t, pair, v)].metrics["vs_hilbert"]["reference_backbones"] for v in _run_on(by, [t], pair, variants)
                         if "vs_hilbert" in by[(t, pair, v)].metrics} - {pair}
            if elsewhere:  # clap has its own backbones: compared with hilbert on another pair, same documents and folds
                where = ", ".join(sorted(elsewhere)).replace("+", " + ")
                lines += [f"Here hilbert is the run on {where} (same documents and folds).", ""]
            lines.append("Confusion matrices (rows: true label, columns: predicted):")
            lines.append("")
            for v in _run_on(by, [t], pair, variants):
                cm = by[(t, pair, v)].metrics["confusion_matrix"]
                lines += [f"*{display_name(v)}*", "", _md_table(["true \\ predicted", *s.label_names],
                                                                [[n, *row] for n, row in zip(s.label_names, cm)]), ""]
        lines.append(f"![ROC curves of {t}](roc_{_safe(t)}.png)")
    lines += calibration_markdown(cells, tasks, pairs, list(variants))
    lines += seeds_section(cells, tasks, pairs, list(variants), grid)
    lines += subgroups_section(cells, tasks, pairs, list(variants), grid)
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _csv(rows: list[list], header: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def folds_csv(cells, setups) -> str:
    rows = []
    for c in cells:
        s = setups[c.task]
        for i, (tr, te) in enumerate(s.folds.splits()):
            auc = c.metrics["auc_folds"][i]
            rows.append([c.task, c.audio, c.text, c.variant, i, len(tr), len(te), "" if auc is None else f"{auc:.6f}",
                         c.best_epoch[i] if i < len(c.best_epoch) else "", c.epochs_run[i] if i < len(c.epochs_run) else ""])
    return _csv(rows, ["task", "audio", "text", "configuration", "fold", "n_train", "n_test", "auc", "best_epoch", "epochs"])


def oof_csv(cells, setups) -> str:
    labels = list(dict.fromkeys(n for s in setups.values() for n in s.label_names))
    rows = []
    for c in cells:
        s = setups[c.task]
        col = {n: j for j, n in enumerate(s.label_names)}
        pred = c.proba.argmax(1)
        for i, d in enumerate(s.doc_ids):
            probs = [f"{c.proba[i, col[n]]:.6f}" if n in col else "" for n in labels]
            rows.append([c.task, c.audio, c.text, c.variant, d, s.subjects[i] or "", int(s.folds.test_fold[i]),
                         s.label_names[s.y[i]], s.label_names[pred[i]], *probs])
    return _csv(rows, ["task", "audio", "text", "configuration", "doc_id", "subject", "fold", "label", "predicted",
                       *[f"p[{n}]" for n in labels]])


def roc_points(y, proba, grid=np.linspace(0, 1, 201)):
    """(fpr, tpr) of the task's curve: binary -> the positive class; multi-class -> the macro
    average of the one-vs-rest curves (TPR averaged over a common FPR grid)."""
    from sklearn.metrics import roc_curve

    y = np.asarray(y)
    if proba.shape[1] == 2:
        return roc_curve(y == 1, proba[:, 1])[:2]
    tprs = []
    for c in range(proba.shape[1]):
        fpr, tpr, _ = roc_curve(y == c, proba[:, c])
        tprs.append(np.interp(grid, fpr, tpr))
    return grid, np.mean(tprs, axis=0)


def plot_roc(path: Path, task: str, cells, setups, pairs, variants) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = setups[task]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.6), squeeze=False)
    by = {(c.pair, c.variant): c for c in cells if c.task == task}
    kind = "positive class" if len(s.label_names) == 2 else "macro one-vs-rest"
    for ax, (audio, text) in zip(axes[0], pairs):
        for v in variants:
            c = by.get((f"{audio}+{text}", v))
            if c is None:  # a configuration with its own backbones (clap) runs on those only
                continue
            fpr, tpr = roc_points(s.y, c.proba)
            ax.plot(fpr, tpr, label=f"{display_name(v)} ({_pct(c.metrics['auc_pooled'])})")
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
               title=f"{task} — {audio} + {text}\n({kind}, pooled out-of-fold)")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        return atomic_save(path, lambda buf: fig.savefig(buf, format="png", dpi=100))
    finally:
        plt.close(fig)


def write_report(run_dir: Path, cells, setups, metrics, variants: dict, pairs, warnings, grid,
                 repetitions=()) -> dict[str, Path]:
    """Every report file, each written atomically; `variants` maps configuration name -> resolved config;
    `repetitions`: (cells, setups) of the further repetitions (--seeds), whose rows folds.csv and
    oof_predictions.csv also hold."""
    run_dir = Path(run_dir)
    reps = [(cells, setups), *repetitions]
    files = {
        "metrics": atomic_write_json(run_dir / "metrics.json", metrics),
        "folds": atomic_write_text(run_dir / "folds.csv", every_seed_csv(folds_csv, reps, grid)),
        "oof": atomic_write_text(run_dir / "oof_predictions.csv", every_seed_csv(oof_csv, reps, grid)),
        "config": atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(
            {**grid, "warnings": list(warnings), "resolved": {v: cfg.to_dict() for v, cfg in variants.items()}},
            sort_keys=False, allow_unicode=True)),
    }
    for t in grid["tasks"]:
        files[f"roc_{t}"] = plot_roc(run_dir / f"roc_{_safe(t)}.png", t, cells, setups, pairs, variants)
        files[f"reliability_{t}"] = plot_reliability(run_dir / f"reliability_{_safe(t)}.png", t, cells, setups, pairs,
                                                     variants)
    files["report"] = atomic_write_text(run_dir / "report.md", render_markdown(cells, setups, variants, pairs, warnings, grid))
    return files


# --- calibration ------------------------------------------------------------------------------------

CALIBRATION_NOTE = ("Each cell: Brier score · expected calibration error (ECE: top-label probability in 10 equal-width "
                    "bins) of the pooled out-of-fold probabilities; lower is better, 0 = calibrated. Binary Brier: the "
                    "positive class (scikit-learn's brier_score_loss); multi-class: summed over the classes. T: the "
                    "median per-fold temperature when train.calibrate (--calibrate) scaled the probabilities.")


def _calibration_cell(m: dict) -> str:
    t = m.get("temperature_folds")
    return f"{m['brier']:.3f} · {m['ece']:.3f}" + (f" (T {float(np.median(t)):.2g})" if t else "")


def calibration_table(cells, tasks: list[str], pairs, variants: list[str]):
    """(header, rows): one row per backbone pair × configuration, per task `Brier · ECE` (and the median temperature
    with train.calibrate); shared by report.md and the terminal."""
    by = {(c.task, c.pair, c.variant): c for c in cells}
    header = ["backbones (audio + text)", "configuration", *[f"{t}: Brier · ECE" for t in tasks]]
    rows = [[f"{audio} + {text}", display_name(v), *(_calibration_cell(by[(t, f"{audio}+{text}", v)].metrics) for t in tasks)]
            for audio, text in pairs for v in _run_on(by, tasks, f"{audio}+{text}", variants)]
    return header, rows


def calibration_markdown(cells, tasks: list[str], pairs, variants: list[str]) -> list[str]:
    """The report's calibration section: the table and a reliability diagram per task."""
    header, rows = calibration_table(cells, tasks, pairs, variants)
    lines = ["", "## Calibration", "", _md_table(header, rows), "", CALIBRATION_NOTE + " Reliability diagrams: binary "
             "tasks plot the positive class's probability against how often the label is positive; multi-class tasks "
             "the top label's probability against how often it is right.", ""]
    for t in tasks:
        lines += [f"![Reliability diagram of {t}](reliability_{_safe(t)}.png)", ""]
    return lines[:-1]


def plot_reliability(path: Path, task: str, cells, setups, pairs, variants) -> Path:
    """One reliability diagram per backbone pair (every configuration on it), and below it how many documents
    fall in each probability bin; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .metrics import CALIBRATION_BINS, reliability_curve

    s = setups[task]
    fig, axes = plt.subplots(2, len(pairs), figsize=(5 * len(pairs), 6), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]})
    by = {(c.pair, c.variant): c for c in cells if c.task == task}
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    kind = "positive class" if len(s.label_names) == 2 else "top label"
    for j, (audio, text) in enumerate(pairs):
        ax, hist = axes[0, j], axes[1, j]
        for v in _run_on({(task, *k): c for k, c in by.items()}, [task], f"{audio}+{text}", variants):
            c = by[(f"{audio}+{text}", v)]
            curve = reliability_curve(s.y, c.proba)
            line, = ax.plot(curve.predicted, curve.observed, marker="o", markersize=3,
                            label=f"{display_name(v)} (ECE {c.metrics['ece']:.3f})")
            counts = np.zeros(CALIBRATION_BINS)
            counts[np.searchsorted(edges[1:-1], curve.predicted)] = curve.count  # a bin's mean lies in the bin
            hist.stairs(counts, edges, color=line.get_color())
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        observed = "label is positive" if kind == "positive class" else "top label is right"
        ax.set(xlim=(0, 1), ylim=(0, 1.01), ylabel=f"fraction: {observed}",
               title=f"{task} — {audio} + {text}\n({kind}, pooled out-of-fold)")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="upper left")
        hist.set(xlim=(0, 1), xlabel=f"predicted probability ({kind})", ylabel="documents")
    fig.tight_layout()
    try:
        return atomic_save(path, lambda buf: fig.savefig(buf, format="png", dpi=100))
    finally:
        plt.close(fig)


# --- repetitions (--seeds) ---------------------------------------------------------------------------

SEEDS_AUCS = ("Each cell: mean ± sd over the repetitions (--seeds; each its own fold assignment and initialisation) of "
              "the pooled out-of-fold AUC · of the fold-mean AUC (number of seeds); the mean column averages the pooled "
              "means.")


def _pm(mean, sd, digits: int) -> str:
    if mean is None:
        return "–"
    return f"{100 * mean:.{digits}f} ± " + ("–" if sd is None else f"{100 * sd:.{digits}f}")


def headline(m: dict) -> str:
    """A cell of the AUC table: both AUC summaries (`_both`), or with repetitions their mean ± sd over seeds."""
    if "seeds" not in m:
        return _both(m)
    s = m["seeds"]
    return (f"{_pm(s['auc_pooled_mean'], s['auc_pooled_sd'], 2)} · {_pm(s['auc_mean_mean'], s['auc_mean_sd'], 1)} "
            f"({s['n_seeds']} seeds)")


def headline_auc(m: dict):
    """The figure the AUC table ranks (bold) and averages: the pooled AUC, or its mean over repetitions."""
    return m["seeds"]["auc_pooled_mean"] if "seeds" in m else m["auc_pooled"]


def auc_caption(cells) -> str:
    """The AUC table's caption (terminal and report.md)."""
    return SEEDS_AUCS if any("seeds" in c.metrics for c in cells) else BOTH_AUCS


def seeds_intro(grid) -> list[str]:
    """report.md lines that say what the repetitions are (nothing without --seeds)."""
    seeds = grid.get("seeds")
    if not seeds:
        return []
    text = (f"**Repetitions**: the whole cross-validation was run {len(seeds)} times (--seeds {len(seeds)}), "
            f"repetition r with fold seed {seeds[0]} + r and training seed train.seed + r (with --seed, both are "
            f"--seed + r; fold seeds {', '.join(map(str, seeds))}). The AUC table gives mean ± sd over repetitions; the "
            f"per-task details below are of the first repetition (seed {seeds[0]}), except Δ AUC (mean over "
            "repetitions) and the p-values, which use every repetition: the corrected repeated k-fold t-test "
            "(Bouckaert & Frank 2004) over all repetitions × folds, and the paired bootstrap of the mean pooled-AUC "
            "difference. Per-repetition figures: end of this report, metrics.json (`seeds`, `repetitions`), and the "
            "`seed` column of folds.csv and oof_predictions.csv.")
    return ["", text]


def seeds_section(cells, tasks, pairs, variants, grid) -> list[str]:
    """report.md: the pooled AUC of every repetition (nothing without --seeds)."""
    seeds = grid.get("seeds")
    if not seeds:
        return []
    by = {(c.task, c.pair, c.variant): c for c in cells}
    lines = ["", "## Pooled AUC (%) per repetition", ""]
    head = ["task", "backbones", "configuration", *[f"seed {s}" for s in seeds], "mean ± sd"]
    rows = []
    for t in tasks:
        for audio, text in pairs:
            for v in _run_on(by, [t], f"{audio}+{text}", variants):
                sd = by[(t, f"{audio}+{text}", v)].metrics["seeds"]
                rows.append([t, f"{audio} + {text}", display_name(v), *(_pct(a) for a in sd["auc_pooled"]),
                             _pm(sd["auc_pooled_mean"], sd["auc_pooled_sd"], 2)])
    return lines + [_md_table(head, rows)]


def every_seed_csv(make, reps, grid) -> str:
    """make(cells, setups) for one repetition; with several, every repetition's rows behind a first column `seed`."""
    if len(reps) == 1:
        return make(*reps[0])
    header, rows = None, []
    for seed, (cells, setups) in zip(grid["seeds"], reps):
        header, *body = list(csv.reader(io.StringIO(make(cells, setups))))
        rows += [[seed, *r] for r in body]
    return _csv(rows, ["seed", *header])


# --- subgroups (--group-by) --------------------------------------------------------------------------

def _subgroup_cell(d: dict) -> str:
    if d["auc"] is None:
        return "undefined (lacks a class)"
    lo, hi = d["auc_ci"]
    text = f"{_pct(d['auc'])} [{_pct(lo)}, {_pct(hi)}]"
    if "auc_seeds" in d:
        text += f" · {_pm(d['auc_seeds_mean'], d['auc_seeds_sd'], 1)} over seeds"
    return text


def subgroups_section(cells, tasks, pairs, variants, grid) -> list[str]:
    """report.md: per task, AUC per subgroup of the --group-by column with its interval, and the largest gap."""
    column = grid.get("group_by")
    if column is None:
        return []
    by = {(c.task, c.pair, c.variant): c for c in cells}
    seeds = grid.get("seeds")
    note = ("Each subgroup's AUC is the task AUC of its own out-of-fold predictions"
            f"{f' (first repetition, seed {seeds[0]})' if seeds else ''}, with a 95% stratified-bootstrap interval over "
            "its documents; *undefined* where the subgroup lacks a class. Largest gap: highest minus lowest defined "
            "subgroup AUC, in points." + (" After ·: mean ± sd of the subgroup's AUC over the repetitions." if seeds else ""))
    lines = ["", f"## AUC (%) per subgroup of `{column}`", "", note]
    for t in tasks:
        for audio, text in pairs:
            pair = f"{audio}+{text}"
            ran = _run_on(by, [t], pair, variants)
            if not ran:
                continue
            first = by[(t, pair, ran[0])].metrics["subgroups"]
            title = f"### {t}" + (f" — {audio} + {text}" if len(pairs) > 1 else "")
            missing = f" {first['n_missing']} document(s) without a `{column}` value are in no subgroup."                 if first["n_missing"] else ""
            head = ["configuration"]
            for g, d in first["groups"].items():
                counts = ", ".join(f"{n}: {c}" for n, c in d["class_counts"].items())
                head.append(f"{g} (n = {d['n']}; {counts})")
            head.append("largest gap")
            rows = []
            for v in ran:
                sg = by[(t, pair, v)].metrics["subgroups"]
                gap = sg["largest_gap"]
                rows.append([display_name(v), *(_subgroup_cell(d) for d in sg["groups"].values()),
                             "–" if gap is None else f"{100 * gap['gap']:.2f} ({gap['high']} − {gap['low']})"])
            lines += ["", title, ""] + ([missing.strip(), ""] if missing else []) + [_md_table(head, rows)]
    return lines
