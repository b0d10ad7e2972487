"""`hilbert evaluate`: folds, kept cells, report, CLI (the trainer's fold equivalence: tests/test_trainer.py)."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hilbert_cli.evaluation import crossval as crossval_mod
from hilbert_cli.features import embed
from hilbert_cli.learn.config import load_config
from hilbert_cli.errors import HilbertError
from hilbert_cli.evaluation.grid import ABLATION_VAL_FRACTION, evaluate, parse_ablations, variant_configs
from hilbert_cli.evaluation.folds import inner_split, make_folds, subject_groups
from hilbert_cli.evaluation.metrics import roc_auc
from hilbert_cli.workspace import Manifest, Workspace

SMALL = {"model.d": 16, "model.heads": 2, "train.epochs": 6, "train.patience": 3, "train.batch_size": 8}


# --- folds -------------------------------------------------------------------------------------

def test_folds_are_grouped_stratified_and_seeded():
    rng = np.random.default_rng(0)
    subjects = [f"s{i // 3}" for i in range(150)]  # 3 documents per subject
    y = np.array([int(rng.random() < 0.3) for _ in range(50) for _ in range(3)])  # label per subject
    ids = [f"d{i}" for i in range(150)]
    g = subject_groups(ids, subjects)
    f = make_folds(y, k=5, seed=1, groups=g, doc_ids=ids)
    assert f.grouped and f.k == 5 and sorted(np.unique(f.test_fold)) == list(range(5))
    for s in set(subjects):  # no subject in two folds
        assert len({f.test_fold[i] for i in range(150) if subjects[i] == s}) == 1
    share = [y[f.test_fold == i].mean() for i in range(5)]
    assert max(share) - min(share) < 0.25  # stratified: every fold near the overall positive share
    same = make_folds(y, k=5, seed=1, groups=g, doc_ids=ids)
    assert np.array_equal(same.test_fold, f.test_fold) and same.hash == f.hash
    assert make_folds(y, k=5, seed=2, groups=g, doc_ids=ids).hash != f.hash
    plain = make_folds(y, k=5, seed=1)  # no subjects: StratifiedKFold, class counts per fold differ by <= 1
    for c in (0, 1):
        counts = np.bincount(plain.test_fold[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_subject_groups_none_when_no_subject_given():
    assert subject_groups(["a", "b"], [None, ""]) is None
    g = subject_groups(["a", "b", "c"], ["s1", None, "s1"])
    assert g[0] == g[2] != g[1]


def test_fold_warnings_and_errors():
    y = np.array([0] * 20 + [1] * 20 + [2] * 3)
    f = make_folds(y, k=5)
    assert any("fewer documents than the 5 folds" in w and "'2' (3)" in w for w in f.warnings)
    with pytest.raises(HilbertError, match="fewer than 2"):
        make_folds(np.array([0] * 10 + [1]), k=5, label_names=["a", "b"], task="t")
    with pytest.raises(HilbertError, match="--folds"):
        make_folds(y, k=1)
    small = make_folds(np.array([0, 1] * 4), k=25)
    assert small.k == 4 and any("using" in w for w in small.warnings)  # clamped to the largest class


def test_inner_split_is_grouped_and_disjoint():
    y = np.array([0, 1] * 20)
    groups = np.repeat(np.arange(10), 4)
    fit, val = inner_split(y, groups, seed=0, val_fraction=0.2)
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 40 and len(val) > 0
    assert not set(groups[fit]) & set(groups[val])


# --- grid -------------------------------------------------------------------------------------

def test_ablations_and_variants():
    subsets = parse_ablations("all")  # the paper's Table 4: all non-empty combinations
    assert len(subsets) == len(set(subsets)) == 7 and () not in subsets and ("contrastive", "cka", "mi") in subsets
    assert parse_ablations("none,cka+contrastive") == [(), ("contrastive", "cka")]  # the empty one when asked for
    with pytest.raises(HilbertError, match="unknown loss 'foo'"):
        parse_ablations("foo")
    v = variant_configs(["transfer", "hilbert"], [("cka",)], None)
    assert list(v) == ["transfer", "hilbert", "hilbert[cka]"]
    assert v["hilbert[cka]"].active_losses == ("cka",) and v["hilbert"].active_losses == ("contrastive", "cka", "mi")
    assert v["transfer"].active_losses == ()
    # an ablation is judged on an inner validation split: the config's own when it has one, else 0.2
    assert v["hilbert[cka]"].train.val_fraction == ABLATION_VAL_FRACTION > 0 and v["hilbert"].train.val_fraction == 0
    own = variant_configs([], [("cka",)], load_config(None, {"train.val_fraction": 0.3}))
    assert own["hilbert[cka]"].train.val_fraction == 0.3
    with pytest.raises(HilbertError, match="unknown configuration 'hilbrt'"):
        variant_configs(["hilbrt"], [], None)


# --- evaluate on a workspace --------------------------------------------------------------------------

def _workspace(tmp_path, n=30, tiny_class=False):
    ws = Workspace(tmp_path / "ws")
    docs = {}
    for i in range(n):
        words = ["a", "b", "c"][i % 3]
        if tiny_class and i == 0:
            words = "rare"
        docs[f"d{i:02d}"] = {"audio": f"/x/d{i}.wav", "audio_sha256": "0", "subject": f"s{i // 2}",
                             "labels": {"voice": str(i % 2), "words": words}}
    ws.write_manifest(Manifest(str(tmp_path), docs, ["voice", "words"], {}))
    return ws


def _fake_embeddings(ws, doc_ids, audio, text, **kw):
    """Planted signal: audio carries the voice label (dims 0-1), text the words label."""
    out = {}
    for d in doc_ids:
        i = int(d[1:])
        r = np.random.default_rng(i)
        s = int(r.integers(3, 6))
        a = r.normal(size=(s, 6)).astype(np.float32)
        t = r.normal(size=(s, 6)).astype(np.float32)
        a[:, i % 2] += 2.0
        t[:, i % 3] += 2.0
        out[d] = (a, t)
    return out


def test_evaluate_keeps_cells_and_writes_the_report(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    ws = _workspace(tmp_path)
    cfg = load_config(None, SMALL)
    r = evaluate(ws, "voice,words", "transfer,hilbert", "a1", "t1", k=3, config=cfg, run_name="one", jobs=1)
    assert r.n_trained == 4 and r.n_cached == 0
    for name in ("report.md", "metrics.json", "folds.csv", "oof_predictions.csv", "config.yaml",
                 "roc_voice.png", "roc_words.png"):
        assert (r.run_dir / name).stat().st_size > 0
    m = json.loads((r.run_dir / "metrics.json").read_text())
    for key in ("auc_pooled", "auc_pooled_ci", "auc_mean", "auc_std", "auc_folds", "auc_per_class",
                "balanced_accuracy", "macro_f1", "confusion_matrix"):
        assert key in m["voice"]["hilbert"]
    assert len(m["words"]["transfer"]["auc_folds"]) == 3
    cmp_ = m["voice"]["transfer"]["vs_hilbert"]
    assert 0 <= cmp_["p_ttest"] <= 1 and 0 < cmp_["p_bootstrap"] <= 1
    # the pooled AUC is the AUC of the out-of-fold predictions in the CSV
    import csv
    rows = [row for row in csv.DictReader(open(r.run_dir / "oof_predictions.csv")) if row["task"] == "voice"
            and row["configuration"] == "hilbert"]
    yv = np.array([int(row["label"]) for row in rows])
    pv = np.array([[float(row["p[0]"]), float(row["p[1]"])] for row in rows])
    assert roc_auc(yv, pv) == pytest.approx(m["voice"]["hilbert"]["auc_pooled"], abs=1e-5)
    # every configuration saw the same folds
    folds = {}
    for row in csv.DictReader(open(r.run_dir / "oof_predictions.csv")):
        folds.setdefault((row["task"], row["doc_id"]), set()).add(row["fold"])
    assert all(len(v) == 1 for v in folds.values())
    report = (r.run_dir / "report.md").read_text()
    assert "| a1 + t1 | HILBERT (DualC + MoE) |" in report and "**" in report
    assert f"{100 * m['voice']['hilbert']['auc_pooled']:.2f}" in report

    # run again, extended by one configuration: only the new one trains
    calls = []
    real = crossval_mod.cross_val_predict
    monkeypatch.setattr(crossval_mod, "cross_val_predict", lambda *a, **k: calls.append(1) or real(*a, **k))
    r2 = evaluate(ws, "voice,words", "transfer,hilbert,text-only", "a1", "t1", k=3, config=cfg, run_name="two", jobs=1)
    assert r2.n_trained == 2 and r2.n_cached == 4 and len(calls) == 2
    m2 = json.loads((r2.run_dir / "metrics.json").read_text())
    assert m2["voice"]["hilbert"]["auc_pooled"] == m["voice"]["hilbert"]["auc_pooled"]
    # the planted signal: words is in the text only
    assert m2["words"]["text-only"]["auc_pooled"] > 0.8


def test_evaluate_refuses_a_class_with_one_document(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    ws = _workspace(tmp_path, tiny_class=True)
    with pytest.raises(HilbertError, match="'rare' \\(1\\)"):
        evaluate(ws, "words", "transfer", "a1", "t1", k=3, jobs=1)


def test_cli_evaluate(tmp_path, monkeypatch):
    """CLI plumbing only (the embeddings are synthetic): table, warnings, report path, errors."""
    from hilbert_cli.cli import app

    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: table cells on one line
    ws = _workspace(tmp_path, n=24)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model:\n  d: 16\n  heads: 2\ntrain:\n  epochs: 4\n  batch_size: 8\n")
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--task", "voice", "--config", "transfer,audio-only", "--folds", "13",
                              "--config-file", str(cfg_file), "--name", "cli", "--jobs", "1", "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    m = json.loads((ws.runs_dir / "cli" / "metrics.json").read_text())
    assert f"{100 * m['voice']['audio-only']['auc_pooled']:.2f}" in res.output
    # both AUC summaries: pooled · fold mean ± sd (folds where the AUC is defined / folds)
    a = m["voice"]["audio-only"]
    both = f"{100 * a['auc_mean']:.1f} ± {100 * a['auc_std']:.1f} ({a['n_folds_defined']}/12)"
    assert both in res.output and both in (ws.runs_dir / "cli" / "report.md").read_text()
    assert "warning" in res.output and "using 12 folds" in res.output  # 12 subjects < 13 folds
    assert "report.md" in res.output
    bad = runner.invoke(app, ["evaluate", "--task", "voice", "--config", "nope", "-w", str(ws.root)])
    assert bad.exit_code == 1 and "unknown configuration 'nope'" in bad.output


# --- the loss ablation (the paper's Table 4) ---------------------------------------------------------

def test_ablation_all_runs_the_seven_subsets_and_selects_on_inner_validation(tmp_path, monkeypatch, one_thread):
    from hilbert_cli.evaluation.report import ablation_table, ablation_test_table

    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    seen = []  # every fold's plan: validation documents must come from its training part
    real_plan = crossval_mod.plan_folds
    monkeypatch.setattr(crossval_mod, "plan_folds", lambda *a, **k: seen.append(real_plan(*a, **k)) or seen[-1])
    ws = _workspace(tmp_path, n=18)
    cfg = load_config(None, {**SMALL, "model.d": 8, "train.epochs": 2, "train.batch_size": 16})  # one step an epoch
    r = evaluate(ws, "voice", None, "a1", "t1", k=3, config=cfg, ablations="all", run_name="abl", jobs=1)
    assert len(r.variants) == r.n_trained == 7 and "hilbert[none]" not in r.variants
    assert len(seen) == 7
    for plans in seen:
        for p in plans:
            assert len(p.val) and not set(p.val) & set(p.test) and not set(p.val) & set(p.fit)
    m = json.loads((r.run_dir / "metrics.json").read_text())["voice"]
    for v in r.variants:
        folds = m[v]["val_auc_folds"]
        assert len(folds) == 3 and m[v]["val_auc"] == pytest.approx(np.mean([a for a in folds if a is not None]))
        assert m[v]["auc_pooled"] is not None  # metrics.json carries both figures
    # ✗ / ✓: the best validation AUC over the subsets without / with each loss, never the test AUC
    header, rows = ablation_table(r.cells, ["voice"], [("a1", "t1")])
    assert header[-2:] == ["voice ✗", "voice ✓"] and [row[1] for row in rows] == ["contrastive", "cka", "mi"]
    for row in rows:
        without = max(m[v]["val_auc"] for v in r.variants if row[1] not in v)
        with_ = max(m[v]["val_auc"] for v in r.variants if row[1] in v)
        assert row[2:] == [f"{100 * without:.2f}", f"{100 * with_:.2f}"]
    _, test_rows = ablation_test_table(r.cells, ["voice"], [("a1", "t1")])
    assert [row[1] for row in test_rows] == r.variants
    assert all(row[3] == f"{100 * m[row[1]]['auc_pooled']:.2f}" for row in test_rows)
    report = (r.run_dir / "report.md").read_text()
    assert "Best inner-validation AUC" in report and "test folds (not used for selection)" in report


def test_ablation_table_ignores_test_auc_and_the_empty_subset():
    from hilbert_cli.evaluation.grid import Cell, variant_configs
    from hilbert_cli.evaluation.report import ablation_table

    variants = variant_configs([], parse_ablations("none,contrastive,cka,mi"), None)
    figures = {"hilbert[none]": (0.99, 0.99), "hilbert[contrastive]": (0.60, 0.95),  # (validation, test)
               "hilbert[cka]": (0.70, 0.50), "hilbert[mi]": (0.65, 0.55)}
    cells = []
    for name, cfg in variants.items():
        c = Cell("t", "a", "x", name, cfg)
        c.metrics = {"val_auc": figures[name][0], "auc_pooled": figures[name][1]}
        cells.append(c)
    _, rows = ablation_table(cells, ["t"], [("a", "x")])
    assert {row[1]: row[2:] for row in rows} == {"contrastive": ["70.00", "60.00"], "cka": ["65.00", "70.00"],
                                                 "mi": ["70.00", "65.00"]}


# --- the CLAP-LAION row ----------------------------------------------------------------------------

def test_clap_configuration_runs_on_its_own_backbones(tmp_path, monkeypatch, one_thread):
    asked = []

    def fake(ws, doc_ids, audio, text, **kw):
        asked.append((audio, text))
        return _fake_embeddings(ws, doc_ids, audio, text, **kw)

    monkeypatch.setattr(embed, "document_embeddings", fake)
    ws = _workspace(tmp_path, n=18)
    cfg = load_config(None, {**SMALL, "model.d": 8, "train.epochs": 3, "train.batch_size": 16})
    r = evaluate(ws, "voice", "clap,hilbert", "a1", "t1", k=3, config=cfg, run_name="clap", jobs=1)
    assert sorted(set(asked)) == [("a1", "t1"), ("clap", "clap")]
    assert {(c.variant, c.pair) for c in r.cells} == {("clap", "clap+clap"), ("hilbert", "a1+t1")}
    m = json.loads((r.run_dir / "metrics.json").read_text())["voice"]
    assert m["clap"]["clap+clap"]["vs_hilbert"]["reference_backbones"] == "a1+t1"
    report = (r.run_dir / "report.md").read_text()
    assert "| clap + clap | CLAP-LAION |" in report and "| a1 + t1 | HILBERT (DualC + MoE) |" in report
    assert "| clap + clap | HILBERT" not in report and "Here hilbert is the run on a1 + t1" in report
