"""Temperature scaling: the fit itself, train.calibrate in training, model.pt, the classifier, cross-validation,
`hilbert train --calibrate` and what `predict` says about its probabilities."""
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hilbert_cli.cli import app
from hilbert_cli.errors import ConfigError, DataError
from hilbert_cli.evaluation.crossval import cross_val_predict
from hilbert_cli.evaluation.folds import make_folds
from hilbert_cli.learn import calibration
from hilbert_cli.learn.calibration import (
    TEMPERATURE_RANGE,
    Temperature,
    fit_temperature,
    nll,
)
from hilbert_cli.learn.checkpoint import checksum, load_checkpoint, save_checkpoint
from hilbert_cli.learn.classifier import HilbertClassifier
from hilbert_cli.learn.config import load_config
from hilbert_cli.learn.data import synthetic_embeddings
from hilbert_cli.learn.train import explain, fit, predict_proba
from hilbert_cli.learn.trainer import inner_plan
from hilbert_cli.predict import PredictResult

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

DA, DT = 16, 12
FAST = {"model.d": 16, "model.heads": 2, "model.d_z": 16, "train.epochs": 4, "train.batch_size": 8,
        "train.val_fraction": 0.3}


def cfg(name="transfer", **over):
    return load_config(None, {"configuration": name, **FAST, **over})


# --- the fit --------------------------------------------------------------------------------------

@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with(true_t):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(20000, 3))
    p = np.exp(z / true_t)
    p /= p.sum(1, keepdims=True)
    y = (rng.uniform(size=(len(z), 1)) > p.cumsum(1)).sum(1)  # y ~ softmax(z / true_t)
    t = fit_temperature(z, y)
    assert t.temperature == pytest.approx(true_t, rel=0.05)
    assert t.nll_after < t.nll_before and t.nll_after == pytest.approx(nll(z, y, t.temperature))
    assert not t.at_bound and t.n_documents == len(y)
    # the minimum: NLL is higher a little either side of it
    assert nll(z, y, t.temperature * 1.05) > t.nll_after and nll(z, y, t.temperature / 1.05) > t.nll_after
    assert fit_temperature(z, y) == t  # deterministic


def test_fit_temperature_at_its_bounds_and_without_documents():
    z = np.array([[2.0, -1.0], [-1.0, 2.0], [3.0, 0.0]])
    separated = fit_temperature(z, np.array([0, 1, 0]))  # every document right: NLL falls as T -> 0
    assert separated.at_bound and separated.temperature == pytest.approx(TEMPERATURE_RANGE[0])
    wrong = fit_temperature(z, np.array([1, 0, 1]))  # every document wrong: NLL falls as T grows
    assert wrong.at_bound and wrong.temperature == pytest.approx(TEMPERATURE_RANGE[1])
    with pytest.raises(DataError, match="held-out documents"):
        fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int))


def test_calibration_documents_are_held_out():
    y = np.array([0, 1] * 20)
    groups = np.arange(40) // 2  # 20 subjects, one document of each class
    # no validation split (the default): a calibration split is held out of training, grouped and stratified
    p = inner_plan(y, groups, load_config(None, {"train.calibrate": True}), seed=0)
    assert np.array_equal(p.val, p.fit) and len(p.cal) == 8 and not set(p.fit) & set(p.cal)
    assert set(p.fit) | set(p.cal) == set(range(40)) and not set(groups[p.fit]) & set(groups[p.cal])
    assert np.bincount(y[p.cal]).tolist() == [4, 4]
    # with a validation split, the temperature is fitted on it
    p = inner_plan(y, groups, load_config(None, {"train.calibrate": True, "train.val_fraction": 0.25}), seed=0)
    assert np.array_equal(p.cal, p.val) and not set(p.fit) & set(p.val) and len(p.val) == 10
    # without calibration nothing is held out for it; too few subjects to hold any out: none
    assert len(inner_plan(y, groups, load_config(None, {}), seed=0).cal) == 0
    assert len(inner_plan(y[:2], groups[:2], load_config(None, {"train.calibrate": True}), seed=0).cal) == 0
    with pytest.raises(ConfigError, match="train.calibration_fraction: must be in \\(0, 1\\)"):
        load_config(None, {"train.calibrate": True, "train.calibration_fraction": 1})
    assert load_config(None, {"train.calibrate": "yes"}).train.calibrate is True


# --- training and model.pt -------------------------------------------------------------------------

