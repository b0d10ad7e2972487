"""`hilbert demo-data`: the corpus layout, the designed ground truth, reproducibility, the CLI."""
import csv
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from hilbert_cli.demo import text as demo_text
from hilbert_cli.cli import app
from hilbert_cli.corpus.reading import read_corpus
from hilbert_cli.demo.corpus import (CONGRUENCE, CONGRUENT_MANNER, MANNER, NEW_DIR, NEW_TRANSCRIPTS, PROSODY,
                                     REVEALING_SENTENCES, SPEAKERS, SPECTRUM, TASKS, DemoDoc, _sentence_voice, load_truth,
                                     make_demo_corpus, plan_corpus)
from hilbert_cli.errors import HilbertError
from hilbert_cli.corpus.transcripts import read_transcript

SMALL = dict(n_docs=8, seed=1, min_seconds=8, max_seconds=12)  # every class and format once, ~1.3 min of audio


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "corpus"
    calls = []
    result = make_demo_corpus(out, progress=lambda done, total: calls.append((done, total)), **SMALL)
    return out, result, calls


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_is_what_the_corpus_reader_expects(corpus):
    out, result, calls = corpus
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert list(rows[0]) == ["id", "subject", *TASKS]
    c = read_corpus(out)
    assert c.problems == [] and c.tasks == list(TASKS)
    assert sorted(d.doc_id for d in c.documents) == sorted(r["id"] for r in rows) and len(rows) == 8
    assert Counter(r["subject"] for r in rows) == {f"S0{i}": 2 for i in range(1, 5)}  # two interviews per subject
    assert calls == [(i, 8 + len(NEW_TRANSCRIPTS)) for i in range(1, 9 + len(NEW_TRANSCRIPTS))]  # + the new recordings
    assert result.n_docs == 8 and (out / "README.md").is_file()



def test_new_recordings_for_predict(corpus):
    """DIR/new: one unlabelled interview per spectrum class, with and without transcripts, outside the corpus."""
    out, result, _ = corpus
    new = load_truth(out, new=True)
    assert result.n_new == len(new) == len(NEW_TRANSCRIPTS)
    assert sorted(d["labels"]["spectrum"] for d in new.values()) == sorted(SPECTRUM)
    files = sorted(p.name for p in (out / NEW_DIR).iterdir())
    assert files == sorted(Path(f).name for d in new.values() for f in (d["audio"], d["transcript"]) if f)
    assert sum(d["transcript"] is None for d in new.values()) == 2
    corpus_ids = {d.doc_id for d in read_corpus(out).documents}
    assert not corpus_ids & set(new) and len(corpus_ids) == 8  # the reader skips the subfolder
    texts = {d["text"] for d in load_truth(out).values()}
    assert not texts & {d["text"] for d in new.values()}  # other interviews, not copies
    for d in new.values():
        info = sf.info(str(out / d["audio"]))
        assert abs(info.frames / info.samplerate - d["duration"]) < 0.05 and d["labels"]["spectrum"] in SPECTRUM
        assert d["doc_id"] not in (out / "labels.csv").read_text()  # unlabelled: the truth file alone knows
    assert NEW_DIR in (out / "README.md").read_text()


def test_formats_rates_channels_and_transcript_kinds_are_mixed(corpus):
    out, result, _ = corpus
    docs = read_corpus(out).documents
    infos = {d.doc_id: sf.info(str(d.audio)) for d in docs}
    assert {d.audio.suffix for d in docs} == {".wav", ".flac"}
    assert {i.samplerate for i in infos.values()} == {22050, 24000, 44100}  # never 16 kHz
    assert {i.channels for i in infos.values()} == {1, 2}
    kinds = {d.transcript.suffix.lower() if d.transcript else None for d in docs}
    assert kinds == {".txt", ".srt", ".vtt", ".textgrid", ".json", None}
    durations = [i.frames / i.samplerate for i in infos.values()]
    # a document reaches its minimum length even when that takes one sentence past the maximum
    assert all(SMALL["min_seconds"] <= s <= SMALL["max_seconds"] + 5.0 for s in durations), durations
    assert abs(sum(durations) - result.total_seconds) < 0.1


