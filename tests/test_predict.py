"""`hilbert predict`: a model trained (train_task) on a tiny spoken corpus synthesised here with eSpeak NG,
segmented and embedded with the default bundled backbones (whisper-tiny + minilm), then used on new
recordings: labels, probabilities, top segments, --json, --explain, folders, and every failure mode."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from hilbert_cli.features import encoders
from hilbert_cli.corpus.audio import SAMPLE_RATE
from hilbert_cli.learn.checkpoint import load_checkpoint, read_checkpoint
from hilbert_cli.cli import app
from hilbert_cli.learn.config import load_config
from hilbert_cli.features.embed import embed_document
from hilbert_cli.errors import HilbertError
from hilbert_cli.predict import EXPLAIN_COLUMNS, expand_inputs, predict_files
from hilbert_cli.corpus.segment import SegmentSettings, segment_corpus, segment_recording
from hilbert_cli.learn.train import predict_proba, train_task
from hilbert_cli.demo.tts import synthesize
from hilbert_cli.workspace import Workspace

SENTENCES = {
    "happy": ["I feel happy and calm today.", "The garden looks lovely in the sun.", "We laughed a lot at dinner."],
    "sad": ["I feel tired and sad today.", "Nothing seems to matter much anymore.", "I stayed in bed all morning."],
}
QUESTION = "How have you been this week?"
FAST = {"model.d": 16, "model.heads": 2, "model.d_z": 16, "train.epochs": 3, "train.batch_size": 4,
        "train.val_fraction": 0.0}


def speak(path, sentences, transcript: bool, pitch: int = 50):
    """Write `sentences` as one recording (0.4 s pauses); with a timed .json transcript beside it if asked."""
    pieces, cues, t = [], [], 0.3
    pieces.append(np.zeros(int(t * SAMPLE_RATE), np.float32))
    for text in sentences:
        audio, _ = synthesize(text, pitch=pitch)
        cues.append({"start": round(t, 3), "end": round(t + len(audio) / SAMPLE_RATE, 3), "text": text})
        pause = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
        pieces += [audio, pause]
        t += (len(audio) + len(pause)) / SAMPLE_RATE
    sf.write(path, np.concatenate(pieces), SAMPLE_RATE)
    if transcript:
        path.with_suffix(".json").write_text(json.dumps(cues))
    return t


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HILBERT_WORKSPACE", raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model.pt, workspace, folder of new recordings): 6 labelled documents, 3 new ones."""
    root = tmp_path_factory.mktemp("predict")
    corpus, new = root / "corpus", root / "new"
    corpus.mkdir()
    new.mkdir()
    rows = ["id,subject,mood"]
    for i in range(6):
        mood = ("happy", "sad")[i % 2]
        speak(corpus / f"D{i}.wav", [QUESTION] + SENTENCES[mood][i % 3:] + SENTENCES[mood][:i % 3], transcript=True)
        rows.append(f"D{i},S{i},{mood}")
    (corpus / "labels.csv").write_text("\n".join(rows) + "\n")
    ws = Workspace(root / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(target_words=6))
    assert not r.failed, r.problems
    cfg = load_config(None, FAST)
    model = train_task(ws, "mood", "whisper-tiny", "minilm", cfg, root / "model.pt").model_path
    speak(new / "N1.wav", [QUESTION] + SENTENCES["happy"], transcript=True)
    speak(new / "N2.wav", SENTENCES["sad"][:2], transcript=False)  # transcribed by the bundled ASR
    speak(new / "N3.wav", [QUESTION, SENTENCES["sad"][2]], transcript=True, pitch=30)
    (new / "sub").mkdir()  # subfolders and hidden files are not recordings
    (new / "sub" / "X.wav").write_bytes((new / "N1.wav").read_bytes())
    (new / ".hidden.wav").write_bytes(b"not audio")
    return model, ws, new


