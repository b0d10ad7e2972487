"""`hilbert evaluate --seeds N` (repeated cross-validation) and `--group-by COLUMN` (AUC per subgroup):
the statistics against independent computations (scipy, scikit-learn), and the evaluate plumbing on
synthetic embeddings (test_evaluate.py's planted-signal workspace)."""
import csv
import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from test_evaluate import SMALL, _fake_embeddings  # tests/ is on sys.path under pytest

from hilbert_cli.errors import HilbertError
from hilbert_cli.evaluation import metrics as M
from hilbert_cli.evaluation.grid import evaluate
from hilbert_cli.evaluation.subgroups import subgroup_aucs
from hilbert_cli.features import embed
from hilbert_cli.learn.config import load_config
from hilbert_cli.workspace import Manifest, Workspace

TINY = {**SMALL, "train.epochs": 3, "train.patience": 2}


# --- statistics --------------------------------------------------------------------------------

def test_corrected_ttest_over_repetitions_is_bouckaert_frank():
    """r repetitions x k folds: t = mean(d) / sqrt((1/(k r) + n2/n1) var(d)), k r - 1 degrees of freedom."""
    rng = np.random.default_rng(3)
    r, k, n1, n2 = 3, 5, 80.0, 20.0
    a, b = rng.uniform(0.6, 0.9, r * k), rng.uniform(0.55, 0.85, r * k)
    d = a - b
    t = d.mean() / np.sqrt((1 / (k * r) + n2 / n1) * d.var(ddof=1))
    got = M.corrected_resampled_ttest(list(a), list(b), n1, n2)
    assert got["n_folds"] == r * k
    assert got["t"] == pytest.approx(t, rel=1e-12)
    assert got["p"] == pytest.approx(2 * stats.t.sf(abs(t), df=k * r - 1), rel=1e-12)


def test_paired_bootstrap_over_repetitions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    pa = [np.stack([1 - q, q], 1) for q in (rng.random(60), rng.random(60))]
    pb = [np.stack([1 - q, q], 1) for q in (rng.random(60), rng.random(60))]
    one = M.paired_bootstrap_test(y, pa[0], pb[0], n_resamples=200)
    assert M.paired_bootstrap_test(y, [pa[0]], [pb[0]], n_resamples=200) == one  # a list of one is the plain test
    two = M.paired_bootstrap_test(y, pa, pb, n_resamples=200)
    want = np.mean([roc_auc_score(y, p[:, 1]) for p in pa]) - np.mean([roc_auc_score(y, p[:, 1]) for p in pb])
    assert two["diff"] == pytest.approx(want, abs=1e-12) and 0 < two["p"] <= 1


def test_over_seeds_mean_and_sd():
    s = M.over_seeds([{"auc_pooled": 0.7, "auc_mean": 0.6}, {"auc_pooled": 0.8, "auc_mean": None},
                      {"auc_pooled": 0.9, "auc_mean": 0.7}])
    assert s["n_seeds"] == 3 and s["auc_pooled"] == [0.7, 0.8, 0.9]
    assert s["auc_pooled_mean"] == pytest.approx(0.8) and s["auc_pooled_sd"] == pytest.approx(0.1)
    assert s["auc_mean_mean"] == pytest.approx(0.65)  # an undefined fold mean is left out
    assert s["auc_mean_sd"] == pytest.approx(np.std([0.6, 0.7], ddof=1))


@pytest.mark.parametrize("c", [2, 3])
def test_subgroup_aucs_equal_each_subgroup_alone(c):
    rng = np.random.default_rng(c)
    n = 150
    y = rng.integers(0, c, n)
    p = rng.dirichlet(np.ones(c), n)
    groups = rng.choice(["F", "M", "X", None], n).tolist()
    groups[:4] = ["solo"] * 4
    y[:4] = 0  # subgroup "solo" has one class only: undefined
    r = subgroup_aucs(y, p, groups, [f"c{i}" for i in range(c)], seed=1, n_resamples=200)
    assert list(r["groups"]) == ["F", "M", "X", "solo"] and r["n_missing"] == groups.count(None)
    for g in ("F", "M", "X"):
        idx = np.array([i for i, v in enumerate(groups) if v == g])
        ref = roc_auc_score(y[idx], p[idx, 1]) if c == 2 else roc_auc_score(y[idx], p[idx], multi_class="ovr")
        d = r["groups"][g]
        assert d["auc"] == pytest.approx(ref, abs=1e-12) and d["n"] == len(idx)
        assert d["class_counts"] == {f"c{i}": int((y[idx] == i).sum()) for i in range(c)}
        assert d["auc_ci"][0] <= d["auc"] <= d["auc_ci"][1]
    assert r["groups"]["solo"]["auc"] is None and r["groups"]["solo"]["auc_ci"] is None
    aucs = {g: r["groups"][g]["auc"] for g in ("F", "M", "X")}
    gap = r["largest_gap"]
    assert gap["gap"] == pytest.approx(max(aucs.values()) - min(aucs.values()))
    assert aucs[gap["high"]] == max(aucs.values()) and aucs[gap["low"]] == min(aucs.values())
    again = subgroup_aucs(y, p, groups, [f"c{i}" for i in range(c)], seed=1, n_resamples=200)
    assert again == r  # a fixed seed: the same intervals


