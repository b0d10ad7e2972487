"""Offline speaker diarization (corpus/diarize.py) and its use by `hilbert segment --diarize`.

The dialogue is synthesised with eSpeak NG: two clearly different voices (a high female voice asking, a low male
voice answering at length) taking alternate turns with 0.7-s pauses, so the truth (who speaks when, and every
word's time) is known. The model tests need the optional `resemblyzer` wheel (its speaker-encoder weights);
CI installs it (README, .ci/run)."""
from __future__ import annotations

import importlib.util
import itertools
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from hilbert_cli.cli import app
from hilbert_cli.corpus import segment as segment_mod
from hilbert_cli.corpus.asr import Word
from hilbert_cli.corpus.audio import SAMPLE_RATE
from hilbert_cli.corpus.diarize import (
    Turn,
    cluster,
    load_diarizer,
    most_speech,
    speakers_of,
    speech_time,
)
from hilbert_cli.corpus.segment import (
    SegmentSettings,
    segment_corpus,
    segment_recording,
)
from hilbert_cli.errors import HilbertError
from hilbert_cli.workspace import Workspace

needs_weights = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                   reason="the optional `resemblyzer` wheel (pip install 'hilbert-cli[diarize]')")

QUESTIONS = ["How have you been sleeping over the last few weeks?", "And what do you do when you wake up so early?",
             "Has anything changed at work or at home recently?", "How would you describe your mood most days?",
             "Thank you. Is there anything else you would like to tell me?"]
ANSWERS = ["Not very well, to be honest. I wake up at four most nights and then I lie there thinking.",
           "Usually I get up and make some tea, and sometimes I read until the sun comes up.",
           "My manager left in the spring, and the new one expects a lot more from all of us.",
           "Flat, I suppose. Things that used to be fun feel like a chore now, even seeing friends.",
           "Only that I am glad I came today. It helps to say it out loud."]
VOICES = ({"voice": "en-us+f2", "pitch": 70, "rate_wpm": 180}, {"voice": "en-us+m3", "pitch": 35, "rate_wpm": 165})
PAUSE = 0.7


@pytest.fixture(scope="module")
def dialogue():
    """(audio, true turns [(start, end, 0 = asker | 1 = answerer)], timed words with their true voice)."""
    from hilbert_cli.demo.tts import Engine

    parts, turns, words, t = [], [], [], 0.0
    with Engine(fresh=True) as tts:
        for q, a in zip(QUESTIONS, ANSWERS):
            for who, text in ((0, q), (1, a)):
                x, timings = tts.synthesize(text, **VOICES[who])
                loud = np.flatnonzero(np.abs(x) > 0.002)
                lead = loud[0] / SAMPLE_RATE
                x = x[loud[0]:loud[-1] + 1]
                end = t + len(x) / SAMPLE_RATE
                words += [(Word(max(t, t + w.start - lead), min(end, t + w.end - lead), w.word), who) for w in timings]
                turns.append((t, end, who))
                parts += [x, np.zeros(int(PAUSE * SAMPLE_RATE), np.float32)]
                t = end + PAUSE
    return np.concatenate(parts), turns, words


def _share_right(turns: list[Turn], truth) -> tuple[float, dict]:
    """Share of the true speech time labelled with the right voice, under the best naming of the found speakers."""
    frames = np.arange(int(truth[-1][1] / 0.01)) * 0.01 + 0.005
    want, got = np.full(len(frames), -1), np.full(len(frames), "", dtype=object)
    for s, e, who in truth:
        want[(frames >= s) & (frames < e)] = who
    for tr in turns:
        got[(frames >= tr.start) & (frames < tr.end)] = tr.speaker
    speech = want >= 0
    best = 0.0
    for naming in ({"speaker1": 0, "speaker2": 1}, {"speaker1": 1, "speaker2": 0}):
        guess = np.array([naming.get(g, -1) for g in got])
        best = max(best, float(np.mean(guess[speech] == want[speech])))
    return best, speech_time(turns)


@needs_weights
def test_a_two_voice_dialogue_gives_two_speakers_and_at_least_90_percent_of_the_speech_time_right(dialogue):
    audio, truth, _ = dialogue
    diarizer = load_diarizer(threads=1)
    turns = diarizer.diarize(audio)
    share, speech = _share_right(turns, truth)
    assert sorted(speech) == ["speaker1", "speaker2"]
    assert share >= 0.90, (share, turns)
    assert turns[0].speaker == "speaker1" and speech["speaker2"] > speech["speaker1"]  # named by first appearance
    assert all(a.end <= b.start for a, b in itertools.pairwise(turns))  # sorted, disjoint
    assert diarizer.diarize(audio) == turns  # same audio, same turns


@needs_weights
def test_one_voice_is_one_speaker_even_when_two_are_allowed(dialogue):
    audio, truth, _ = dialogue
    answers = np.concatenate([audio[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)] for s, e, who in truth if who == 1])
    turns = load_diarizer(threads=1).diarize(answers, num_speakers=2)
    assert turns and {t.speaker for t in turns} == {"speaker1"}


class TimedASR:
    """Hears the dialogue's words at their true times (no Whisper run)."""
    identity = "timed:1"

    def __init__(self, words):
        self.words = words

    def transcribe(self, audio, progress=None):
        return list(self.words)