def test_transcripts_hold_the_generating_text_and_times(corpus):
    out, _, _ = corpus
    truth = load_truth(out)
    for d in read_corpus(out).documents:
        t = truth[d.doc_id]
        assert t["text"].split() == [w for w, _, _ in t["words"]]  # word timings cover every word
        if d.transcript is None:
            continue
        tr = read_transcript(d.transcript)
        assert tr.words == t["text"].split()
        # every format names the speakers (name prefixes, <v> tags, a tier per speaker, a JSON field), and the
        # TextGrid reader takes the speakers' tiers, not the phone tier
        said = [sp for c in t["cues"] for sp in [c["speaker"]] * len(c["text"].split())]
        assert tr.word_speakers == said, d.doc_id
        if tr.timed:
            # to the millisecond the files hold (a reader's h*3600 + m*60 + s + ms/1000 may differ in the last bit)
            assert [(round(c.start, 3), round(c.end, 3), c.text) for c in tr.cues] == \
                [(c["start"], c["end"], c["text"]) for c in t["cues"]]
            assert tr.cues[-1].end <= t["duration"]


def test_cue_times_match_the_sound(corpus):
    """Cues start where speech starts: louder inside the cues than in the pauses between them."""
    out, _, _ = corpus
    truth = load_truth(out)
    for doc_id, t in truth.items():
        x, sr = sf.read(str(out / t["audio"]), dtype="float32", always_2d=True)
        x = x.sum(axis=1)
        inside = np.zeros(len(x), bool)
        for c in t["cues"]:
            inside[int(c["start"] * sr):int(c["end"] * sr)] = True
        rms_in, rms_out = (np.sqrt(np.mean(x[m] ** 2)) for m in (inside, ~inside))
        assert rms_in > 10 * rms_out, doc_id


def test_stereo_recordings_have_one_speaker_per_channel(corpus):
    """Interviewer left, interviewee right: within each speaker's cues their own channel is much louder."""
    out, _, _ = corpus
    stereo = 0
    for doc_id, t in load_truth(out).items():
        x, sr = sf.read(str(out / t["audio"]), dtype="float32", always_2d=True)
        if x.shape[1] != 2:
            continue
        stereo += 1
        for c in t["cues"]:
            part = x[int(c["start"] * sr):int(c["end"] * sr)]
            own = SPEAKERS.index(c["speaker"])
            rms = np.sqrt(np.mean(part ** 2, axis=0))
            assert rms[own] > 4 * rms[1 - own], (doc_id, c["speaker"], rms)
    assert stereo >= 2


def _slot_words(mood: str) -> list[str]:
    return list(demo_text.FEEL[mood] + demo_text.THING[mood])


def _said(text: str, words: list[str]) -> list[str]:
    return [w for w in words if f" {w}." in f" {text.lower()}"]


def test_each_factor_drives_only_its_own_modality(corpus):
    out, _, _ = corpus
    for doc_id, t in load_truth(out).items():
        labels, voice = t["labels"], t["voice"]
        assert SPECTRUM[labels["spectrum"]][:2] == (labels["mood"], labels["prosody"])
        p = PROSODY[labels["prosody"]]
        assert p.rate_wpm[0] <= voice["rate_wpm"] <= p.rate_wpm[1] and p.pitch[0] <= voice["pitch"] <= p.pitch[1]
        # congruence: the manner of the revealing sentences matches their words exactly when congruent
        assert (t["manner"] == CONGRUENT_MANNER[labels["mood"]]) == (labels["congruence"] == CONGRUENCE[0]), doc_id
        other = "negative" if labels["mood"] == "positive" else "positive"
        assert 1 <= len(t["revealing"]) <= REVEALING_SENTENCES[1], doc_id  # short documents may end before all
        for i, c in enumerate(t["cues"]):
            if c["speaker"] != SPEAKERS[1]:
                assert i not in t["revealing"]
                continue
            assert not _said(c["text"], _slot_words(other)), (doc_id, c["text"])
            # the words carry mood only in the few revealing sentences; every other answer is neutral
            assert bool(_said(c["text"], _slot_words(labels["mood"]))) == (i in t["revealing"]), (doc_id, c["text"])
    # the slot words are the only carriers of mood: no frame, neutral sentence, question or opener uses them
    shared = " ".join(demo_text.FRAMES + demo_text.NEUTRAL + demo_text.QUESTIONS + demo_text.OPENERS).lower()
    words = [w for m in ("positive", "negative") for w in demo_text.FEEL[m] + demo_text.THING[m]]
    assert not [w for w in words if f" {w} " in f" {shared.replace('.', ' ').replace(',', ' ')} "]
    assert not set(demo_text.FEEL["positive"] + demo_text.THING["positive"]) & set(
        demo_text.FEEL["negative"] + demo_text.THING["negative"])