def test_predictions_match_the_model_and_explain_its_attention(trained):
    model, ws, new = trained
    r = predict_files(model, [new / "N1.wav", new / "N2.wav"], workspace=ws)
    assert not r.failed and r.task == "mood" and r.label_names == ["happy", "sad"]
    assert r.configuration == "hilbert" and r.weighting.startswith("attention")
    net, meta = load_checkpoint(model)
    for p in r.predictions:
        assert p.label in r.label_names and list(p.probabilities) == r.label_names
        assert sum(p.probabilities.values()) == pytest.approx(1, abs=1e-6)
        assert p.label == max(p.probabilities, key=p.probabilities.get)
        # the same numbers as segmenting, embedding and classifying by hand
        doc = segment_recording(p.file, meta["segmentation"], cache_dir=ws.transcripts_dir)
        A, T = embed_document(doc, "whisper-tiny", "minilm", cache_dir=ws.embeddings_dir)
        assert np.allclose(predict_proba(net, [A], [T])[0], list(p.probabilities.values()), atol=1e-6)
        assert [s.text for s in p.segments] == [s.text for s in doc.segments] and len(p.segments) >= 2
        # weight = α_j: non-negative, sums to 1; α_a and α_t sum to 1 too
        for key in ("weight", "weight_audio", "weight_text", "weight_joint"):
            assert sum(getattr(s, key) for s in p.segments) == pytest.approx(1, abs=1e-5)
        assert all(s.weight == s.weight_joint >= 0 for s in p.segments)
        top = p.top_segments
        assert len(top) == min(3, len(p.segments))
        # ranked by occlusion: the drop of the predicted class's probability without the segment
        assert [s.occlusion for s in top] == sorted((s.occlusion for s in p.segments), reverse=True)[:len(top)]
        k = p.top_segments[0].index
        without = predict_proba(net, [np.delete(A, k, axis=0)], [np.delete(T, k, axis=0)])[0]
        c = list(p.probabilities).index(p.label)
        assert p.top_segments[0].occlusion == pytest.approx(p.probabilities[p.label] - without[c], abs=1e-5)
        assert all(0 <= s.start < s.end <= p.duration + 1e-6 for s in p.segments)
    assert r.predictions[0].segments[0].source == "transcript"
    assert r.predictions[1].segments[0].source == "asr"


def test_second_predict_loads_no_model(trained, monkeypatch):
    model, ws, new = trained
    first = predict_files(model, [new / "N3.wav"], workspace=ws)
    built = []
    real = encoders.load_encoder
    monkeypatch.setattr(encoders, "load_encoder", lambda resolved, **kw: built.append(resolved) or real(resolved, **kw))
    again = predict_files(model, [new / "N3.wav"], workspace=ws)
    assert built == [] and again.to_json() == first.to_json()


def test_cli_folder_json_and_explain(trained, tmp_path):
    model, ws, new = trained
    out, expl = tmp_path / "out" / "pred.json", tmp_path / "seg.csv"
    res = CliRunner().invoke(app, ["predict", str(model), str(new), "--json", str(out), "--explain", str(expl),
                                   "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    for name in ("N1.wav", "N2.wav", "N3.wav", "p(happy)", "p(sad)", "weight"):
        assert name in res.output
    assert "X.wav" not in res.output and "hidden" not in res.output
    records = json.loads(out.read_text())
    assert [r["file"].rsplit("/", 1)[-1] for r in records] == ["N1.wav", "N2.wav", "N3.wav"]
    for r in records:
        assert {"file", "label", "probabilities", "top_segments"} <= set(r) and r["error"] is None
        assert r["weight_kind"] == "attention"
        assert r["label"] in ("happy", "sad") and sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-6)
        assert 1 <= len(r["top_segments"]) <= 3
        for s in r["top_segments"]:
            assert set(s) == {"start", "end", "text", "occlusion", "weight"} and s["text"] and 0 <= s["start"] < s["end"]
        drops = [s["occlusion"] for s in r["top_segments"]]
        assert drops == sorted(drops, reverse=True)
    rows = list(csv.DictReader(expl.open()))
    assert tuple(rows[0]) == EXPLAIN_COLUMNS
    assert len(rows) == sum(r["n_segments"] for r in records)
    for rec in records:
        mine = [row for row in rows if row["file"] == rec["file"]]
        assert sum(float(row["weight_text"]) for row in mine) == pytest.approx(1, abs=1e-4)
        assert max(float(row["occlusion"]) for row in mine) == pytest.approx(rec["top_segments"][0]["occlusion"], abs=1e-5)


def test_a_bad_file_fails_alone(trained, tmp_path):
    model, ws, new = trained
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF but not really a wav file")
    out = tmp_path / "pred.json"
    res = CliRunner().invoke(app, ["predict", str(model), str(new / "N1.wav"), str(broken), str(tmp_path / "gone.wav"),
                                   str(new / "N3.wav"), "--json", str(out), "-w", str(ws.root)])
    assert res.exit_code == 1
    assert "broken.wav" in res.output and "gone.wav" in res.output and "2 of 4 file(s)" in res.output
    records = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(out.read_text())}
    assert records["N1.wav"]["label"] in ("happy", "sad") and records["N3.wav"]["error"] is None
    assert records["broken.wav"]["label"] is None and "cannot read audio" in records["broken.wav"]["error"]
    assert "no such file" in records["gone.wav"]["error"]


def _rewrite(model, tmp_path, name, change):
    """A model file as `hilbert train` would have written it with different contents (checksum recomputed)."""
    from hilbert_cli.learn.checkpoint import checksum

    payload = torch.load(model, weights_only=True)
    change(payload)
    if "checksum" in payload:
        payload["checksum"] = checksum(payload)
    path = tmp_path / name
    torch.save(payload, path)
    return path