@needs_weights
def test_segment_diarizes_and_speakers_participant_keeps_the_voice_with_most_speech(dialogue, tmp_path, monkeypatch):
    audio, _, timed = dialogue
    corpus = tmp_path / "c"
    corpus.mkdir()
    sf.write(corpus / "D.wav", audio, SAMPLE_RATE)
    monkeypatch.setattr(segment_mod, "load_asr", lambda *a, **k: TimedASR([w for w, _ in timed]))
    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(diarize=True, target_words=8))
    assert not r.failed, r.problems
    segs = ws.load_doc("D").segments
    assert {s.speaker for s in segs} == {"speaker1", "speaker2"} and r.documents[0].diarized
    answerer = {"speaker1": 0, "speaker2": 1}  # speaker1 spoke first: the asker
    for s in segs:  # no segment crosses a change of voice, and each has the voice of its words
        voices = {who for w, who in timed if s.start - 1e-3 <= w.start and w.end <= s.end + 1e-3}
        assert voices == {answerer[s.speaker]}, (s, voices)
    assert set(r.speech) == {"speaker1", "speaker2"} and r.speech["speaker2"] > r.speech["speaker1"]

    res = CliRunner().invoke(app, ["segment", str(corpus), "-w", str(ws.root), "--diarize", "--target-words", "8",
                                   "--speakers", "participant"])
    assert res.exit_code == 0, res.output
    assert "participant (the voice with the most speech): D speaker2" in res.output
    assert "speakers: speaker2" in res.output  # the summary lists the voices, most speech first
    kept = ws.load_doc("D").segments
    assert kept and {s.speaker for s in kept} == {"speaker2"}
    assert sum(s.n_words for s in kept) == sum(who == 1 for _, who in timed)
    # `hilbert predict` segments a new recording with the stored settings: diarized, the participant kept
    rec = segment_recording(corpus / "D.wav", ws.load_manifest().segmentation, cache_dir=ws.transcripts_dir)
    assert [(s.start, s.text, s.speaker) for s in rec.segments] == [(s.start, s.text, s.speaker) for s in kept]


def test_asking_for_diarization_without_the_extra_is_one_line_naming_the_package(tmp_path, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    sf.write(corpus / "A.wav", np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # as if it were not installed
    monkeypatch.setattr(segment_mod, "load_asr", lambda *a, **k: TimedASR([]))
    res = CliRunner().invoke(app, ["segment", str(corpus), "-w", str(tmp_path / "ws"), "--diarize"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "resemblyzer" in lines[0] and "pip install" in lines[0], res.output
    with pytest.raises(HilbertError, match="resemblyzer"):
        load_diarizer()


def test_num_speakers_is_checked_and_needs_diarize():
    assert SegmentSettings(diarize=True).diarize == "resemblyzer"
    with pytest.raises(HilbertError, match="--num-speakers: only diarization"):
        SegmentSettings(num_speakers=3)
    with pytest.raises(HilbertError, match="--num-speakers: must be"):
        SegmentSettings(diarize=True, num_speakers=0)
    with pytest.raises(HilbertError, match="--diarize: unknown diarizer 'x'"):
        SegmentSettings(diarize="x")


def test_words_take_the_speaker_they_overlap_most_and_else_the_nearest():
    turns = [Turn(0.0, 2.0, "speaker1"), Turn(2.5, 5.0, "speaker2"), Turn(8.0, 9.0, "speaker1")]
    spans = [(0.5, 1.0), (1.8, 2.6), (1.9, 3.5), (5.2, 5.4), (7.0, 7.5), (9.5, 9.9), (3.0, 3.0)]
    assert speakers_of(turns, spans) == ["speaker1", "speaker1", "speaker2", "speaker2", "speaker1", "speaker1",
                                         "speaker2"]
    assert speakers_of([], spans[:2]) == [None, None]
    assert most_speech({"": 9.0, "speaker1": 3.0, "speaker2": 3.0}) == "speaker1"  # ties: the first named
    assert most_speech({"speaker1": 3.0, "speaker2": 4.0}) == "speaker2"


def test_clustering_merges_voices_that_are_alike():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=256), rng.normal(size=256)

    def around(c, n):
        x = c + 0.1 * rng.normal(size=(n, 256))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    two = cluster(np.vstack([around(a, 5), around(b, 7)]), 2)
    assert len(set(two[:5])) == 1 and len(set(two[5:])) == 1 and two[0] != two[5]
    assert set(cluster(around(a, 12), 2)) == {0}  # one voice stays one even with two allowed
    assert set(cluster(np.vstack([around(a, 5), around(b, 7)]), 1)) == {0}


@pytest.mark.slow
@needs_weights
def test_the_mel_features_are_librosas():
    """The encoder's input, rebuilt without librosa, equals librosa's (what resemblyzer computes)."""
    librosa = pytest.importorskip("librosa")
    from hilbert_cli.corpus.diarize import mel_frames

    x = np.random.default_rng(0).normal(scale=0.1, size=SAMPLE_RATE).astype(np.float32)
    want = librosa.feature.melspectrogram(y=x, sr=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40).T
    got = mel_frames(x).numpy()
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5 * want.max()
