"""Training, model.pt, and `hilbert train` on synthetic segment embeddings with a planted signal."""
import csv
import pickle

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from hilbert_cli.features import embed
from hilbert_cli.learn.checkpoint import FORMAT, checksum, load_checkpoint, read_checkpoint, save_checkpoint
from hilbert_cli.cli import app
from hilbert_cli.learn.config import CONFIGURATIONS, HilbertConfig, load_config
from hilbert_cli.learn.data import load_task_data, synthetic_embeddings
from hilbert_cli.errors import HilbertError
from hilbert_cli.evaluation.folds import inner_split
from hilbert_cli.evaluation.metrics import roc_auc
from hilbert_cli.learn.train import explain, fit, predict_proba, train_task
from hilbert_cli.workspace import Manifest, Workspace


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


DA, DT = 16, 12
FAST = {"model.d": 16, "model.heads": 2, "model.d_z": 16, "train.epochs": 3, "train.batch_size": 8, "train.val_fraction": 0.2}


def cfg(name="hilbert", **over):
    return load_config(None, {"configuration": name, **FAST, **over})


def test_fit_separates_planted_signal():
    A, T, y = synthetic_embeddings(140, 2, segments=(6, 14), d_audio=DA, d_text=DT, signal=0.8, seed=3)
    c = cfg(**{"model.d": 32, "train.epochs": 40, "train.patience": 10, "train.batch_size": 16})
    res = fit(c, A[:80], T[:80], y[:80], 2)
    auc = roc_auc(y[80:], predict_proba(res.model, A[80:], T[80:]))
    assert auc > 0.85, auc
    h = res.history
    assert h[res.best_epoch - 1]["val_loss"] == pytest.approx(min(r["val_loss"] for r in h), abs=1e-5)  # gains < 1e-6 do not count
    assert h[-1]["total"] < h[0]["total"]  # the training loss went down
    assert {"total", "ce", "con", "cka", "mi", "val_loss", "val_auc"} <= set(h[0])


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_every_configuration_trains(name):
    A, T, y = synthetic_embeddings(24, 3, segments=(3, 8), d_audio=DA, d_text=DT, seed=1)
    res = fit(cfg(name), A, T, y, 3)
    assert len(res.history) == 3
    for r in res.history:
        assert all(np.isfinite(r[k]) for k in ("total", "ce", "con", "cka", "mi", "val_loss"))
    if name == "hilbert":
        assert all(res.history[0][k] > 0 for k in ("con", "cka"))
    p = predict_proba(res.model, A, T)
    assert p.shape == (24, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    ex = explain(res.model, A[:2], T[:2])
    if CONFIGURATIONS[name].uses_encoders:
        assert ex[0]["alpha_j"].shape == (len(A[0]),) and abs(ex[0]["alpha_a"].sum() - 1) < 1e-5


@pytest.mark.parametrize("losses", [["contrastive"], ["cka", "mi"], []])
def test_loss_ablations_train(losses):
    A, T, y = synthetic_embeddings(16, 2, segments=(3, 6), d_audio=DA, d_text=DT, seed=2)
    res = fit(cfg(**{"loss.losses": losses, "train.epochs": 1}), A, T, y, 2)
    r = res.history[0]
    assert (r["con"] > 0) == ("contrastive" in losses)
    assert (r["cka"] > 0) == ("cka" in losses)


def test_fit_is_deterministic_and_seeded():
    A, T, y = synthetic_embeddings(20, 2, segments=(3, 8), d_audio=DA, d_text=DT, seed=4)
    r1, r2 = fit(cfg(), A, T, y, 2), fit(cfg(), A, T, y, 2)
    assert r1.history == [dict(r, seconds=a["seconds"]) for r, a in zip(r2.history, r1.history)]
    assert np.array_equal(predict_proba(r1.model, A, T), predict_proba(r2.model, A, T))
    r3 = fit(cfg(**{"train.seed": 1}), A, T, y, 2)
    assert not np.array_equal(predict_proba(r1.model, A, T), predict_proba(r3.model, A, T))


def test_validation_split_is_grouped_and_stratified():
    A, T, y = synthetic_embeddings(40, 2, segments=(3, 5), d_audio=DA, d_text=DT, seed=5)
    groups = np.arange(40) // 2  # two documents per subject
    res = fit(cfg(**{"train.epochs": 1}), A, T, y, 2, groups=groups)
    assert not set(groups[res.fit_index]) & set(groups[res.val_index])
    assert set(y[res.val_index]) == {0, 1} and len(res.val_index) + len(res.fit_index) == 40



def test_validation_split_of_a_small_grouped_fold_with_only_small_classes():
    """Every class smaller than the 5 inner splits (a 3-fold CV training fold of a 16-document corpus)."""
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
    groups = np.arange(11) // 2
    fit_idx, val_idx = inner_split(y, groups, seed=0, val_fraction=0.2)
    assert len(fit_idx) + len(val_idx) == 11 and len(val_idx) > 0
    assert not set(groups[fit_idx]) & set(groups[val_idx])


def test_tiny_task_with_one_document_per_class_in_training_still_trains():
    A, T, y = synthetic_embeddings(5, 3, segments=(2, 4), d_audio=DA, d_text=DT, seed=6)
    res = fit(cfg(), A, T, y, 3)
    assert np.isfinite(predict_proba(res.model, A, T)).all()


def _save(model_cfg, tmp_path, name="m.pt"):
    A, T, y = synthetic_embeddings(12, 2, segments=(3, 6), d_audio=DA, d_text=DT, seed=7)
    res = fit(model_cfg, A, T, y, 2)
    path = save_checkpoint(tmp_path / name, res.model, config=model_cfg, task="dep", label_names=["no", "yes"],
                           audio="whisper-tiny", text="minilm", d_audio=DA, d_text=DT,
                           segmentation={"target_words": 17}, fingerprints={"audio": "fa", "text": "ft"})
    return path, res, A, T


@pytest.mark.parametrize("name", ["hilbert", "transfer-moe"])
def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, name):
    c = cfg(name, **{"model.top_k": 3})
    path, res, A, T = _save(c, tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["label_names"] == ["no", "yes"]
    model, meta = load_checkpoint(path)
    assert np.array_equal(predict_proba(model, A, T), predict_proba(res.model, A, T))
    assert meta["task"] == "dep" and meta["segmentation"] == {"target_words": 17}
    assert meta["backbones"]["audio"] == {"name": "whisper-tiny", "fingerprint": "fa"}
    assert HilbertConfig.from_dict(meta["config"]).to_dict() == c.to_dict()
    assert meta["input_dims"] == {"d_audio": DA, "d_text": DT, "n_classes": 2}


def test_model_file_from_before_a_setting_loads_as_it_was_trained(tmp_path):
    """A file written before model.pool_scores and model.positions existed was trained with pool scores on the
    context and no position pooling: it must load that way (and predict what it predicted), not with today's defaults."""
    c = cfg("hilbert", **{"model.pool_scores": "context", "model.positions": 0})
    path, res, A, T = _save(c, tmp_path)
    old = torch.load(path, weights_only=True)
    del old["config"]["model"]["pool_scores"], old["config"]["model"]["positions"]
    old["checksum"] = checksum(old)
    torch.save(old, tmp_path / "before.pt")
    model, meta = load_checkpoint(tmp_path / "before.pt")
    assert meta["config"]["model"]["pool_scores"] == "context" != HilbertConfig().model.pool_scores
    assert meta["config"]["model"]["positions"] == 0 != HilbertConfig().model.positions
    assert np.array_equal(predict_proba(model, A, T), predict_proba(res.model, A, T))


def test_model_file_with_an_earlier_position_pooling_layout_is_refused_in_one_line(tmp_path):
    """model.positions once read the raw features (weights pos_pool.audio / pos_pool.text), then pooled
    LayerNormed detectors (pos_pool.detect), each computing something else from its weights: such a file must say
    to re-train, not load half its weights, run them in the wrong formula or print a state-dict dump."""
    path, *_ = _save(cfg("hilbert", **{"model.positions": 2}), tmp_path)
    earlier = {
        "raw": lambda sd: {"pos_pool.audio.weight": sd.pop("pos_pool.focus.weight")[:, :DA],
                           "pos_pool.audio.bias": sd.pop("pos_pool.focus.bias")},
        "layernormed": lambda sd: {"pos_pool.detect.weight": sd.pop("pos_pool.focus.weight"),
                                   "pos_pool.detect.bias": sd.pop("pos_pool.focus.bias")},
    }
    for name, rename in earlier.items():
        old = torch.load(path, weights_only=True)
        old["state_dict"].update(rename(old["state_dict"]))
        old["checksum"] = checksum(old)
        torch.save(old, tmp_path / f"{name}.pt")
        with pytest.raises(HilbertError, match="re-train it") as e:
            load_checkpoint(tmp_path / f"{name}.pt")
        assert "\n" not in str(e.value) and "pos_pool.focus.weight" in str(e.value), (name, str(e.value))
    resized = torch.load(path, weights_only=True)
    resized["state_dict"]["pos_pool.focus.weight"] = resized["state_dict"]["pos_pool.focus.weight"][:, :-1]
    resized["checksum"] = checksum(resized)
    torch.save(resized, tmp_path / "resized.pt")
    with pytest.raises(HilbertError, match="re-train it") as e:
        load_checkpoint(tmp_path / "resized.pt")
    assert "\n" not in str(e.value) and "size mismatch" in str(e.value), str(e.value)


def test_model_file_with_the_earlier_interaction_pooling_is_refused_in_one_line(tmp_path):
    """model.interaction once read the raw features (weights interaction.audio / interaction.text, (F, d_in, r));
    it now reads the projected segments (interaction.u / interaction.v, (F, d, r)): such a file must say to
    re-train, whatever its feature widths."""
    path, *_ = _save(cfg("hilbert", **{"model.interaction": 3}), tmp_path)
    old = torch.load(path, weights_only=True)
    sd = old["state_dict"]
    for new, was, width in (("u", "audio", DA), ("v", "text", DT)):
        sd[f"interaction.{was}.weight"] = torch.zeros(1, width, 3)
        sd[f"interaction.{was}.bias"] = sd.pop(f"interaction.{new}.bias")
        del sd[f"interaction.{new}.weight"]
    old["checksum"] = checksum(old)
    torch.save(old, tmp_path / "earlier.pt")
    with pytest.raises(HilbertError, match="re-train it") as e:
        load_checkpoint(tmp_path / "earlier.pt")
    assert "\n" not in str(e.value) and "interaction." in str(e.value), str(e.value)


class Payload:
    """Unpickling this would create the marker file: the attack a model file must not enable."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_tampered_checkpoint_is_refused_without_running_it(tmp_path):
    path, *_ = _save(cfg("transfer"), tmp_path)
    marker = tmp_path / "pwned"
    payload = torch.load(path, weights_only=True)
    payload["extra"] = {"x": Payload(marker)}
    evil = tmp_path / "evil.pt"
    torch.save(payload, evil)
    raw = tmp_path / "evil.pkl.pt"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    for p in (evil, raw):
        with pytest.raises(HilbertError, match="refused to load"):
            load_checkpoint(p)
    assert not marker.exists()
    with pytest.raises(HilbertError, match="pickled objects") as e:
        read_checkpoint(evil)
    assert "\n" not in str(e.value)


def test_non_model_and_newer_files_are_refused(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(HilbertError, match="not a readable hilbert model file"):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(HilbertError, match="not a hilbert model file"):
        load_checkpoint(tmp_path / "other.pt")
    path, *_ = _save(cfg("transfer"), tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(HilbertError, match="newer than this hilbert-cli"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(HilbertError, match="no such model file"):
        load_checkpoint(tmp_path / "missing.pt")


# --- a workspace task ---------------------------------------------------------------------------

@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A workspace with a labelled manifest; embeddings come from a stand-in for the embed stage."""
    A, T, y = synthetic_embeddings(30, 2, segments=(3, 7), d_audio=DA, d_text=DT, signal=1.0, seed=8)
    names = ["control", "case"]
    docs = {}
    vectors = {}
    for i in range(30):
        d = f"P{i:03d}"
        docs[d] = {"audio": f"{d}.wav", "audio_sha256": "0", "subject": f"S{i // 2}",
                   "labels": {"dx": names[y[i]], "sev": str([1, 10, 2][i % 3]) if i < 29 else ""}}
        vectors[d] = (A[i], T[i])
    docs["P000"]["labels"]["dx"] = ""  # not labelled for dx: left out of that task
    ws = Workspace(tmp_path / "ws")
    ws.write_manifest(Manifest(str(tmp_path), docs, ["dx", "sev", "rare"], {"target_words": 17}))
    calls = []

    def fake_document_embeddings(workspace, doc_ids, audio, text, **kw):
        calls.append((audio, text, list(doc_ids)))
        return {d: vectors[d] for d in doc_ids}

    monkeypatch.setattr(embed, "document_embeddings", fake_document_embeddings)
    monkeypatch.setattr(embed, "backbone_fingerprint", lambda name, allow_download=False: f"fp-{name}")
    return ws, calls


def test_load_task_data_orders_labels_and_skips_unlabelled(workspace):
    ws, calls = workspace
    data = load_task_data(ws, "sev", "a", "t")
    assert data.label_names == ["1", "2", "10"] and len(data.doc_ids) == 29
    data = load_task_data(ws, "dx", "a", "t")
    assert data.label_names == ["case", "control"] and "P000" not in data.doc_ids
    assert calls[-1] == ("a", "t", data.doc_ids)
    m = ws.load_manifest()
    m.documents["P001"]["labels"]["rare"] = "x"
    for d in list(m.documents)[2:]:
        m.documents[d]["labels"]["rare"] = "y"
    ws.write_manifest(m)
    with pytest.raises(HilbertError, match="'x' \\(1\\)"):
        load_task_data(ws, "rare", "a", "t")


def test_train_task_writes_model_and_side_files(workspace, tmp_path):
    ws, _ = workspace
    c = cfg(**{"train.epochs": 4})
    r = train_task(ws, "dx", "whisper-tiny", "minilm", c, tmp_path / "out" / "dx.pt")
    for p in (r.model_path, r.losses_csv, r.losses_png, r.config_yaml):
        assert p.exists() and p.stat().st_size > 0
    assert r.losses_csv.name == "dx.losses.csv" and r.losses_png.read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(r.losses_csv.open()))
    assert len(rows) == r.epochs_run == 4 and float(rows[0]["ce"]) > 0
    assert HilbertConfig.from_dict(yaml.safe_load(r.config_yaml.read_text())).to_dict() == c.to_dict()
    model, meta = load_checkpoint(r.model_path)
    assert meta["label_names"] == ["case", "control"] and meta["task"] == "dx"
    assert meta["backbones"]["text"] == {"name": "minilm", "fingerprint": "fp-minilm"}
    assert meta["segmentation"] == {"target_words": 17} and meta["extra"]["n_documents"] == 29
    assert not list(r.model_path.parent.glob(".*tmp"))  # atomic writes left no temp files