def test_model_problems_are_one_sentence_each(trained, tmp_path):
    model, ws, new = trained
    wav = new / "N1.wav"
    newer = _rewrite(model, tmp_path, "newer.pt", lambda p: p.update(format_version=99))
    with pytest.raises(HilbertError, match="newer than this hilbert-cli"):
        predict_files(newer, [wav], workspace=ws)
    junk = tmp_path / "notes.pt"
    junk.write_text("these are my notes, not a model")
    with pytest.raises(HilbertError, match="not a readable hilbert model"):
        predict_files(junk, [wav], workspace=ws)
    gone = tmp_path / "moved-away" / "tiny-sbert"
    moved = _rewrite(model, tmp_path, "moved.pt", lambda p: p["backbones"]["text"].update(name=str(gone)))
    with pytest.raises(HilbertError, match=r"text backbone at .*moved-away.*not on this machine") as e:
        predict_files(moved, [wav], workspace=ws)
    assert str(e.value).count(". ") == 0  # one sentence
    hub = _rewrite(model, tmp_path, "hub.pt", lambda p: p["backbones"]["text"].update(name="tinybert"))
    with pytest.raises(HilbertError, match="trained with the text backbone 'tinybert', but the weights .* --allow-download"):
        predict_files(hub, [wav], workspace=ws)
    # through the CLI entry point: one line, exit 1
    res = CliRunner().invoke(app, ["predict", str(junk), str(wav), "-w", str(ws.root)])
    assert res.exit_code == 1 and "error:" in res.output and "Traceback" not in res.output


def test_other_backbone_weights_warn(trained, tmp_path):
    model, ws, new = trained
    other = _rewrite(model, tmp_path, "other.pt", lambda p: p["backbones"]["audio"].update(fingerprint="0" * 32))
    r = predict_files(other, [new / "N3.wav"], workspace=ws)
    assert not r.failed and len(r.warnings) == 1 and "audio backbone 'whisper-tiny'" in r.warnings[0]
    assert "fingerprint" in r.warnings[0]
    assert read_checkpoint(model)["backbones"]["audio"]["fingerprint"] != "0" * 32


def test_transfer_models_weigh_segments_uniformly(trained, tmp_path):
    model, ws, new = trained
    cfg = load_config(None, {**FAST, "configuration": "text-only"})
    path = train_task(ws, "mood", "whisper-tiny", "minilm", cfg, tmp_path / "text.pt").model_path
    r = predict_files(path, [new / "N1.wav"], workspace=ws)
    p = r.predictions[0]
    n = len(p.segments)
    assert r.weight_kind == "uniform" and "text-only" in r.weighting and r.to_json()[0]["weight_kind"] == "uniform"
    assert all(s.weight == pytest.approx(1 / n) and s.weight_text == pytest.approx(1 / n) for s in p.segments)
    assert all(s.weight_audio is None and s.weight_joint is None for s in p.segments)
    # uniform weights, but occlusion still ranks the segments
    assert [s.occlusion for s in p.top_segments] == sorted((s.occlusion for s in p.segments), reverse=True)[:min(3, n)]


def test_expand_inputs(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    (tmp_path / "b.FLAC").write_bytes(b"x")
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.wav").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    got = expand_inputs([tmp_path, tmp_path / "a.wav", tmp_path / "a.txt", tmp_path / "empty", tmp_path / "nope.wav"])
    names = [(p.name, problem is None) for p, problem in got]
    assert names == [("a.wav", True), ("b.FLAC", True), ("a.txt", False), ("empty", False), ("nope.wav", False)]
    with pytest.raises(HilbertError, match="no recordings"):
        expand_inputs([])


def test_predict_applies_and_reports_the_models_calibration(trained, tmp_path):
    """A model trained with train.calibrate: its temperature divides the logits, and the table and JSON say so."""
    model, ws, new = trained
    wav = new / "N1.wav"
    plain = predict_files(model, [wav], workspace=ws)
    assert not plain.calibrated and plain.to_json()[0]["calibrated"] is False
    cal = {"temperature": 2.0, "n_documents": 5, "nll_before": 0.9, "nll_after": 0.7, "at_bound": False,
           "method": "temperature"}
    scaled = _rewrite(model, tmp_path, "cal.pt", lambda p: p.update(calibration=cal))
    r = predict_files(scaled, [wav], workspace=ws)
    raw = np.array(list(plain.predictions[0].probabilities.values()))
    expected = torch.softmax(torch.as_tensor(np.log(raw)) / 2.0, -1).numpy()
    assert np.allclose(list(r.predictions[0].probabilities.values()), expected, atol=1e-5)
    assert r.predictions[0].label == plain.predictions[0].label
    assert r.calibrated and r.to_json()[0]["calibrated"] is True and r.to_json()[0]["temperature"] == 2.0
    res = CliRunner().invoke(app, ["predict", str(scaled), str(wav), "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert "calibrated by temperature scaling (T = 2, fitted on 5 held-out" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["predict", str(model), str(wav), "-w", str(ws.root)])
    assert "probabilities: not calibrated" in " ".join(res.output.split())