def test_fit_calibrates_without_changing_training(tmp_path):
    A, T, y = synthetic_embeddings(40, 2, segments=(3, 6), d_audio=DA, d_text=DT, signal=0.6, seed=4)
    plain = fit(cfg(), A, T, y, 2)
    res = fit(cfg(**{"train.calibrate": True}), A, T, y, 2)
    assert plain.calibration is None and plain.temperature == 1.0
    c = res.calibration
    assert isinstance(c, Temperature) and c.n_documents == len(res.cal_index) and c.nll_after <= c.nll_before
    assert np.array_equal(res.cal_index, res.val_index)  # with a validation split, the temperature is fitted on it
    raw = predict_proba(res.model, A, T)
    assert np.array_equal(raw, predict_proba(plain.model, A, T))  # the same weights: calibration is post hoc
    scaled = predict_proba(res.model, A, T, temperature=c.temperature)
    logits = np.log(raw)
    expected = torch.softmax(torch.as_tensor(logits) / c.temperature, -1).numpy()
    assert np.allclose(scaled, expected, atol=1e-5) and np.array_equal(scaled.argmax(1), raw.argmax(1))
    ex = explain(res.model, A[:2], T[:2], temperature=c.temperature)
    assert np.allclose(ex[0]["proba"], scaled[0], atol=1e-6)
    assert ex[0]["occlusion"].shape == (len(A[0]),)

    # stored in model.pt, and back
    path = save_checkpoint(tmp_path / "m.pt", res.model, config=res.config, task="t", label_names=["a", "b"],
                           audio="whisper-tiny", text="minilm", d_audio=DA, d_text=DT, fingerprints={},
                           calibration=c)
    _, meta = load_checkpoint(path)
    assert calibration.from_checkpoint(meta) == c
    # a format-2 file (before calibration existed) still loads, as uncalibrated
    old = torch.load(path, weights_only=True)
    del old["calibration"]
    old["format_version"] = 2
    old["checksum"] = checksum(old)
    torch.save(old, tmp_path / "old.pt")
    _, meta = load_checkpoint(tmp_path / "old.pt")
    assert meta["calibration"] is None and calibration.from_checkpoint(meta) is None
    assert HilbertClassifier.load(tmp_path / "old.pt", device="cpu").calibration_ is None


def test_classifier_calibrates_and_round_trips(tmp_path):
    A, T, y = synthetic_embeddings(40, 2, segments=(3, 6), d_audio=DA, d_text=DT, signal=0.6, seed=5)
    labels = np.where(y == 1, "case", "control")
    clf = HilbertClassifier("transfer", config={**FAST, "train.calibrate": True}, device="cpu").fit(A, T, labels)
    t = clf.calibration_.temperature
    assert t != 1.0
    p = clf.predict_proba(A, T)
    assert np.allclose(p, predict_proba(clf.model_, A, T, temperature=t), atol=1e-6)
    assert not np.allclose(p, predict_proba(clf.model_, A, T), atol=1e-3)
    back = HilbertClassifier.load(clf.save(tmp_path / "clf.pt"), device="cpu")
    assert back.calibration_ == clf.calibration_ and np.array_equal(back.predict_proba(A, T), p)


def test_cross_validation_scales_each_fold_with_its_own_temperature():
    A, T, y = synthetic_embeddings(45, 3, segments=(3, 6), d_audio=DA, d_text=DT, signal=0.6, seed=6)
    folds = make_folds(y, 3, 0, None, [str(i) for i in range(len(y))], ["a", "b", "c"], "t")
    plain = cross_val_predict(cfg(), A, T, y, 3, folds, device="cpu")
    cal = cross_val_predict(cfg(**{"train.calibrate": True}), A, T, y, 3, folds, device="cpu")
    assert plain.temperature == [] and len(cal.temperature) == 3
    for f, t in enumerate(cal.temperature):
        te = folds.test_fold == f
        undone = torch.softmax(torch.as_tensor(t * np.log(cal.proba[te])), -1).numpy()
        assert np.allclose(undone, plain.proba[te], atol=1e-5)  # the same models, only divided by T_f


# --- the command line and predict --------------------------------------------------------------------