# --- evaluate ----------------------------------------------------------------------------------

def _workspace(tmp_path, n=24):
    """test_evaluate's planted-signal workspace with two more columns: sex (some cells empty) and site."""
    ws = Workspace(tmp_path / "ws")
    docs = {}
    for i in range(n):
        sex = "" if i % 7 == 6 else ("F" if (i // 2) % 2 else "M")
        docs[f"d{i:02d}"] = {"audio": f"/x/d{i}.wav", "audio_sha256": "0", "subject": f"s{i // 2}",
                             "labels": {"voice": str(i % 2), "words": ["a", "b", "c"][i % 3], "sex": sex or None,
                                        "site": "one" if i < n // 2 else "two"}}
    ws.write_manifest(Manifest(str(tmp_path), docs, ["voice", "words", "sex", "site"], {}))
    return ws


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # about 20 s of CPU (6 small cells); more wall time on a busy machine
def test_seeds_repeat_with_distinct_folds_and_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    ws = _workspace(tmp_path)
    cfg = load_config(None, TINY)
    one = evaluate(ws, "voice", "audio-only,hilbert", "a1", "t1", k=3, config=cfg, run_name="one", jobs=1)
    m1 = json.loads((one.run_dir / "metrics.json").read_text())
    assert one.seeds == [0] and "seeds" not in m1["voice"]["hilbert"]  # without --seeds: as before
    assert "seed" not in _rows(one.run_dir / "folds.csv")[0]

    two = evaluate(ws, "voice", "audio-only,hilbert", "a1", "t1", k=3, config=cfg, run_name="two", jobs=1, seeds=2)
    assert two.seeds == [0, 1] and two.n_trained == 2 and two.n_cached == 2  # repetition 0 is the run above
    # --seeds 2 gives two distinct fold assignments (as partitions of the documents, not just renumbered)
    f0, f1 = (s["voice"].folds for _, s in two.repetitions)
    assert (f0.seed, f1.seed) == (0, 1)
    parts = [{frozenset(np.flatnonzero(f.test_fold == i)) for i in range(f.k)} for f in (f0, f1)]
    assert parts[0] != parts[1]
    assert two.repetitions[1][0][0].config.train.seed == cfg.train.seed + 1  # its own initialisation

    m = json.loads((two.run_dir / "metrics.json").read_text())["voice"]
    for v in ("audio-only", "hilbert"):
        reps = m[v]["repetitions"]
        assert [r["seed"] for r in reps] == [0, 1] and [r["train_seed"] for r in reps] == [0, 1]
        assert reps[0]["auc_pooled"] == m1["voice"][v]["auc_pooled"] == m[v]["auc_pooled"]
        s = m[v]["seeds"]
        pooled = [r["auc_pooled"] for r in reps]
        assert s["auc_pooled"] == pooled and s["auc_pooled_mean"] == pytest.approx(np.mean(pooled))
        assert s["auc_pooled_sd"] == pytest.approx(np.std(pooled, ddof=1))
        assert s["auc_mean_mean"] == pytest.approx(np.mean([r["auc_mean"] for r in reps]))
    # the t-test uses both repetitions' folds: Bouckaert & Frank with r k = 6 paired folds
    d = np.array([a - b for rh, rt in zip(m["hilbert"]["repetitions"], m["audio-only"]["repetitions"])
                  for a, b in zip(rh["auc_folds"], rt["auc_folds"])])
    folds = [(int(r["n_train"]), int(r["n_test"])) for r in _rows(two.run_dir / "folds.csv")
             if r["configuration"] == "audio-only"]
    n_train, n_test = np.mean([f[0] for f in folds]), np.mean([f[1] for f in folds])
    t = d.mean() / np.sqrt((1 / 6 + n_test / n_train) * d.var(ddof=1))
    cmp_ = m["audio-only"]["vs_hilbert"]
    assert cmp_["n_folds"] == 6 and cmp_["n_repetitions"] == 2
    assert cmp_["p_ttest"] == pytest.approx(2 * stats.t.sf(abs(t), df=5), rel=1e-9)
    assert cmp_["auc_diff"] == pytest.approx(m["hilbert"]["seeds"]["auc_pooled_mean"]
                                             - m["audio-only"]["seeds"]["auc_pooled_mean"], abs=1e-12)
    # report: mean ± sd over seeds in the AUC table, the per-repetition table; CSVs: a seed column
    report = (two.run_dir / "report.md").read_text()
    s = m["hilbert"]["seeds"]
    assert f"{100 * s['auc_pooled_mean']:.2f} ± {100 * s['auc_pooled_sd']:.2f} · " in report
    assert "(2 seeds)" in report and "## Pooled AUC (%) per repetition" in report
    oof = _rows(two.run_dir / "oof_predictions.csv")
    assert {r["seed"] for r in oof} == {"0", "1"} and len(oof) == 2 * 2 * 24
    fold_of = {(r["seed"], r["doc_id"]): r["fold"] for r in oof}
    assert any(fold_of[("0", d)] != fold_of[("1", d)] for d in one.setups["voice"].doc_ids)

    # the CLI: the same grid (every cell kept), the terminal table in mean ± sd over seeds, and --group-by
    from typer.testing import CliRunner

    from hilbert_cli.cli import app

    monkeypatch.setenv("COLUMNS", "220")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model:\n  d: 16\n  heads: 2\ntrain:\n  epochs: 3\n  patience: 2\n  batch_size: 8\n")
    res = CliRunner().invoke(app, ["evaluate", "--task", "voice", "--config", "audio-only,hilbert", "--audio", "a1",
                                   "--text", "t1", "--folds", "3", "--seeds", "2", "--group-by", "sex", "--config-file",
                                   str(cfg_file), "--name", "cli", "--jobs", "1", "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert "0 cell(s) trained, 4 kept" in res.output and "3-fold CV × 2 seeds" in res.output
    assert f"{100 * s['auc_pooled_mean']:.2f} ± {100 * s['auc_pooled_sd']:.2f}" in res.output
    assert "AUC per subgroup of 'sex'" in res.output
    assert "## AUC (%) per subgroup of `sex`" in (ws.runs_dir / "cli" / "report.md").read_text()
    bad = CliRunner().invoke(app, ["evaluate", "--task", "voice", "--seeds", "0", "-w", str(ws.root)])
    assert bad.exit_code == 1 and "--seeds: give the number of repetitions" in bad.output


def test_group_by_reports_auc_per_subgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    ws = _workspace(tmp_path)
    cfg = load_config(None, TINY)
    r = evaluate(ws, "all", "transfer", "a1", "t1", k=3, config=cfg, run_name="g", jobs=1, group_by="sex")
    assert r.tasks == ["voice", "words", "site"]  # --task all leaves the --group-by column out
    m = json.loads((r.run_dir / "metrics.json").read_text())
    sex = {d: v["labels"]["sex"] for d, v in ws.load_manifest().documents.items()}
    oof = _rows(r.run_dir / "oof_predictions.csv")
    for task in ("voice", "words"):
        sg = m[task]["transfer"]["subgroups"]
        assert sg["column"] == "sex" and sg["n_missing"] == sum(v is None for v in sex.values()) == 3
        rows = [row for row in oof if row["task"] == task]
        names = m[task]["transfer"]["label_names"]
        for g in ("F", "M"):
            mine = [row for row in rows if sex[row["doc_id"]] == g]
            y = np.array([names.index(row["label"]) for row in mine])
            p = np.array([[float(row[f"p[{n}]"]) for n in names] for row in mine])
            # subgroup AUCs equal the AUC computed on each subgroup alone
            ref = roc_auc_score(y, p[:, 1]) if len(names) == 2 else roc_auc_score(y, p, multi_class="ovr")
            assert sg["groups"][g]["auc"] == pytest.approx(ref, abs=1e-5) and sg["groups"][g]["n"] == len(mine)
        a = [sg["groups"][g]["auc"] for g in ("F", "M")]
        assert sg["largest_gap"]["gap"] == pytest.approx(max(a) - min(a))
    assert any("3 of 24 documents have no 'sex' value" in w for w in r.warnings)
    report = (r.run_dir / "report.md").read_text()
    assert "## AUC (%) per subgroup of `sex`" in report
    f = m["voice"]["transfer"]["subgroups"]["groups"]["F"]
    assert f"{100 * f['auc']:.2f} [{100 * f['auc_ci'][0]:.2f}, {100 * f['auc_ci'][1]:.2f}]" in report
    assert "largest gap" in report


def test_group_by_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    ws = _workspace(tmp_path)
    with pytest.raises(HilbertError, match="--group-by: labels.csv has no column 'age'; .*voice, words, sex, site"):
        evaluate(ws, "voice", "transfer", "a1", "t1", k=3, group_by="age")
    with pytest.raises(HilbertError, match="--group-by sex: this column is also evaluated as a --task"):
        evaluate(ws, "voice,sex", "transfer", "a1", "t1", k=3, group_by="sex")
    with pytest.raises(HilbertError, match="--seeds: .*at least 1"):
        evaluate(ws, "voice", "transfer", "a1", "t1", k=3, seeds=0)
