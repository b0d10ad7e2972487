"""`segment --channels`: stereo with one speaker per channel, each channel transcribed on its own (real
Whisper tiny.en on two eSpeak voices speaking over each other), and `embed` taking each segment's audio
from its speaker's channel; the bad inputs, each one line."""
import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import soxr
import tiny_models as tm
from test_corpus import write_audio  # tests/ is on sys.path under pytest
from typer.testing import CliRunner

from hilbert_cli.cli import app
from hilbert_cli.corpus.align import normalise
from hilbert_cli.corpus.asr import Word
from hilbert_cli.corpus.audio import SAMPLE_RATE, load_audio
from hilbert_cli.corpus.cutting import merge_channels
from hilbert_cli.corpus.segment import SegmentSettings, segment_corpus
from hilbert_cli.errors import HilbertError
from hilbert_cli.features import encoders
from hilbert_cli.features.backbones import AUDIO, resolve_backbone
from hilbert_cli.features.embed import embed_document
from hilbert_cli.workspace import SegmentedDoc, Workspace

INTERVIEWER = ["How have you been sleeping over the last two weeks?",
               "And what about your appetite, has it changed at all?"]
PARTICIPANT = ["Not very well, I wake up at four most nights and cannot get back to sleep.",
               "I eat less than before, maybe one meal a day."]


def _recall(ref: str, hyp: str) -> float:
    """Share of the reference words found in the hypothesis (each heard word counts once)."""
    heard = Counter(normalise(w) for w in hyp.split())
    found = 0
    for w in map(normalise, ref.split()):
        if heard[w] > 0:
            heard[w] -= 1
            found += 1
    return found / len(ref.split())


@pytest.fixture(scope="module")
def two_voices():
    """(left, right) 16-s channels: the interviewer (en-us+f2) on the left, the participant (en-us+m3) on the
    right, each answer starting a second before the question ends and the next question over the answer's end."""
    from hilbert_cli.demo.tts import synthesize

    left, right = np.zeros(16 * SAMPLE_RATE, np.float32), np.zeros(16 * SAMPLE_RATE, np.float32)

    def say(channel, t, text, voice):
        audio, _ = synthesize(text, voice=voice)
        i = int(t * SAMPLE_RATE)
        channel[i:i + len(audio)] += audio
        return t + len(audio) / SAMPLE_RATE

    end = say(left, 0.5, INTERVIEWER[0], "en-us+f2")
    end = say(right, end - 1.0, PARTICIPANT[0], "en-us+m3")
    end = say(left, end - 0.8, INTERVIEWER[1], "en-us+f2")
    say(right, end + 0.3, PARTICIPANT[1], "en-us+m3")
    return left, right