def test_revealing_sentences_are_few_and_spread_over_the_interview(tmp_path):
    """At the default lengths: REVEALING_SENTENCES of ~15 answer sentences, not bunched at one end."""
    out = tmp_path / "c"
    make_demo_corpus(out, n_docs=12, seed=4, min_seconds=30, max_seconds=90)
    truth = load_truth(out)
    counts = [len(t["revealing"]) for t in truth.values()]
    assert all(REVEALING_SENTENCES[0] <= n <= REVEALING_SENTENCES[1] for n in counts), counts
    answers = sum(c["speaker"] == SPEAKERS[1] for t in truth.values() for c in t["cues"])
    assert sum(counts) < 0.35 * answers  # mostly neutral answers
    where = [i / len(t["cues"]) for t in truth.values() for i in t["revealing"]]
    assert 0.35 < np.mean(where) < 0.65 and min(where) < 0.3 and max(where) > 0.7


def test_manner_shifts_only_the_revealing_sentences():
    """Revealing sentences are spoken lively (faster, higher, wide pitch range) or flat around the document's
    voice; the other answers keep it, with a small jitter."""
    rng = np.random.default_rng(0)
    base = dict(voice="en-us+m1", rate_wpm=180, pitch=50, pitch_range=50, volume=100, word_gap_ms=0)
    for manner, m in MANNER.items():
        doc = DemoDoc("P001", "S01", {}, base, "P001.wav", 22050, 1, None, 30.0, manner=manner)
        for _ in range(20):
            plain, shifted = _sentence_voice(rng, doc, False), _sentence_voice(rng, doc, True)
            assert abs(plain["rate_wpm"] - 180) <= 4 and abs(plain["pitch"] - 50) <= 2 and plain["pitch_range"] == 50
            assert abs(shifted["rate_wpm"] - 180 - m.rate_shift_wpm) <= 4
            assert abs(shifted["pitch"] - 50 - m.pitch_shift) <= 2
            assert m.pitch_range[0] <= shifted["pitch_range"] <= m.pitch_range[1]
    assert MANNER["lively"].pitch_range[0] > max(p.pitch_range[1] for p in PROSODY.values())
    assert MANNER["flat"].pitch_range[1] < min(p.pitch_range[0] for p in PROSODY.values())


def test_prosody_classes_are_close_and_independent_of_mood_and_congruence():
    docs = plan_corpus(60, seed=0, min_seconds=30, max_seconds=90)
    rates = {k: [d.voice["rate_wpm"] for d in docs if d.labels["prosody"] == k] for k in PROSODY}
    assert np.mean(rates["slowed"]) + 10 < np.mean(rates["typical"])  # a tendency ...
    assert PROSODY["slowed"].rate_wpm[1] > PROSODY["typical"].rate_wpm[0]  # ... not a switch: the ranges overlap
    pitch = {m: np.mean([d.voice["pitch"] for d in docs if d.labels["mood"] == m and d.labels["prosody"] == "typical"])
             for m in ("positive", "negative")}
    assert abs(pitch["positive"] - pitch["negative"]) < 5  # the voice does not know the mood


@pytest.mark.parametrize("n", [20, 60, 61, 101])
def test_congruence_is_invisible_to_each_modality_alone(n):
    """Congruent in exactly half of the documents of every mood (what the words show) and of every
    prosody x manner (what the voice shows), up to one document of rounding."""
    docs = plan_corpus(n, seed=3, min_seconds=30, max_seconds=90)
    views = {"words": lambda d: d.labels["mood"], "voice": lambda d: (d.labels["prosody"], d.manner),
             "spectrum": lambda d: d.labels["spectrum"]}
    for name, view in views.items():
        for key in {view(d) for d in docs}:
            group = [d.labels["congruence"] for d in docs if view(d) == key]
            assert abs(2 * group.count(CONGRUENCE[0]) - len(group)) <= 1, (name, key, Counter(group))
    for d in docs:
        assert (d.manner == CONGRUENT_MANNER[d.labels["mood"]]) == (d.labels["congruence"] == CONGRUENCE[0])