def test_cli_train_calibrate(tmp_path, monkeypatch):
    """--calibrate with the default protocol (no validation split): a fifth of the documents is held out of
    training, the temperature is fitted on it and stored in model.pt."""
    from test_evaluate import _fake_embeddings, _workspace

    from hilbert_cli.features import embed

    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    monkeypatch.setattr(embed, "backbone_fingerprint", lambda name, allow_download=False: f"fp-{name}")
    ws = _workspace(tmp_path, n=30)
    out = tmp_path / "cal.pt"
    res = CliRunner().invoke(app, ["train", "--task", "words", "--audio", "a1", "--text", "t1", "--configuration",
                                   "transfer", "--epochs", "3", "--calibrate", "-o", str(out), "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    c = calibration.from_checkpoint(load_checkpoint(out)[1])
    assert "calibrate: true" in res.output and f"Calibrated: temperature T = {c.temperature:.3g}" in res.output
    assert c.n_documents == 6  # a fifth of the 30 documents, whole subjects (calibration_fraction 0.2)


def test_calibrate_with_nothing_to_hold_out_is_one_sentence():
    A, T, y = synthetic_embeddings(6, 2, segments=(3, 4), d_audio=DA, d_text=DT, seed=1)
    with pytest.raises(DataError, match="train.calibrate: a training set is too small") as e:
        fit(cfg(**{"train.calibrate": True, "train.val_fraction": 0}), A, T, y, 2, groups=np.zeros(6, dtype=int))
    assert e.value.param == "train.calibrate"


def test_predict_says_whether_probabilities_are_calibrated():
    def result(c):
        return PredictResult("m.pt", "t", "hilbert", ["a", "b"], {}, "attention: α_j", [], [], 0.0, c)

    plain = result(None)
    assert not plain.calibrated and plain.probability_kind.startswith("not calibrated")
    t = Temperature(1.7, 12, 0.9, 0.6, False)
    cal = result(t)
    assert cal.calibrated and "T = 1.7" in cal.probability_kind and "12 held-out" in cal.probability_kind
    from hilbert_cli.predict import FilePrediction

    cal.predictions.append(FilePrediction("x.wav", "a", {"a": 0.7, "b": 0.3}))
    plain.predictions.append(FilePrediction("x.wav", "a", {"a": 0.7, "b": 0.3}))
    assert cal.to_json()[0]["calibrated"] is True and cal.to_json()[0]["temperature"] == 1.7
    assert plain.to_json()[0]["calibrated"] is False and plain.to_json()[0]["temperature"] is None


def test_cli_evaluate_reports_calibration(tmp_path, monkeypatch):
    """Brier, ECE and the per-fold temperatures in metrics.json, report.md and the terminal; a reliability diagram
    per task; with --calibrate each fold's probabilities are scaled on documents held out of its training part."""
    import csv
    import json

    from test_evaluate import _fake_embeddings, _workspace

    from hilbert_cli.evaluation.metrics import brier_score, expected_calibration_error
    from hilbert_cli.features import embed

    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)
    monkeypatch.setenv("COLUMNS", "200")
    ws = _workspace(tmp_path, n=24)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model:\n  d: 16\n  heads: 2\ntrain:\n  epochs: 4\n  batch_size: 8\n")
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--task", "words", "--config", "transfer", "--folds", "3", "--calibrate",
                              "--config-file", str(cfg_file), "--name", "cal", "--jobs", "1", "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    run = ws.runs_dir / "cal"
    m = json.loads((run / "metrics.json").read_text())
    report = (run / "report.md").read_text()
    assert "## Calibration" in report and "Calibration of the pooled out-of-fold probabilities" in res.output
    for task in ("words",):  # multi-class (a binary task takes the same path; its curve: tests/test_metrics.py)
        t = m[task]["transfer"]
        rows = [r for r in csv.DictReader((run / "oof_predictions.csv").read_text().splitlines()) if r["task"] == task]
        names = t["label_names"]
        y = np.array([names.index(r["label"]) for r in rows])
        p = np.array([[float(r[f"p[{n}]"]) for n in names] for r in rows])
        assert t["brier"] == pytest.approx(brier_score(y, p), abs=1e-5)
        assert t["ece"] == pytest.approx(expected_calibration_error(y, p), abs=1e-5)
        assert len(t["temperature_folds"]) == 3 and all(v > 0 for v in t["temperature_folds"])
        cell = f"{t['brier']:.3f} · {t['ece']:.3f} (T {float(np.median(t['temperature_folds'])):.2g})"
        assert cell in report and cell in res.output
        assert f"![Reliability diagram of {task}](reliability_{task}.png)" in report
        assert (run / f"reliability_{task}.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(run.glob(".*tmp"))