def test_each_channel_is_transcribed_on_its_own_and_its_words_carry_its_name(tmp_path, two_voices, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    left, right = two_voices
    corpus = tmp_path / "c"
    corpus.mkdir()
    sf.write(corpus / "S.wav", np.stack([left, right], axis=1), SAMPLE_RATE)
    ws = Workspace(tmp_path / "ws")
    settings = SegmentSettings(target_words=8, channels="interviewer,participant")
    r = segment_corpus(corpus, ws, settings)
    assert not r.failed, r.problems
    segs = ws.load_doc("S").segments
    said = {sp: " ".join(s.text for s in segs if s.speaker == sp) for sp in ("interviewer", "participant")}
    assert {s.speaker for s in segs} == {"interviewer", "participant"}
    assert {(s.speaker, s.channel) for s in segs} == {("interviewer", 0), ("participant", 1)}
    assert _recall(" ".join(INTERVIEWER), said["interviewer"]) >= 0.8, said
    assert _recall(" ".join(PARTICIPANT), said["participant"]) >= 0.8, said
    assert not set(map(normalise, said["interviewer"].split())) & {"meal", "wake", "nights"}  # no crosstalk
    assert set(r.speech) == {"interviewer", "participant"}

    # each channel has its own cache entry, so a re-run (other cuts) is free
    cached = [json.loads(p.read_text()) for p in ws.transcripts_dir.glob("*.json")]
    assert sorted(c["channel"] for c in cached) == [0, 1]
    r = segment_corpus(corpus, ws, SegmentSettings(target_words=30, channels="interviewer,participant",
                                                   speakers="Participant"))
    assert [d.asr for d in r.documents] == ["cached"]
    assert {s.speaker for s in ws.load_doc("S").segments} == {"participant"}  # --speakers chooses a channel

    # the same recording averaged (no --channels), as before: the voices over each other lose words
    mono = segment_corpus(corpus, Workspace(tmp_path / "ws-mono"), SegmentSettings(target_words=8))
    assert not mono.failed
    heard = " ".join(s.text for s in Workspace(tmp_path / "ws-mono").load_doc("S").segments)
    both = " ".join(INTERVIEWER + PARTICIPANT)
    assert _recall(both, " ".join(said.values())) > _recall(both, heard) + 0.1


def test_turns_of_two_channels_are_merged_by_time_without_chopping_a_turn():
    left = [Word(0.0, 0.4, "how"), Word(0.5, 0.9, "are"), Word(1.0, 1.4, "you"), Word(6.0, 6.5, "good")]
    right = [Word(0.6, 0.8, "mm"), Word(2.0, 2.4, "fine"), Word(2.5, 3.0, "thanks")]
    words, speakers = merge_channels([left, right], ["I", "P"])
    assert [w.text for w in words] == ["how", "are", "you", "mm", "fine", "thanks", "good"]
    assert speakers == ["I", "I", "I", "P", "P", "P", "I"]


@pytest.fixture(scope="module")
def sbert(tmp_path_factory):
    return str(tm.sentence_dir(tmp_path_factory.mktemp("models")))


def test_embed_takes_each_segment_audio_from_its_speaker_channel(tmp_path, sbert):
    """A timed transcript beside a stereo file: its cues and speakers are used (no ASR), and a segment whose
    speaker names a channel is embedded from that channel alone."""
    rng = np.random.default_rng(0)
    rate = 22050
    t = np.arange(8 * rate) / rate
    left = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    right = (0.05 * rng.standard_normal(t.size)).astype(np.float32)
    corpus = tmp_path / "c"
    corpus.mkdir()
    sf.write(corpus / "S.wav", np.stack([left, right], axis=1), rate, subtype="FLOAT")
    (corpus / "S.json").write_text(json.dumps([
        {"start": 0.5, "end": 3.0, "text": "how are you", "speaker": "Interviewer"},
        {"start": 2.0, "end": 6.0, "text": "fine thanks", "speaker": "Participant"},
        {"start": 6.5, "end": 7.5, "text": "noted", "speaker": "Note-taker"}]))
    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(strategy="cues", channels="interviewer,participant"))
    assert not r.failed and [d.source for d in r.documents] == ["transcript"]
    doc = ws.load_doc("S")
    assert [(s.speaker, s.channel) for s in doc.segments] == [("Interviewer", 0), ("Participant", 1),
                                                               ("Note-taker", None)]

    A, _ = embed_document(doc, "spectrogram", sbert, cache_dir=tmp_path / "emb")
    enc = encoders.load_encoder(resolve_backbone("spectrogram", AUDIO, False))
    spans = [(s.start, s.end) for s in doc.segments]
    by = {ch: enc.embed_segments(load_audio(corpus / "S.wav", channel=ch), spans) for ch in (0, 1, None)}
    np.testing.assert_allclose(A[0], by[0][0], atol=1e-2)  # float16 in the cache
    np.testing.assert_allclose(A[1], by[1][1], atol=1e-2)  # the participant: the right channel's samples
    np.testing.assert_allclose(A[2], by[None][2], atol=1e-2)  # no channel of its own: the average
    assert np.abs(by[1][1] - by[None][1]).max() > 0.5  # and the channel is not the average
    # the segment audio the participant's vector comes from is exactly the right channel, resampled
    right16 = load_audio(corpus / "S.wav", channel=1)
    np.testing.assert_allclose(right16, soxr.resample(right, rate, SAMPLE_RATE, quality="HQ"), atol=1e-6)

    # a workspace from before channels (no `channel` in its segments) loads, averaged, under its old cache key
    old = doc.to_json()
    for s in old["segments"]:
        del s["channel"]
    mono = SegmentedDoc.from_json(old)
    assert {s.channel for s in mono.segments} == {None}
    A_mono, _ = embed_document(mono, "spectrogram", sbert, cache_dir=tmp_path / "emb")
    np.testing.assert_allclose(A_mono[1], by[None][1], atol=1e-2)


def _stereo_corpus(root, mono_too=False):
    root.mkdir()
    write_audio(root / "S.wav", seconds=6.0, channels=2)
    (root / "S.srt").write_text("1\n00:00:00,500 --> 00:00:05,000\nINTERVIEWER: How are you today?\n")
    if mono_too:
        write_audio(root / "M.wav", seconds=6.0)
        (root / "M.srt").write_text("1\n00:00:00,500 --> 00:00:05,000\nFine thanks.\n")
    return root