@pytest.mark.parametrize("n", [20, 60, 101])  # below 20 the two-per-class floor moves the counts (test below)
def test_labels_have_the_designed_proportions(n):
    docs = plan_corpus(n, seed=5, min_seconds=30, max_seconds=90)
    counts = Counter(d.labels["spectrum"] for d in docs)
    for cls, (_, _, prior) in SPECTRUM.items():
        assert abs(counts[cls] - prior * n) < 1, (cls, counts)
    assert counts["none"] >= counts["mild"] > counts["moderate"] >= counts["severe"] >= 1
    assert Counter(d.labels["mood"] for d in docs)["negative"] == counts["mild"] + counts["severe"]
    assert abs(counts["none"] - counts["mild"]) <= 1 and abs(counts["moderate"] - counts["severe"]) <= 1  # mood balanced
    assert Counter(d.labels["prosody"] for d in docs)["slowed"] == counts["moderate"] + counts["severe"]


def test_same_seed_same_bytes_other_seed_other_corpus(corpus, tmp_path):
    out, _, _ = corpus
    make_demo_corpus(tmp_path / "again", **SMALL)
    assert _digest(tmp_path / "again") == _digest(out)
    make_demo_corpus(tmp_path / "other", **{**SMALL, "seed": 2})
    a, b = load_truth(out), load_truth(tmp_path / "other")
    assert [d["text"] for d in a.values()] != [d["text"] for d in b.values()]


def test_rewrites_an_earlier_demo_corpus_and_refuses_other_folders(tmp_path):
    out = tmp_path / "c"
    make_demo_corpus(out, n_docs=10, seed=0, min_seconds=5, max_seconds=6)
    assert (out / "P010.wav").exists() or (out / "P010.flac").exists()
    make_demo_corpus(out, n_docs=8, seed=0, min_seconds=5, max_seconds=6)  # the old P009, P010 go
    assert not list(out.glob("P009.*")) and not list(out.glob("P010.*"))
    assert read_corpus(out).problems == [] and len(load_truth(out)) == 8

    (out / "notes.docx").write_text("mine")
    with pytest.raises(HilbertError, match="not a demo corpus.*notes.docx"):
        make_demo_corpus(out, **SMALL)
    assert (out / "notes.docx").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(HilbertError, match="not a folder"):
        make_demo_corpus(tmp_path / "file", **SMALL)
    with pytest.raises(HilbertError, match="--n-docs"):
        make_demo_corpus(tmp_path / "few", n_docs=4)
    with pytest.raises(HilbertError, match="--min-seconds"):
        make_demo_corpus(tmp_path / "short", min_seconds=60, max_seconds=30)
    with pytest.raises(HilbertError, match="not a corpus written by"):
        load_truth(tmp_path)


def test_cli_writes_the_corpus_and_prints_a_summary(tmp_path):
    res = CliRunner().invoke(app, ["demo-data", str(tmp_path / "d"), "--n-docs", "8", "--seed", "3",
                                   "--min-seconds", "5", "--max-seconds", "6"])
    assert res.exit_code == 0, res.output
    assert "Wrote 8 interviews" in res.output and "spectrum" in res.output and "words and voice" in res.output
    assert len(read_corpus(tmp_path / "d").documents) == 8
    res = CliRunner().invoke(app, ["demo-data", str(tmp_path / "e"), "--n-docs", "3"])
    assert res.exit_code == 1 and "--n-docs" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("n_docs", [8, 9, 12, 15])
def test_small_corpus_has_two_documents_of_every_spectrum_class(n_docs):
    """Below ~20 documents the 10% class would round to one document, too few to train on."""
    from collections import Counter

    docs = plan_corpus(n_docs, seed=0, min_seconds=30, max_seconds=40)
    counts = Counter(d.labels["spectrum"] for d in docs)
    assert set(counts) == set(SPECTRUM) and min(counts.values()) >= 2
    assert counts["none"] >= counts["mild"] >= counts["moderate"] >= counts["severe"]  # still imbalanced in order