def test_train_task_with_clap_embeds_with_the_clap_backbones(workspace, tmp_path):
    ws, calls = workspace
    r = train_task(ws, "dx", "whisper-tiny", "minilm", cfg("clap", **{"train.epochs": 1}), tmp_path / "clap.pt")
    assert calls[-1][:2] == ("clap", "clap")
    _, meta = load_checkpoint(r.model_path)
    assert meta["backbones"]["audio"]["name"] == meta["backbones"]["text"]["name"] == "clap"


def test_cli_train(workspace, tmp_path):
    ws, _ = workspace
    out = tmp_path / "cli.pt"
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model:\n  d: 16\n  heads: 2\ntrain:\n  epochs: 5\n")
    res = CliRunner().invoke(app, ["train", "--task", "dx", "--config", str(cfg_file), "--configuration", "transfer",
                                   "--epochs", "2", "-o", str(out), "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert "resolved config" in res.output and "configuration: transfer" in res.output and str(out) in res.output
    _, meta = load_checkpoint(out)
    assert meta["config"]["train"]["epochs"] == 2 and meta["config"]["model"]["d"] == 16
    res = CliRunner().invoke(app, ["train", "--task", "dx", "--losses", "cka,kl", "-w", str(ws.root)])
    assert res.exit_code == 1 and "kl" in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_model_trained_on_demo_corpus_separates_its_labels(tmp_path):
    """End to end through real frozen features: demo-data -> segment -> train (embeds on demand) ->
    model.pt -> predictions that separate the voice-only and the words-only label of the corpus."""
    from hilbert_cli.demo.corpus import make_demo_corpus
    from hilbert_cli.corpus.segment import SegmentSettings, segment_corpus

    make_demo_corpus(tmp_path / "corpus", n_docs=24, seed=0, min_seconds=15, max_seconds=25)
    ws = Workspace(tmp_path / "ws")
    segment_corpus(tmp_path / "corpus", ws, SegmentSettings())
    c = load_config(None, {"train.val_fraction": 0.0, "train.epochs": 60})
    for task in ("prosody", "mood"):
        r = train_task(ws, task, "whisper-tiny", "minilm", c, tmp_path / f"{task}.pt")
        model, meta = load_checkpoint(r.model_path)
        data = load_task_data(ws, task, "whisper-tiny", "minilm")
        assert meta["label_names"] == data.label_names
        assert roc_auc(data.y, predict_proba(model, data.A, data.T)) > 0.8, task  # 0.98 and 0.93 here; chance is 0.5


def test_fit_restores_the_thread_setting():
    A, T, y = synthetic_embeddings(8, 2, segments=(2, 4), d_audio=DA, d_text=DT, seed=9)
    torch.set_num_threads(2)
    seen = []
    fit(cfg("transfer", **{"train.epochs": 1}), A, T, y, 2, threads=1, progress=lambda *a: seen.append(torch.get_num_threads()))
    assert seen == [1] and torch.get_num_threads() == 2


def test_checkpoint_stores_a_local_backbone_folder_as_an_absolute_path(tmp_path, monkeypatch):
    """A relative model folder given to `train` must still be found when `predict` runs elsewhere."""
    from hilbert_cli.learn.checkpoint import _portable_backbone

    (tmp_path / "my-encoder").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _portable_backbone("my-encoder") == str((tmp_path / "my-encoder").resolve())
    assert _portable_backbone("minilm") == "minilm"  # an alias stays an alias
    assert _portable_backbone("org/model-id") == "org/model-id"  # a hub id is not a local path


def test_damaged_model_files_are_refused_in_one_line(tmp_path):
    """A flipped byte, a NaN weight or an edited label list: 'damaged model file', never a silent prediction."""
    from hilbert_cli.errors import ModelFileError

    path, *_ = _save(cfg("hilbert"), tmp_path)
    load_checkpoint(path)  # intact
    raw = bytearray(path.read_bytes())
    payload = torch.load(path, weights_only=True)
    # flip one byte inside a weight tensor's data (the largest tensor's bytes are in the file as they are)
    big = max(payload["state_dict"].values(), key=lambda t: t.numel())
    needle = big.contiguous().view(torch.uint8).numpy().tobytes()[:64]
    at = bytes(raw).find(needle)
    assert at > 0
    raw[at + 7] ^= 0x10
    (tmp_path / "flipped.pt").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="damaged model file") as e:
        load_checkpoint(tmp_path / "flipped.pt")
    assert "\n" not in str(e.value)
    nan = torch.load(path, weights_only=True)
    next(iter(nan["state_dict"].values())).view(-1)[0] = float("nan")
    torch.save(nan, tmp_path / "nan.pt")
    with pytest.raises(ModelFileError, match="damaged model file"):
        load_checkpoint(tmp_path / "nan.pt")
    edited = torch.load(path, weights_only=True)
    edited["label_names"] = list(reversed(edited["label_names"]))
    torch.save(edited, tmp_path / "edited.pt")
    with pytest.raises(ModelFileError, match="checksum"):
        load_checkpoint(tmp_path / "edited.pt")
    old = torch.load(path, weights_only=True)
    old["format_version"] = 1
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ModelFileError, match="older hilbert-cli"):
        load_checkpoint(tmp_path / "old.pt")