@pytest.mark.parametrize("channels,message", [
    ("interviewer,,participant", "--channels: an empty channel name in 'interviewer,,participant'; give one name"),
    ("interviewer,", "--channels: an empty channel name"),
    ("", "--channels: an empty channel name"),
    ("Ann,ann", "--channels: 'ann' is given twice (names are compared without case); give each channel its own"),
])
def test_cli_bad_channel_names_are_one_line(tmp_path, channels, message):
    corpus = _stereo_corpus(tmp_path / "c")
    res = CliRunner().invoke(app, ["segment", str(corpus), "-w", str(tmp_path / "ws"), "--channels", channels])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1 and message in res.output, res.output
    with pytest.raises(HilbertError, match="--channels"):
        SegmentSettings(channels=channels)


def test_cli_channel_count_that_does_not_match_the_file(tmp_path):
    corpus = _stereo_corpus(tmp_path / "c", mono_too=True)
    res = CliRunner().invoke(app, ["segment", str(corpus), "-w", str(tmp_path / "ws"), "--strategy", "cues",
                                   "--channels", "a,b,c"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    problem = [line for line in res.output.splitlines() if line.startswith("problem:")]
    assert problem == [("problem: S.wav: has 2 channels but --channels names 3 (a,b,c); give one name per channel, "
                        "left first, or segment this recording in a corpus of its own.")]
    # a mono recording beside stereo ones is segmented as it is, and the summary names it
    assert "--channels: 1 mono recording(s) segmented as one channel (M)" in " ".join(res.output.split())
    assert Workspace(tmp_path / "ws").load_doc("M").segments[0].speaker is None

    res = CliRunner().invoke(app, ["segment", str(corpus), "-w", str(tmp_path / "ws"), "--strategy", "cues",
                                   "--channels", "interviewer,participant"])
    assert res.exit_code == 0, res.output
    s = Workspace(tmp_path / "ws").load_doc("S").segments[0]
    assert (s.speaker, s.channel) == ("INTERVIEWER", 0)  # the transcript's speaker, matched to its channel
    assert Workspace(tmp_path / "ws").load_doc("S").settings["channels"] == ["interviewer", "participant"]


class LoudWordsASR:
    """Hears one word per loud half second: the word VOCAB[k] for the half second k of the recording."""
    identity = "loud-words:1"
    VOCAB = tuple(f"w{k}" for k in range(40))

    def __init__(self):
        self.calls = 0

    def transcribe(self, audio, progress=None):
        self.calls += 1
        half = SAMPLE_RATE // 2
        return [Word(k / 2, k / 2 + 0.4, self.VOCAB[k]) for k in range(len(audio) // half)
                if np.abs(audio[k * half:(k + 1) * half]).max() > 0.05]


@pytest.mark.parametrize("named", [False, True])
def test_plain_transcript_beside_channels_takes_speakers_from_the_channels_unless_it_names_them(
        tmp_path, monkeypatch, named):
    from hilbert_cli.corpus import segment as segment_mod

    engine = LoudWordsASR()
    monkeypatch.setattr(segment_mod, "load_asr", lambda *a, **k: engine)
    t = np.arange(8 * SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    left, right = np.where((t >= 0.5) & (t < 3.0), tone, 0), np.where((t >= 3.0) & (t < 6.0), tone, 0)
    corpus = tmp_path / "c"
    corpus.mkdir()
    sf.write(corpus / "S.wav", np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    first, second = " ".join(LoudWordsASR.VOCAB[1:6]), " ".join(LoudWordsASR.VOCAB[6:12])
    (corpus / "S.txt").write_text(f"DOCTOR: {first}\nPATIENT: {second}\n" if named else f"{first} {second}\n")
    ws = Workspace(tmp_path / "ws")
    r = segment_corpus(corpus, ws, SegmentSettings(channels="left,right"))
    assert not r.failed, r.problems
    segs = ws.load_doc("S").segments
    assert engine.calls == 2 and {s.source for s in segs} == {"transcript+asr-timing"}
    said = {s.speaker: s.text for s in segs}
    assert said == ({"DOCTOR": first, "PATIENT": second} if named else {"left": first, "right": second})
    assert [s.channel for s in segs] == ([None, None] if named else [0, 1])
