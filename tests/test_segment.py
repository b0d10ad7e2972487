"""Alignment, segmentation strategies, the ASR engines and cache, the CLI, and `segment` end to end
on speech synthesised with eSpeak and transcribed by the real bundled Whisper tiny.en."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hilbert_cli.corpus import asr as asr_mod
from hilbert_cli.corpus.align import MAX_WORD_SECONDS, MIN_WORD_SECONDS, align_words, normalise
from hilbert_cli.corpus.asr import Word, load_asr, transcribe_cached
from hilbert_cli.cli import app
from hilbert_cli.corpus import segment as segment_mod
from hilbert_cli.corpus.cutting import (auto_spans, auto_spans_by_speaker, cue_word_speakers, cue_words, fixed_spans,
                                        fixed_spans_by_speaker, speaker_runs)
from hilbert_cli.errors import HilbertError
from hilbert_cli.corpus.segment import SegmentSettings, segment_corpus, segment_recording
from hilbert_cli.corpus.transcripts import Cue
from hilbert_cli.workspace import SegmentedDoc, Workspace

from test_corpus import write_audio, write_cues  # tests/ is on sys.path under pytest


# --- alignment ------------------------------------------------------------------------------
def test_alignment_takes_times_from_matches_and_interpolates_the_rest():
    asr = [Word(0.0, 0.5, "hello"), Word(0.6, 1.0, "their"), Word(1.2, 1.5, "how"), Word(1.6, 1.9, "r"),
           Word(2.0, 2.4, "you"), Word(3.0, 3.4, "um"), Word(3.5, 4.0, "today")]
    tokens = "Hello there, how are you doing today?".split()
    a = align_words(tokens, asr, duration=5.0)
    assert [w.text for w in a.words] == tokens  # the transcript's words are kept, punctuation and all
    t = {w.text: (w.start, w.end) for w in a.words}
    assert t["Hello"] == (0.0, 0.5) and t["how"] == (1.2, 1.5) and t["today?"] == (3.5, 4.0)
    assert t["there,"] == (0.6, 1.0) and t["are"] == (1.6, 1.9)  # one-to-one substitutions
    # "doing" was not heard: it shares the span of the ASR word it replaces ("um")
    assert t["doing"] == pytest.approx((3.0, 3.4))
    assert a.matched == 4 and a.match_rate == pytest.approx(4 / 7)
    starts = [w.start for w in a.words]
    assert starts == sorted(starts)


def test_alignment_fills_gaps_at_the_edges_and_inside():
    asr = [Word(1.0, 1.5, "b"), Word(3.0, 3.5, "d")]
    a = align_words(["a", "b", "c1", "c2", "d", "e"], asr, duration=6.0)
    t = [(w.text, round(w.start, 3), round(w.end, 3)) for w in a.words]
    assert t[0] == ("a", 0.2, 1.0)  # before the first heard word: against it, at most MAX_WORD_SECONDS long
    assert t[2][1] == 1.5 and t[3][2] == 3.0 and t[2][2] == t[3][1]  # between neighbours, split evenly
    assert t[5] == ("e", 3.5, 4.3)  # after the last heard word: right after it, not stretched to the end


def test_alignment_without_asr_words_stays_inside_the_audio():
    a = align_words(["one", "two"], [], duration=4.0)
    assert a.matched == 0 and 0.0 <= a.words[0].start < a.words[-1].end <= 4.0
    assert all(w.end - w.start <= MAX_WORD_SECONDS + 1e-9 for w in a.words)


def test_alignment_degrades_gracefully_where_the_recogniser_missed_stretches():
    """A garbled 0.05-s ASR word standing for 16 transcript words, and a 10-s stretch with nothing heard:
    the words keep plausible durations, stay in order between their anchors, and both gaps are reported."""
    tokens = [f"w{i}" for i in range(40)]
    asr = [Word(0.4 * i, 0.4 * i + 0.3, f"w{i}") for i in range(5)]  # w0-w4 heard
    asr.append(Word(10.0, 10.05, "xx"))  # w5-w20 came out as one garbled word
    asr.append(Word(30.0, 30.3, "w21"))  # heard; then w22-w34 not heard at all
    asr += [Word(40.0 + 0.4 * k, 40.3 + 0.4 * k, f"w{35 + k}") for k in range(5)]  # w35-w39 heard
    a = align_words(tokens, asr, duration=45.0)
    assert [w.text for w in a.words] == tokens and a.matched == 11
    for w in a.words:
        assert MIN_WORD_SECONDS / 2 <= w.end - w.start <= MAX_WORD_SECONDS + 1e-9, w
    assert all(x.end <= y.start + 1e-9 for x, y in zip(a.words, a.words[1:]))  # in order, no overlap
    garbled = a.words[5:21]
    assert garbled[-1].end - garbled[0].start >= 16 * MIN_WORD_SECONDS  # not squeezed into 0.05 s
    assert garbled[0].start < 10.0 < garbled[-1].end  # around the ASR word they stand for
    missed = a.words[22:35]
    assert missed[-1].end - missed[0].start <= 13 * MAX_WORD_SECONDS + 1e-9  # the rest of the 9.7 s is a pause
    assert [g.n_words for g in a.gaps] == [15, 13]
    assert a.gaps[0].start < 10.0 < a.gaps[0].end and 30.3 <= a.gaps[1].start < a.gaps[1].end <= 40.0


def test_normalise():
    assert normalise("Don't,") == normalise("dont") == "dont"
    assert normalise("«Café»") == "café"


# --- strategies -------------------------------------------------------------------------------
def _words(texts, rate=0.4, pauses=()):
    """Words of `rate` seconds each; a 1 s pause after the indices in `pauses`."""
    out, t = [], 0.0
    for i, x in enumerate(texts):
        out.append(Word(t, t + rate, x))
        t += rate + (1.0 if i in pauses else 0.05)
    return out


def test_auto_cuts_at_sentence_ends_near_the_target():
    sent = lambda n, k: [f"w{k}_{i}" for i in range(n - 1)] + [f"end{k}."]
    texts = sent(15, 0) + sent(19, 1) + sent(16, 2)
    spans = auto_spans(_words(texts), target_words=17, max_seconds=60)
    assert [len(s[2].split()) for s in spans] == [15, 19, 16]
    assert all(s[2].endswith(".") for s in spans)


def test_auto_prefers_pauses_without_punctuation_and_respects_max_seconds():
    texts = [f"w{i}" for i in range(60)]
    spans = auto_spans(_words(texts, pauses={19, 39}), target_words=17, max_seconds=60)
    assert [len(s[2].split()) for s in spans] == [20, 20, 20]
    spans = auto_spans(_words(texts), target_words=50, max_seconds=5.0)
    assert all(e - s <= 5.0 for s, e, _ in spans)
    assert " ".join(t for _, _, t in spans).split() == texts  # every word once, in order, never cut


def test_auto_keeps_a_single_long_word_whole():
    spans = auto_spans([Word(0, 20, "loooong"), Word(20.1, 20.5, "short")], target_words=17, max_seconds=5)
    assert [t for _, _, t in spans] == ["loooong", "short"]


def test_fixed_windows_assign_each_word_by_its_midpoint():
    words = [Word(0.5, 1.0, "a"), Word(9.4, 10.2, "b"), Word(9.9, 10.5, "c"), Word(25.0, 26.0, "d")]
    spans = fixed_spans(words, window=10.0, duration=27.0)
    assert spans == [(0.0, 10.0, "a b"), (10.0, 20.0, "c"), (20.0, 27.0, "d")]


def test_cue_words_spread_inside_each_cue():
    words, ends = cue_words([Cue(1.0, 2.0, "a bb"), Cue(5.0, 6.0, "c")])
    assert [w.text for w in words] == ["a", "bb", "c"] and ends == {1, 2}
    assert words[0].start == 1.0 and words[1].end == pytest.approx(2.0) and words[2].start == 5.0


@pytest.mark.parametrize("kw,match", [
    (dict(strategy="smart"), "--strategy"), (dict(target_words=0), "--target-words"),
    (dict(max_seconds=0), "--max-seconds"), (dict(window=-1), "--window"),
])
def test_settings_are_checked(kw, match):
    with pytest.raises(HilbertError, match=match):
        SegmentSettings(**kw)


# --- speakers ----------------------------------------------------------------------------------
OVERLAP = [Cue(0.0, 4.0, "how are you doing today", "I"), Cue(3.0, 6.0, "fine thanks very well", "P"),
           Cue(6.5, 8.0, "and you?", "P")]


def test_overlapping_turns_of_two_speakers_are_never_merged():
    words, ends = cue_words(OVERLAP)
    speakers = cue_word_speakers(OVERLAP)
    assert speaker_runs(speakers) == [(0, 5), (5, 11)]
    spans = auto_spans_by_speaker(words, speakers, target_words=40, max_seconds=60, cue_ends=ends)
    assert [(s, round(e, 3), t, sp) for s, e, t, sp in spans] == [
        (0.0, 4.0, "how are you doing today", "I"), (3.0, 8.0, "fine thanks very well and you?", "P")]
    assert auto_spans(words, 40, 60, ends)[0][2].split() == [w.text for w in words]  # what it was: one segment


def test_fixed_windows_split_at_speaker_changes():
    words, _ = cue_words(OVERLAP)
    spans = fixed_spans_by_speaker(words, cue_word_speakers(OVERLAP), window=10.0, duration=9.0)
    assert [(s, round(e, 3), sp) for s, e, _, sp in spans] == [(0.0, 4.0, "I"), (3.0, 8.0, "P")]
    one = fixed_spans_by_speaker(words, [None] * len(words), window=5.0, duration=9.0)
    assert one == [(s, e, t, None) for s, e, t in fixed_spans(words, 5.0, 9.0)]  # no speakers: as before


@pytest.mark.parametrize("strategy", ["auto", "cues", "fixed"])
def test_segments_keep_their_speaker_and_old_workspaces_load(tmp_path, strategy):
    corpus = tmp_path / "c"
    corpus.mkdir()
    write_audio(corpus / "A.wav", seconds=9.0)
    (corpus / "A.json").write_text(json.dumps(
        [{"start": c.start, "end": c.end, "text": c.text, "speaker": c.speaker} for c in OVERLAP]
        + [{"start": 8.5, "end": 8.5, "text": "hidden"}]))
    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(strategy=strategy, target_words=40, window=10.0))
    assert not r.failed
    assert any("A.json: 1 zero-length cue(s) dropped" in w for w in r.warnings)
    segs = ws.load_doc("A").segments
    by_speaker = {sp: " ".join(s.text for s in segs if s.speaker == sp) for sp in ("I", "P")}
    assert by_speaker == {"I": "how are you doing today", "P": "fine thanks very well and you?"}
    assert all(s.speaker in ("I", "P") for s in segs) and len(segs) == (3 if strategy == "cues" else 2)
    # a segment file written before speakers existed still loads
    old = json.loads(ws.segments_path("A").read_text())
    for seg in old["segments"]:
        del seg["speaker"]
    assert {s.speaker for s in SegmentedDoc.from_json(old).segments} == {None}
    # one segmented by the readers before speakers (no reader version in its settings) is read again
    del old["settings"]["transcript_reader"]
    ws.segments_path("A").write_text(json.dumps(old))
    r = segment_corpus(corpus, ws, SegmentSettings(strategy=strategy, target_words=40, window=10.0))
    assert [d.status for d in r.documents] == ["segmented"] and ws.load_doc("A").segments[0].speaker == "I"


class EchoASR:
    """Hears exactly the words it is given, 0.4 s each."""
    identity = "echo:1"

    def __init__(self, words):
        self.words = words

    def transcribe(self, audio, progress=None):
        return [Word(0.5 + 0.45 * i, 0.9 + 0.45 * i, w) for i, w in enumerate(self.words)]


def test_plain_transcript_speakers_survive_alignment(tmp_path, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    write_audio(corpus / "A.wav", seconds=8.0)
    (corpus / "A.txt").write_text("INTERVIEWER: How are you?\nPARTICIPANT: Fine thanks,\nnot bad at all.\n"
                                  "INTERVIEWER: Good.\n")
    heard = "how are you fine thanks not bad at all good".split()
    monkeypatch.setattr(segment_mod, "load_asr", lambda *a, **k: EchoASR(heard))
    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(target_words=40), allow_download=False)
    assert not r.failed, r.problems
    segs = ws.load_doc("A").segments
    assert [(s.text, s.speaker) for s in segs] == [
        ("How are you?", "INTERVIEWER"), ("Fine thanks, not bad at all.", "PARTICIPANT"), ("Good.", "INTERVIEWER")]
    assert segs[0].source == "transcript+asr-timing" and segs[1].start == pytest.approx(0.5 + 0.45 * 3)


def test_tier_setting_and_cli_option(tmp_path):
    from test_transcripts import THREE_TIERS, textgrid

    assert SegmentSettings(tier=" Interviewer , words ").tier == ["Interviewer", "words"]
    assert SegmentSettings(tier="").tier is None and SegmentSettings(tier=["a,b"]).tier == ["a", "b"]
    corpus = tmp_path / "c"
    corpus.mkdir()
    write_audio(corpus / "A.wav", seconds=6.0)
    (corpus / "A.TextGrid").write_bytes(textgrid(THREE_TIERS, 6, short=True).encode("utf-16"))
    runner, ws = CliRunner(), tmp_path / "ws"
    res = runner.invoke(app, ["segment", str(corpus), "-w", str(ws), "--strategy", "cues"])
    assert res.exit_code == 0, res.output
    assert "used 'words', 'Interviewer'" in " ".join(res.output.split())  # the warning names the tiers used
    segs = Workspace(ws).load_doc("A").segments
    assert [(s.text, s.speaker) for s in segs][:2] == [("How are you feeling today?", "Interviewer"), ("I", None)]
    assert "ə" not in " ".join(s.text for s in segs)

    res = runner.invoke(app, ["segment", str(corpus), "-w", str(ws), "--strategy", "cues", "--tier", "Interviewer"])
    assert res.exit_code == 0, res.output
    assert [(s.text, s.speaker) for s in Workspace(ws).load_doc("A").segments] == [("How are you feeling today?", "Interviewer")]
    assert Workspace(ws).load_manifest().segmentation["tier"] == ["Interviewer"]

    res = runner.invoke(app, ["segment", str(corpus), "-w", str(ws), "--tier", "Participant"])
    out = " ".join(res.output.split())
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "A.TextGrid: no tier named 'Participant'; its tiers are 'phones', 'words', 'Interviewer'" in out


# --- ASR specs and cache ----------------------------------------------------------------------
def test_asr_specs_fail_at_once_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # openai-whisper's download root: empty
    with pytest.raises(HilbertError, match="unknown engine 'nemo'.*faster-whisper, openai-whisper"):
        load_asr("nemo")
    for spec in ("faster-whisper:small", "openai-whisper:tiny.en"):
        with pytest.raises(HilbertError, match="not on this machine.*--allow-download"):
            load_asr(spec)
    with pytest.raises(HilbertError, match="no such file"):
        load_asr(f"openai-whisper:{tmp_path}/missing.pt")
    with pytest.raises(HilbertError, match="no model.bin"):
        load_asr(f"faster-whisper:{tmp_path}")
    assert load_asr("faster-whisper").identity.startswith("faster-whisper:bundled-tiny.en")


class CountingASR:
    identity = "fake:1"

    def __init__(self):
        self.calls = 0

    def transcribe(self, audio, progress=None):
        self.calls += 1
        return [Word(0.0, 0.5, "hi")]


def test_transcript_cache_is_keyed_by_audio_and_model(tmp_path):
    eng = CountingASR()
    audio = np.zeros(16000, dtype=np.float32)
    w1, cached1 = transcribe_cached(eng, audio, "a" * 64, tmp_path)
    w2, cached2 = transcribe_cached(eng, audio, "a" * 64, tmp_path)
    assert (cached1, cached2) == (False, True) and eng.calls == 1 and w1 == w2
    transcribe_cached(eng, audio, "b" * 64, tmp_path)  # other audio
    eng.identity = "fake:2"
    transcribe_cached(eng, audio, "a" * 64, tmp_path)  # other model
    assert eng.calls == 3 and len(list(tmp_path.glob("*.json"))) == 3


# --- resume, strategies through the corpus, the CLI ---------------------------------------------
def _timed_corpus(root):
    root.mkdir()
    write_audio(root / "A.wav", seconds=12.0)
    write_cues(root / "A.json", [(0.5, 3.0, "Good morning. How are you feeling today?"),
                                 (3.5, 7.0, "Not bad, a little tired,"), (7.5, 11.0, "but better than last week.")])
    write_audio(root / "B.flac", seconds=6.0, rate=44100, channels=2)
    (root / "B.srt").write_text("1\n00:00:00,500 --> 00:00:05,000\nShort answer here.\n")
    (root / "labels.csv").write_text("id,subject,mood\nA,s1,low\nB,s2,\n")
    return root


def test_strategies_resume_and_manifest(tmp_path):
    corpus = _timed_corpus(tmp_path / "c")
    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(strategy="cues"))
    assert not r.failed and [d.status for d in r.documents] == ["segmented"] * 2
    a = ws.load_doc("A")
    assert [s.text for s in a.segments] == ["Good morning. How are you feeling today?", "Not bad, a little tired,",
                                            "but better than last week."]
    assert a.segments[1].start == 3.5 and a.segments[1].end == 7.0 and a.segments[0].source == "transcript"
    m = ws.load_manifest()
    assert m.documents["A"]["audio"] == str((corpus / "A.wav").resolve()) and m.documents["A"]["subject"] == "s1"
    assert m.task_labels("mood") == {"A": "low"} and m.segmentation["strategy"] == "cues"

    mtime = ws.segments_path("A").stat().st_mtime_ns
    r2 = segment_corpus(corpus, ws, SegmentSettings(strategy="cues"))
    assert [d.status for d in r2.documents] == ["resumed"] * 2
    assert ws.segments_path("A").stat().st_mtime_ns == mtime

    r3 = segment_corpus(corpus, ws, SegmentSettings(strategy="auto", target_words=8))
    assert [d.status for d in r3.documents] == ["segmented"] * 2
    texts = [s.text for s in ws.load_doc("A").segments]
    assert " ".join(texts).split() == "Good morning. How are you feeling today? Not bad, a little tired, but better than last week.".split()
    assert len(texts) == 2 and texts[0].endswith("today?")  # sentence end nearest the target

    (corpus / "B.srt").write_text("1\n00:00:00,500 --> 00:00:05,000\nAn edited answer.\n")
    r4 = segment_corpus(corpus, ws, SegmentSettings(strategy="auto", target_words=8))
    assert {d.doc_id: d.status for d in r4.documents} == {"A": "resumed", "B": "segmented"}  # transcript changed
    assert ws.load_doc("B").segments[0].text == "An edited answer."

    segment_corpus(corpus, ws, SegmentSettings(strategy="fixed", window=5.0))
    assert [(s.start, s.end) for s in ws.load_doc("A").segments] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]


def test_cli_segment_prints_summary_and_fails_on_problems(tmp_path):
    corpus = _timed_corpus(tmp_path / "c")
    runner = CliRunner()
    res = runner.invoke(app, ["segment", str(corpus), "-w", str(tmp_path / "ws"), "--strategy", "cues"])
    assert res.exit_code == 0, res.output
    assert "documents" in res.output and "17 words, 6.47 s" in res.output
    assert json.loads((tmp_path / "ws" / "corpus.json").read_text())["tasks"] == ["mood"]

    (corpus / "C.txt").write_text("a transcript with no audio")
    res = runner.invoke(app, ["segment", str(corpus), "-w", str(tmp_path / "ws"), "--strategy", "cues"])
    assert res.exit_code == 1
    assert "C.txt: transcript without audio" in res.output and "1 problem(s)" in res.output

    res = runner.invoke(app, ["segment", str(corpus), "-w", str(tmp_path / "ws"), "--strategy", "nope"])
    # main() turns the HilbertError into one line; the runner calls the app directly and keeps it
    assert res.exit_code == 1 and "--strategy" in res.output and "Traceback" not in res.output


def test_segment_recording_uses_a_transcript_beside_the_audio(tmp_path):
    write_audio(tmp_path / "new.wav", seconds=5.0)
    write_cues(tmp_path / "new.json", [(0.5, 2.0, "first part."), (2.5, 4.5, "second part.")])
    settings = dict(SegmentSettings(strategy="cues").__dict__, something_else=1)  # stored settings may carry more
    doc = segment_recording(tmp_path / "new.wav", settings)
    assert doc.doc_id == "new" and [s.text for s in doc.segments] == ["first part.", "second part."]
    (tmp_path / "new.txt").write_text("also here")
    with pytest.raises(HilbertError, match="several transcripts"):
        segment_recording(tmp_path / "new.wav", settings)


# --- real ASR, end to end -----------------------------------------------------------------------
def word_error_rate(ref: str, hyp: str) -> float:
    r, h = [normalise(w) for w in ref.split()], [normalise(w) for w in hyp.split()]
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
    return d[len(h)] / len(r)


def test_word_error_rate():
    assert word_error_rate("a b c d", "a x c") == 0.5 and word_error_rate("A, b.", "a b") == 0.0


def test_demo_data_then_segment_with_the_bundled_asr(tmp_path, monkeypatch):
    """`demo-data` (every transcript kind, stereo, flac, odd rates) then `segment` through the CLI;
    the words recovered match what was synthesised."""
    from hilbert_cli.demo.corpus import load_truth, make_demo_corpus

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    corpus, ws = tmp_path / "demo", Workspace(tmp_path / "ws")
    make_demo_corpus(corpus, n_docs=8, seed=3, min_seconds=5, max_seconds=8)
    truth = load_truth(corpus)

    res = CliRunner().invoke(app, ["segment", str(corpus), "-w", str(ws.root), "--target-words", "8"])
    assert res.exit_code == 0, res.output
    sources, ref_asr, hyp_asr = set(), [], []
    for doc_id, t in truth.items():
        doc = ws.load_doc(doc_id)
        got = " ".join(s.text for s in doc.segments)
        starts = [s.start for s in doc.segments]
        assert starts == sorted(starts) and doc.segments[-1].end <= doc.duration + 1e-6
        assert abs(doc.segments[-1].end - t["words"][-1][2]) < 1.0  # timed from the audio or the cues
        source = doc.segments[0].source
        sources.add(source)
        if source == "asr":
            ref_asr.append(t["text"])
            hyp_asr.append(got)
            assert word_error_rate(t["text"], got) < 0.5, got
        else:  # the transcript is the text of record, timed or aligned to the ASR's timings
            assert got.split() == t["text"].split()
    assert sources == {"asr", "transcript", "transcript+asr-timing"}
    assert word_error_rate(" ".join(ref_asr), " ".join(hyp_asr)) < 0.3

    # a re-run with other settings re-cuts from the transcript cache: no ASR
    calls = []
    real = asr_mod.FasterWhisperASR.transcribe
    monkeypatch.setattr(asr_mod.FasterWhisperASR, "transcribe", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    r = segment_corpus(corpus, ws, SegmentSettings(target_words=40))
    assert not r.failed and calls == []
    assert {d.asr for d in r.documents if d.source != "transcript"} == {"cached"}
    for d, t in truth.items():  # one segment per speaker turn (the transcripts name them), else one in all
        segs = ws.load_doc(d).segments
        turns = 1 + sum(a["speaker"] != b["speaker"] for a, b in zip(t["cues"], t["cues"][1:]))
        assert len(segs) == (turns if any(s.speaker for s in segs) else 1), d

    # one new recording outside the corpus (what `predict` does), with the stored settings
    doc_id = next(d for d, t in truth.items() if t["transcript"] is None)
    new = tmp_path / "new" / truth[doc_id]["audio"]
    new.parent.mkdir()
    new.write_bytes((corpus / truth[doc_id]["audio"]).read_bytes())
    rec = segment_recording(new, ws.load_manifest().segmentation, cache_dir=ws.transcripts_dir)
    assert calls == [] and rec.segments[0].source == "asr"
    assert [s.text for s in rec.segments] == [s.text for s in ws.load_doc(doc_id).segments]


@pytest.mark.slow
def test_openai_whisper_engine_by_path(tmp_path):
    """A tiny openai-whisper checkpoint built here, rigged to say "hello" once per window, loads by
    path and goes through the same word-timestamp code as a real one."""
    import torch
    from whisper.model import ModelDimensions, Whisper
    from whisper.tokenizer import get_tokenizer

    torch.manual_seed(0)
    d = 32
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=d, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51864, n_text_ctx=448, n_text_state=d, n_text_head=2, n_text_layer=2)
    model = Whisper(dims)
    tok = get_tokenizer(multilingual=False)
    hello = tok.encode(" hello")[0]
    a, b = torch.zeros(d), torch.zeros(d)
    a[0], a[1], b[2], b[3] = 1, -1, 1, -1  # zero-mean directions survive the final LayerNorm
    with torch.no_grad():  # residual stream = token embedding: the next token depends only on the last one
        emb = model.decoder.token_embedding.weight
        emb.zero_()
        model.decoder.positional_embedding.zero_()
        for blk in model.decoder.blocks:
            for lin in (blk.attn.out, blk.cross_attn.out, blk.mlp[2]):
                lin.weight.zero_()
                lin.bias.zero_()
        emb[tok.sot] = a  # start -> <|0.00|>
        emb[tok.timestamp_begin:] = a
        emb[tok.timestamp_begin] = 3 * a
        emb[hello] = 5 * a + 5 * b  # timestamp -> "hello"
        emb[tok.eot] = 20 * b  # "hello" -> end
    pt = tmp_path / "tiny-hello.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, pt)

    eng = load_asr(f"openai-whisper:{pt}")
    assert str(pt.resolve()) in eng.identity
    words = eng.transcribe(np.random.default_rng(0).normal(0, 0.01, 16000 * 2).astype(np.float32))
    assert words and {w.text for w in words} == {"hello"}
    assert all(0 <= w.start <= w.end <= 2.0 + 1e-6 for w in words)


def test_a_moved_corpus_keeps_its_documents_and_another_corpus_needs_replace(tmp_path):
    corpus = _timed_corpus(tmp_path / "c")
    ws = Workspace(tmp_path / "ws")
    segment_corpus(corpus, ws, SegmentSettings(strategy="cues"))
    moved = corpus.rename(tmp_path / "c2")
    r = segment_corpus(moved, ws, SegmentSettings(strategy="cues"))
    assert [d.status for d in r.documents] == ["resumed"] * 2  # matched by content: nothing redone
    m = ws.load_manifest()
    assert m.corpus_dir == str(moved.resolve()) and m.documents["A"]["audio"] == str((moved / "A.wav").resolve())
    assert ws.load_doc("A").audio_path == str((moved / "A.wav").resolve())  # what `embed` reads

    other = tmp_path / "other"
    other.mkdir()
    write_audio(other / "Z.wav", seconds=4.0)
    (other / "Z.srt").write_text("1\n00:00:00,500 --> 00:00:03,000\nSomething else entirely.\n")
    with pytest.raises(HilbertError, match=r"holds the segments of another corpus .*2 documents.*--replace"):
        segment_corpus(other, ws, SegmentSettings(strategy="cues"))
    assert set(ws.load_manifest().documents) == {"A", "B"}  # nothing replaced
    r = CliRunner().invoke(app, ["segment", str(other), "-w", str(ws.root), "--strategy", "cues"])
    assert r.exit_code == 1 and "--replace" in r.output and "Traceback" not in r.output
    segment_corpus(other, ws, SegmentSettings(strategy="cues"), replace=True)
    assert set(ws.load_manifest().documents) == {"Z"}


def test_decoding_is_greedy_at_temperature_zero_unless_a_beam_is_asked(monkeypatch):
    """No sampling fallback: faster-whisper is called with temperature 0 only, and the beam is a setting."""
    calls = []

    class FakeModel:
        model = type("M", (), {"is_multilingual": False})()

        def __init__(self, *a, **kw):
            pass

        def transcribe(self, audio, **kw):
            calls.append(kw)
            return iter(()), None

    import faster_whisper
    monkeypatch.setattr(faster_whisper, "WhisperModel", FakeModel)
    greedy, beam = load_asr("faster-whisper"), load_asr("faster-whisper", beam_size=5)
    greedy.transcribe(np.zeros(16000, np.float32))
    beam.transcribe(np.zeros(16000, np.float32))
    assert [(c["temperature"], c["beam_size"]) for c in calls] == [(0.0, 1), (0.0, 5)]
    assert greedy.identity != beam.identity  # cached transcripts of one decoding are not reused for the other
    with pytest.raises(HilbertError, match="--beam-size"):
        SegmentSettings(beam_size=0)


def test_the_same_noisy_clip_gives_the_same_words_in_fresh_engines():
    """Three fresh engines (model loaded anew each time) transcribe one noisy two-voice clip identically."""
    from hilbert_cli.demo.tts import Engine

    tts = Engine(fresh=True)
    a, _ = tts.synthesize("How have you been sleeping lately?", voice="en-us+f2")
    b, _ = tts.synthesize("Not very well, I wake up at four most nights.", voice="en-us+m3", rate_wpm=140)
    clip = np.concatenate([a, np.zeros(8000, np.float32), b])
    clip = clip + np.random.default_rng(0).normal(scale=0.05, size=clip.shape).astype(np.float32)  # about 6 dB SNR
    runs = [[w.text for w in load_asr("faster-whisper").transcribe(clip)] for _ in range(3)]
    assert runs[0] and runs[0] == runs[1] == runs[2]


def test_a_transcript_with_unheard_stretches_warns_with_the_share_and_where(tmp_path, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    write_audio(corpus / "A.wav", seconds=20.0)
    words = [f"word{i}" for i in range(24)]
    (corpus / "A.txt").write_text(" ".join(words) + "\n")
    monkeypatch.setattr(segment_mod, "load_asr", lambda *a, **k: EchoASR(words[:6] + words[18:]))  # 12 missed
    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(target_words=8, max_seconds=6.0))
    assert not r.failed, r.problems
    warning = next(w for w in r.warnings if "A.txt" in w)
    assert "50% of its words were heard" in warning and "12 words at 0:0" in warning
    segs = ws.load_doc("A").segments
    assert " ".join(s.text for s in segs).split() == words
    assert all(s.end - s.start <= 6.0 + 1e-6 and s.text for s in segs)  # --max-seconds holds, no empty segment


def test_speakers_option_keeps_the_chosen_speech_and_the_summary_lists_everyone(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    write_audio(corpus / "A.wav", seconds=12.0)
    (corpus / "A.srt").write_text(
        "1\n00:00:00,500 --> 00:00:03,000\nINTERVIEWER: How have you been sleeping?\n\n"
        "2\n00:00:03,500 --> 00:00:09,000\nPARTICIPANT: Badly, I wake up at four most nights.\n\n"
        "3\n00:00:09,500 --> 00:00:11,000\nINTERVIEWER: I see.\n")
    write_audio(corpus / "B.wav", seconds=6.0)
    (corpus / "B.srt").write_text("1\n00:00:00,500 --> 00:00:05,000\nA plain answer with no names.\n")
    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(strategy="cues", speakers="participant"))
    assert not r.failed, r.problems
    a = ws.load_doc("A").segments
    assert [(s.text, s.speaker) for s in a] == [("Badly, I wake up at four most nights.", "PARTICIPANT")]
    assert [s.index for s in a] == [0]
    assert len(ws.load_doc("B").segments) == 1  # no names: kept whole, with a warning
    assert any("B" in w and "names no speaker" in w for w in r.warnings)
    assert r.speech == pytest.approx({"PARTICIPANT": 5.5, "": 4.5, "INTERVIEWER": 4.0})

    res = CliRunner().invoke(app, ["segment", str(corpus), "-w", str(ws.root), "--strategy", "cues",
                                   "--speakers", "PARTICIPANT"])
    assert res.exit_code == 0, res.output
    assert "PARTICIPANT 0.1 min (modelled)" in res.output and "INTERVIEWER 0.1 min" in res.output
    r2 = segment_corpus(corpus, ws, SegmentSettings(strategy="cues", speakers="Doctor"))  # a problem for A only
    assert r2.failed and len(r2.problems) == 1
    assert "A: none of its speakers (INTERVIEWER, PARTICIPANT) is among --speakers Doctor" in r2.problems[0]
