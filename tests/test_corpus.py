"""Corpus reading and the per-document problems of `segment`: each bad input gets one line that
names the file, the rest of the corpus still goes through, and the input folder is never written to.

These corpora use timed transcripts, so no ASR runs here."""
import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from hilbert_cli.corpus.reading import read_corpus
from hilbert_cli.errors import HilbertError
from hilbert_cli.corpus.segment import SegmentSettings, segment_corpus
from hilbert_cli.workspace import Workspace


def write_audio(path, seconds=4.0, rate=22050, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(path, np.stack([tone] * channels, axis=1) if channels > 1 else tone, rate)


def write_cues(path, cues):
    path.write_text(json.dumps([{"start": s, "end": e, "text": t} for s, e, t in cues]))


def good_doc(root, doc_id, ext=".wav", **kw):
    write_audio(root / f"{doc_id}{ext}", **kw)
    write_cues(root / f"{doc_id}.json", [(0.2, 1.8, "hello there how are you"), (2.0, 3.6, "fine thanks.")])


def snapshot(root):
    return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_layout_labels_subjects_and_tasks(tmp_path):
    good_doc(tmp_path, "P001")
    good_doc(tmp_path, "P002", ext=".flac", channels=2, rate=44100)
    (tmp_path / "P003.wav").write_bytes(b"")  # present, so it is a document (its problem shows later)
    (tmp_path / "notes.md").write_text("not part of the corpus")
    (tmp_path / ".DS_Store").write_text("hidden")
    # semicolons (European Excel), a BOM, an NA cell, an empty cell, word and number labels
    (tmp_path / "labels.csv").write_text(
        "\ufeffid;Subject;depression;score\nP001;S1;yes;3\nP002;S1;;NA\nP003;;no;1\n", encoding="utf-8")
    c = read_corpus(tmp_path)
    assert c.problems == [] and c.has_labels
    assert c.tasks == ["depression", "score"]
    docs = {d.doc_id: d for d in c.documents}
    assert sorted(docs) == ["P001", "P002", "P003"]
    assert docs["P001"].labels == {"depression": "yes", "score": "3"} and docs["P001"].subject == "S1"
    assert docs["P002"].labels == {"depression": None, "score": None}
    assert docs["P003"].subject is None and docs["P003"].transcript is None
    assert docs["P002"].transcript.name == "P002.json"


def test_corpus_level_problems_are_one_line_each(tmp_path):
    good_doc(tmp_path, "OK1")
    write_audio(tmp_path / "NOROW.wav")
    (tmp_path / "ORPHAN.txt").write_text("a transcript without audio")
    write_audio(tmp_path / "TWICE.wav")
    write_audio(tmp_path / "TWICE.flac")
    write_audio(tmp_path / "DUPROW.wav")
    write_audio(tmp_path / "TWOTX.wav")
    (tmp_path / "TWOTX.txt").write_text("one")
    (tmp_path / "TWOTX.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\ntwo\n")
    (tmp_path / "labels.csv").write_text(
        "id,task\nOK1,a\nTWICE,a\nDUPROW,a\nDUPROW,b\nTWOTX,a\nGHOST,b\n")
    c = read_corpus(tmp_path)
    assert [d.doc_id for d in c.documents] == ["OK1"]
    text = "\n".join(c.problems)
    assert len(c.problems) == 6, text
    assert "ORPHAN.txt: transcript without audio" in text
    assert "line 7: id 'GHOST' has no audio" in text
    assert "NOROW.wav: no row with id 'NOROW'" in text
    assert "TWICE: duplicate id: several audio files (TWICE.flac, TWICE.wav)" in text
    assert "duplicate id 'DUPROW' on lines 4, 5" in text
    assert "TWOTX: several transcripts" in text


def test_without_labels_csv_documents_have_no_tasks(tmp_path):
    good_doc(tmp_path, "P001")
    c = read_corpus(tmp_path)
    assert not c.has_labels and c.tasks == [] and [d.doc_id for d in c.documents] == ["P001"]
    r = segment_corpus(tmp_path, Workspace(tmp_path.parent / (tmp_path.name + "-ws")), SegmentSettings())
    assert not r.failed and any("no labels.csv" in w for w in r.warnings)


@pytest.mark.parametrize("setup,match", [
    (lambda r: None, "no audio files"),
    (lambda r: (write_audio(r / "a.wav"), (r / "labels.csv").write_text("name,x\na,1\n")), "no 'id' column"),
])
def test_corpus_wide_errors_raise(tmp_path, setup, match):
    setup(tmp_path)
    with pytest.raises(HilbertError, match=match):
        read_corpus(tmp_path)


def test_missing_folder_raises(tmp_path):
    with pytest.raises(HilbertError, match="no such folder"):
        read_corpus(tmp_path / "nope")


def test_document_problems_do_not_stop_the_rest(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good_doc(corpus, "GOOD")
    (corpus / "EMPTY.wav").write_bytes(b"")  # 0 bytes: its own message
    sf.write(corpus / "ZERO.wav", np.zeros(0, dtype=np.float32), 16000)  # a valid file with no samples
    write_audio(corpus / "BADTX.wav")
    (corpus / "BADTX.txt").write_bytes(b"\xff\xfe\x00\xd8")  # UTF-16 BOM, then a lone surrogate
    write_audio(corpus / "LATE.wav", seconds=4.0)
    write_cues(corpus / "LATE.json", [(0.5, 1.5, "fine"), (3.0, 9.0, "this cue runs past the end")])
    write_audio(corpus / "EDGE.wav", seconds=4.0)
    write_cues(corpus / "EDGE.json", [(0.5, 1.5, "fine"), (3.0, 4.3, "ends just after the audio")])
    (corpus / "labels.csv").write_text("id,t\nGOOD,a\nEMPTY,b\nZERO,a\nBADTX,b\nLATE,a\nEDGE,b\n")
    before = snapshot(corpus)

    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings())

    assert snapshot(corpus) == before  # the input folder is never written to
    assert sorted(d.doc_id for d in r.documents) == ["EDGE", "GOOD"]
    text = "\n".join(r.problems)
    assert r.failed and len(r.problems) == 4, text
    assert "EMPTY.wav: empty file (0 bytes)" in text
    assert "ZERO.wav: the audio is empty" in text
    assert "BADTX.txt: cannot decode" in text
    assert "LATE.json: cue 'this cue runs past the end' at 3.00-9.00 s runs past the end of the audio (4.00 s)" in text
    # within the tolerance the cue is clipped to the audio
    edge = ws.load_doc("EDGE")
    assert edge.segments[-1].end == pytest.approx(4.0, abs=1e-3)
    manifest = ws.load_manifest()
    assert sorted(manifest.documents) == ["EDGE", "GOOD"] and manifest.tasks == ["t"]
    assert manifest.task_labels("t") == {"EDGE": "b", "GOOD": "a"}


def test_workspace_inside_the_corpus_is_refused(tmp_path):
    good_doc(tmp_path, "P001")
    with pytest.raises(HilbertError, match="inside the corpus folder"):
        segment_corpus(tmp_path, Workspace(tmp_path / "hilbert-work"), SegmentSettings())
    assert not (tmp_path / "hilbert-work").exists()
