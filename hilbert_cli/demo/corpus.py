"""`hilbert demo-data DIR`: a synthetic interview corpus whose ground truth is known.

Every document is an interview: a fixed interviewer voice asks questions, the interviewee answers.
Most answers are neutral ("I take the train into town on Mondays"). Like a real interview, only a
few of the interviewee's sentences reveal anything: REVEALING_SENTENCES of them per interview are
emotional sentences, shared frames ("work has been ... this week") with a positive or a negative
word in the slot, spoken in a manner of their own. Three hidden factors are drawn per document:
  mood       (words)  the sign of the slot words of the revealing sentences. Many rare slot
                      words, so that the class is in the meaning (a sentence encoder sees it) more
                      than in recurring sounds (an audio encoder would pick those up too).
  prosody    (voice)  the interviewee's usual voice: "typical" (a little faster, higher, livelier)
                      or "slowed"; the class ranges are close, so it is a tendency, not a switch.
  manner     (voice)  how the revealing sentences are spoken: "lively" (faster, higher, wide pitch
                      range) or "flat" (slower, lower, nearly monotone), around the usual voice.
The labels (labels.csv):
  mood        words only.
  prosody     voice only.
  spectrum    4 imbalanced classes, a function of mood and prosody: needs words AND voice, but each
              modality alone still tells two classes apart.
  congruence  whether the revealing sentences are spoken in a manner that matches their words
              (positive words lively or negative words flat: "congruent"; the crossed combinations:
              "incongruent"). It is balanced within every spectrum class, and mood is balanced within
              each prosody class, so the words alone (mood) and the voice alone (prosody, manner) say
              nothing about it: only the agreement of what is said with how it is said, on the same few
              sentences, does.
Per-subject timbre (an eSpeak male variant), loudness, noise and word gaps vary within class, so a
model has to learn the factor rather than a fingerprint. The recordings come in the formats a real
corpus has (wav and flac, 22.05/24/44.1 kHz, mono and stereo; a stereo recording has one speaker per
channel, interviewer left, interviewee right, each microphone picking up a little of the other voice)
and the transcripts as a mix of plain text with `Interviewer:` / `Interviewee:` turn prefixes, timed
cues (.srt with name prefixes, .vtt with `<v>` voice tags, .TextGrid with a word tier per speaker and a
phone tier, .json with a speaker field; times from the synthesis) and none (to be transcribed).
Deterministic under `seed`: the same seed writes the same bytes.
"""
from __future__ import annotations

import io
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import text as demo_text
from ..atomic import atomic_save, atomic_write_json, atomic_write_text
from ..errors import HilbertError
from .tts import Engine

MIN_DOCS = 8  # fewer cannot hold every spectrum class and every file format
MIN_SECONDS = 5.0  # shortest document length accepted (seconds)
MARKER_DIR = ".hilbert-demo"  # hidden, so the corpus reader skips it
TRUTH_FILE = "truth.json"  # in MARKER_DIR: what was generated, the ground truth of every document
NEW_DIR = "new"  # unlabelled recordings to try `hilbert predict` on (the corpus reader skips subfolders)
NEW_TRANSCRIPTS = ("srt", None, "txt", None)  # one new recording per spectrum class, with and without transcripts
NEW_INDEX = 1_000_000  # offset of the new recordings' synthesis index: they never repeat a corpus document

TASKS = ("mood", "prosody", "spectrum", "congruence")
# spectrum class -> (mood, prosody, prior); imbalanced on purpose, but only along prosody: mood must be
# balanced within each prosody class, or the voice (prosody and manner together) would predict congruence
SPECTRUM = {
    "none": ("positive", "typical", 0.35),
    "mild": ("negative", "typical", 0.35),
    "moderate": ("positive", "slowed", 0.15),
    "severe": ("negative", "slowed", 0.15),
}
CONGRUENT_MANNER = {"positive": "lively", "negative": "flat"}  # mood -> the manner that matches it
CONGRUENCE = ("congruent", "incongruent")
EXTRA_MANNER = {"typical": "flat", "slowed": "lively"}  # see _congruence: odd class sizes stay balanced


@dataclass(frozen=True)
class ProsodyClass:
    """eSpeak parameter ranges of one prosody class (drawn uniformly per document)."""

    rate_wpm: tuple[int, int]
    pitch: tuple[int, int]  # eSpeak 0-99
    pitch_range: tuple[int, int]  # eSpeak 0-99, 0 = monotone


@dataclass(frozen=True)
class Manner:
    """How the revealing sentences are spoken, relative to the interviewee's usual voice."""

    rate_shift_wpm: int  # added to the document's speaking rate (words per minute)
    pitch_shift: int  # added to the document's base pitch (eSpeak 0-99)
    pitch_range: tuple[int, int]  # eSpeak 0-99, drawn per sentence (replaces the document's)


PROSODY = {
    "typical": ProsodyClass(rate_wpm=(165, 195), pitch=(48, 62), pitch_range=(45, 60)),
    "slowed": ProsodyClass(rate_wpm=(145, 175), pitch=(38, 52), pitch_range=(35, 50)),
}
MANNER = {
    "lively": Manner(rate_shift_wpm=15, pitch_shift=12, pitch_range=(80, 95)),
    "flat": Manner(rate_shift_wpm=-15, pitch_shift=-12, pitch_range=(0, 10)),
}
SPEAKER_VARIANTS = ("m1", "m2", "m3", "m4", "m6", "m7")  # interviewee timbre, one per subject
SPEAKERS = ("Interviewer", "Interviewee")  # speaker names in every transcript; stereo files: channel order
CROSSTALK = (0.05, 0.15)  # stereo: gain of the other speaker's voice in a speaker's microphone (uniform per document)
INTERVIEWER = dict(voice="en-us+f2", rate_wpm=170, pitch=50, pitch_range=50)
REVEALING_SENTENCES = (2, 4)  # emotional answer sentences per interview (uniform, inclusive); the rest are neutral
SECONDS_PER_ANSWER_SENTENCE = 4.0  # document time per answer sentence, questions and pauses included (4.1 measured),
# to spread the revealing sentences over the whole interview before its length is known
# (extension, sample rate Hz, channels), cycled over the documents in a shuffled order
AUDIO_FORMATS = (("wav", 22050, 1), ("flac", 44100, 2), ("wav", 24000, 2),
                 ("flac", 22050, 1), ("wav", 44100, 1), ("flac", 24000, 1))
TRANSCRIPT_KINDS = ("txt", "txt", "srt", "vtt", "TextGrid", "json", None, None)  # None: no transcript
SILENCE_LEVEL = 0.003  # |sample| below this counts as silence when trimming a synthesised sentence
LEAD_IN = (0.3, 0.8)  # seconds of silence before the first question
PAUSE_IN_ANSWER = (0.25, 0.6)  # seconds between sentences of one answer
PAUSE_AFTER_QUESTION = (0.5, 1.0)
PAUSE_BETWEEN_TURNS = (0.7, 1.3)
END_SILENCE = 0.5  # seconds after the last sentence
ROOM_FOR_ANSWER = 3.0  # seconds a question needs after it for at least one answer
NOISE_DBFS = (-55.0, -45.0)  # background noise level, uniform per document
PEAK = (0.5, 0.9)  # peak amplitude after gain, uniform per document


@dataclass
class DemoDoc:
    doc_id: str
    subject: str
    labels: dict[str, str]
    voice: dict  # eSpeak settings of the interviewee
    audio: str  # file name
    sample_rate: int
    channels: int
    transcript: str | None  # file name, None = no transcript (to be transcribed)
    target_seconds: float
    manner: str = ""  # how the revealing sentences are spoken (a key of MANNER)
    duration: float = 0.0
    text: str = ""  # everything said, in order
    cues: list[dict] = field(default_factory=list)  # {start, end, speaker, text} per sentence
    words: list[list] = field(default_factory=list)  # [word, start, end] per word
    revealing: list[int] = field(default_factory=list)  # indices in `cues` of the revealing (emotional) sentences


@dataclass
class DemoResult:
    out_dir: Path
    n_docs: int
    total_seconds: float
    label_counts: dict[str, dict[str, int]]  # task -> label -> documents
    audio_formats: dict[str, int]  # e.g. "flac 44100 Hz stereo" -> documents
    transcripts: dict[str, int]  # transcript format ("none" = to be transcribed) -> documents
    n_new: int = 0  # unlabelled recordings in NEW_DIR


MIN_PER_CLASS = 2  # training and cross-validation need at least two documents of every class


def _quota(n: int, priors: list[float]) -> list[int]:
    """Largest-remainder rounding of n * priors (exact class counts, so proportions hold for small n),
    then at least MIN_PER_CLASS per class, taken from the largest classes (matters only below ~20 docs)."""
    raw = np.asarray(priors) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    while counts.min() < MIN_PER_CLASS and counts.max() > MIN_PER_CLASS:
        counts[len(counts) - 1 - counts[::-1].argmax()] -= 1  # the last of the largest keeps the order
        counts[counts.argmin()] += 1
    return counts.tolist()


def _spread(rng: np.random.Generator, n: int, options: tuple) -> list:
    """Each option about equally often, in random order (independent of the labels)."""
    reps = -(-n // len(options))
    return [options[i] for i in rng.permutation(np.tile(np.arange(len(options)), reps))[:n]]


def _congruence(rng: np.random.Generator, spectrum: np.ndarray) -> list[str]:
    """Half of every spectrum class congruent, in random order, so congruence tells nothing about mood or
    prosody. A class of odd size gives its extra document the manner EXTRA_MANNER[prosody] (whichever
    congruence that takes): within a prosody class the extras then share one manner, and across the two
    classes they take both, which (with equal class sizes within a prosody class) keeps congruence balanced
    given the voice (prosody and manner) and given the words (mood) alike."""
    out = [""] * len(spectrum)
    for cls, (mood, prosody, _) in SPECTRUM.items():
        members = np.flatnonzero(spectrum == cls)
        extra_congruent = CONGRUENT_MANNER[mood] == EXTRA_MANNER[prosody]
        n_congruent = (len(members) + extra_congruent) // 2
        for rank, j in enumerate(rng.permutation(len(members))):
            out[members[j]] = CONGRUENCE[0] if rank < n_congruent else CONGRUENCE[1]
    return out


def _manner(mood: str, congruence: str) -> str:
    """The manner of the revealing sentences: the one that matches the mood when congruent, the other one otherwise."""
    match = CONGRUENT_MANNER[mood]
    return match if congruence == CONGRUENCE[0] else next(m for m in MANNER if m != match)


def plan_corpus(n_docs: int, seed: int, min_seconds: float, max_seconds: float) -> list[DemoDoc]:
    """Labels, voices, formats and lengths of every document (cheap; synthesis comes later)."""
    rng = np.random.default_rng(seed)
    classes = list(SPECTRUM)
    spectrum = np.repeat(classes, _quota(n_docs, [SPECTRUM[c][2] for c in classes]))[rng.permutation(n_docs)]
    congruence = _congruence(rng, spectrum)
    formats = _spread(rng, n_docs, AUDIO_FORMATS)
    transcripts = _spread(rng, n_docs, TRANSCRIPT_KINDS)
    n_subjects = -(-n_docs // 2)
    variants = [SPEAKER_VARIANTS[i] for i in rng.permutation(np.arange(n_subjects) % len(SPEAKER_VARIANTS))]
    docs = []
    for i in range(n_docs):
        mood, prosody, _ = SPECTRUM[spectrum[i]]
        p = PROSODY[prosody]
        voice = dict(
            voice=f"en-us+{variants[i // 2]}",
            rate_wpm=int(rng.integers(*p.rate_wpm, endpoint=True)),
            pitch=int(rng.integers(*p.pitch, endpoint=True)),
            pitch_range=int(rng.integers(*p.pitch_range, endpoint=True)),
            volume=int(rng.integers(80, 120, endpoint=True)),
            word_gap_ms=int(rng.choice([0, 0, 10, 20])),
        )
        ext, rate, channels = formats[i]
        doc_id = f"P{i + 1:03d}"
        docs.append(DemoDoc(
            doc_id=doc_id, subject=f"S{i // 2 + 1:02d}",
            labels={"mood": mood, "prosody": prosody, "spectrum": str(spectrum[i]), "congruence": congruence[i]},
            voice=voice, audio=f"{doc_id}.{ext}", sample_rate=rate, channels=channels,
            transcript=f"{doc_id}.{transcripts[i]}" if transcripts[i] else None,
            target_seconds=round(float(rng.uniform(min_seconds, max_seconds)), 2),
            manner=_manner(mood, congruence[i]),
        ))
    return docs


def plan_new(seed: int, min_seconds: float, max_seconds: float) -> list[DemoDoc]:
    """One unlabelled recording per spectrum class for NEW_DIR, drawn like the corpus from another seed
    (so other voices and words), in random class order; ground truth only in the truth file."""
    pool = plan_corpus(10, [seed, NEW_INDEX], min_seconds, max_seconds)  # 4/3/2/1 per class: every class
    picked = [next(d for d in pool if d.labels["spectrum"] == c) for c in SPECTRUM]
    picked.sort(key=pool.index)
    docs = []
    for k, (d, kind) in enumerate(zip(picked, NEW_TRANSCRIPTS), start=1):
        doc_id = f"N{k:03d}"
        ext = Path(d.audio).suffix
        docs.append(DemoDoc(doc_id=doc_id, subject=f"new-{k}", labels=d.labels, voice=d.voice,
                            audio=f"{NEW_DIR}/{doc_id}{ext}", sample_rate=d.sample_rate, channels=d.channels,
                            transcript=f"{NEW_DIR}/{doc_id}.{kind}" if kind else None, target_seconds=d.target_seconds,
                            manner=d.manner))
    return docs


def _sentence(rng: np.random.Generator, mood: str | None) -> str:
    """An answer sentence: emotional (a frame with a `mood` slot word) or, with mood None, neutral."""
    if mood is not None:
        frame = demo_text.FRAMES[rng.integers(len(demo_text.FRAMES))]
        slot = demo_text.FEEL if "{feel}" in frame else demo_text.THING
        words = slot[mood]
        clause = demo_text.mood_sentence(frame, demo_text.INTENSIFIERS[rng.integers(len(demo_text.INTENSIFIERS))],
                                         words[rng.integers(len(words))])
    else:
        clause = demo_text.NEUTRAL[rng.integers(len(demo_text.NEUTRAL))]
    s = demo_text.OPENERS[rng.integers(len(demo_text.OPENERS))] + clause
    return s[0].upper() + s[1:]


def _sentence_voice(rng: np.random.Generator, doc: DemoDoc, revealing: bool) -> dict:
    """eSpeak settings of one answer sentence: the document's voice with a small jitter, as in real speech,
    and for a revealing sentence shifted into the document's manner."""
    rate = doc.voice["rate_wpm"] + int(rng.integers(-4, 5))
    pitch = doc.voice["pitch"] + int(rng.integers(-2, 3))
    pitch_range = doc.voice["pitch_range"]
    if revealing:
        m = MANNER[doc.manner]
        rate, pitch = rate + m.rate_shift_wpm, pitch + m.pitch_shift
        pitch_range = int(rng.integers(*m.pitch_range, endpoint=True))
    return dict(doc.voice, rate_wpm=rate, pitch=int(np.clip(pitch, 0, 99)), pitch_range=pitch_range)


def _speak(tts: Engine, text: str, **voice) -> tuple[np.ndarray, list, int]:
    """Synthesise one sentence, trimmed of eSpeak's leading and trailing silence."""
    samples, rate, words = tts.synthesize_native(text, **voice)
    x = samples.astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(x) > SILENCE_LEVEL)
    a, b = (loud[0], loud[-1] + 1) if loud.size else (0, len(x))
    shift = a / rate
    words = [[w.word, max(w.start - shift, 0.0), min(max(w.end - shift, 0.0), (b - a) / rate)] for w in words]
    return x[a:b], words, rate


def render_doc(
    tts: Engine, doc: DemoDoc, seed: int, index: int, min_seconds: float, max_seconds: float,
) -> tuple[np.ndarray, int]:
    """Synthesise `doc` (fills in its duration, text, cues and words): float32 audio (samples, speakers), one
column per name of SPEAKERS holding only that speaker's voice (the recording is their sum), and its rate in Hz.

    Turns (a question, then 2-5 answer sentences) are added until the document reaches its target
    length; a sentence that would push it past `max_seconds` ends it instead, once it has `min_seconds`.
    Each answer sentence is revealing with probability (revealing sentences still to place) / (answer
    sentences the rest of the target length holds), so that the drawn number of them spreads over the
    whole interview and the last ones are placed before it ends."""
    rng = np.random.default_rng([seed, index])
    to_reveal = int(rng.integers(REVEALING_SENTENCES[0], REVEALING_SENTENCES[1], endpoint=True))
    pieces: list[np.ndarray] = []
    owner: list[int] = []  # per piece: the column of SPEAKERS it belongs to (pauses: 0, they are zeros)
    t = 0.0  # seconds so far

    def fits(pause: float, clip: tuple, reserve: float = 0.0) -> bool:
        return t < min_seconds or t + pause + len(clip[0]) / clip[2] + reserve + END_SILENCE <= max_seconds

    def add(pause: float, clip: tuple, text: str, speaker: str) -> None:
        nonlocal t
        x, words, rate = clip
        pieces.append(np.zeros(int(round(pause * rate)), np.float32))
        start = t + len(pieces[-1]) / rate
        pieces.append(x)
        owner.extend([0, SPEAKERS.index(speaker)])
        t = start + len(x) / rate
        doc.cues.append(dict(start=round(start, 3), end=round(t, 3), speaker=speaker, text=text))
        doc.words += [[w, round(start + a, 3), round(start + b, 3)] for w, a, b in words]

    questions = rng.permutation(len(demo_text.QUESTIONS))
    done = False
    for turn in range(10_000):
        pause = rng.uniform(*(PAUSE_BETWEEN_TURNS if turn else LEAD_IN))
        text = demo_text.QUESTIONS[questions[turn % len(questions)]]
        clip = _speak(tts, text, **INTERVIEWER)
        if turn and not fits(pause, clip, reserve=ROOM_FOR_ANSWER):
            break
        add(pause, clip, text, SPEAKERS[0])
        for k in range(int(rng.integers(2, 5, endpoint=True))):
            pause = rng.uniform(*(PAUSE_IN_ANSWER if k else PAUSE_AFTER_QUESTION))
            room = max(1.0, np.floor((doc.target_seconds - t) / SECONDS_PER_ANSWER_SENTENCE))
            revealing = rng.random() < to_reveal / room
            text = _sentence(rng, doc.labels["mood"] if revealing else None)
            clip = _speak(tts, text, **_sentence_voice(rng, doc, revealing))
            if turn and not fits(pause, clip):
                done = True
                break
            if revealing:
                doc.revealing.append(len(doc.cues))
                to_reveal -= 1
            add(pause, clip, text, SPEAKERS[1])
            if t >= doc.target_seconds:
                done = True
                break
        if done:
            break
    rate = clip[2]
    pieces.append(np.zeros(int(round(END_SILENCE * rate)), np.float32))
    owner.append(0)
    tracks = np.zeros((sum(len(x) for x in pieces), len(SPEAKERS)), np.float32)
    at = 0
    for x, k in zip(pieces, owner):
        tracks[at:at + len(x), k] = x
        at += len(x)
    tracks *= rng.uniform(*PEAK) / max(float(np.abs(tracks.sum(axis=1)).max()), 1e-9)
    doc.duration = round(len(tracks) / rate, 3)
    doc.text = "\n".join(_turn_lines(doc.cues))
    return tracks, rate


def _turn_lines(cues: list[dict], names: bool = False) -> list[str]:
    """One line per speaker turn (led by the speaker's name with `names`: what a plain interview transcript
    looks like)."""
    lines: list[list[str]] = []
    for i, c in enumerate(cues):
        if i == 0 or c["speaker"] != cues[i - 1]["speaker"]:
            lines.append([c["speaker"] + ":"] if names else [])
        lines[-1].append(c["text"])
    return [" ".join(line) for line in lines]


def _to_file_audio(tracks: np.ndarray, rate: int, doc: DemoDoc, seed: int, index: int) -> np.ndarray:
    """Resample to the document's file rate and add background noise. Mono: both voices on one microphone;
    stereo: one speaker per channel (SPEAKERS order), each microphone picking up the other voice faintly."""
    import soxr

    rng = np.random.default_rng([seed, index, 1])
    x = soxr.resample(tracks, rate, doc.sample_rate, quality="HQ") if doc.sample_rate != rate else tracks
    noise = 10 ** (rng.uniform(*NOISE_DBFS) / 20)
    if doc.channels == 2:
        bleed = rng.uniform(*CROSSTALK)
        mics = x + bleed * x[:, ::-1]
    else:
        mics = x.sum(axis=1, keepdims=True)
    mics = mics + noise * rng.standard_normal(mics.shape).astype(np.float32)
    return np.clip(mics, -1.0, 1.0).astype(np.float32)


# --- transcript files -------------------------------------------------------------------------
def _clock(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _srt(cues: list[dict]) -> str:
    """SubRip, the speaker's name leading each cue (the way subtitle tools mark who speaks)."""
    return "".join(f"{i}\n{_clock(c['start'], ',')} --> {_clock(c['end'], ',')}\n{c['speaker']}: {c['text']}\n\n"
                   for i, c in enumerate(cues, start=1))


def _vtt(cues: list[dict]) -> str:
    """WebVTT with a voice tag per cue."""
    return "WEBVTT\n\n" + "".join(f"{_clock(c['start'], '.')} --> {_clock(c['end'], '.')}\n<v {c['speaker']}>{c['text']}\n\n"
                                    for c in cues)


def _tier(name: str, spans: list[tuple[float, float, str]], duration: float, number: int) -> str:
    """One interval tier (Praat long text format); the gaps between spans become empty intervals."""
    intervals, t = [], 0.0
    for a, b, text in spans:
        if a > t:
            intervals.append((t, a, ""))
        intervals.append((a, b, text))
        t = b
    if duration > t:
        intervals.append((t, duration, ""))
    head = (f'    item [{number}]:\n        class = "IntervalTier"\n        name = "{name}"\n'
            f'        xmin = 0\n        xmax = {duration}\n        intervals: size = {len(intervals)}\n')
    return head + "".join(
        f'        intervals [{i}]:\n            xmin = {a}\n            xmax = {b}\n            text = "{s.replace(chr(34), 2 * chr(34))}"\n'
        for i, (a, b, s) in enumerate(intervals, start=1))


def _phones(words: list[list]) -> list[tuple[float, float, str]]:
    """A phone tier as forced aligners write one: each word's letters as stand-in phones, sharing its time."""
    out = []
    for w, a, b in words:
        letters = [ch for ch in w.lower() if ch.isalpha()] or ["sil"]
        step = (b - a) / len(letters)
        out += [(round(a + i * step, 4), round(a + (i + 1) * step, 4), ch) for i, ch in enumerate(letters)]
    return [(a, b, ch) for a, b, ch in out if b > a]


def _textgrid(doc: "DemoDoc") -> str:
    """Praat long text format as a researcher's annotation has it: a sentence tier per speaker (named after
    the speaker) and a phone tier; the reader has to pick the speakers' tiers and leave the phones."""
    tiers = [(sp, [(c["start"], c["end"], c["text"]) for c in doc.cues if c["speaker"] == sp]) for sp in SPEAKERS]
    tiers.append(("phones", _phones(doc.words)))
    head = (f'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = {doc.duration}\ntiers? <exists>\n'
            f'size = {len(tiers)}\nitem []:\n')
    return head + "".join(_tier(name, spans, doc.duration, i) for i, (name, spans) in enumerate(tiers, start=1))


def transcript_text(doc: DemoDoc) -> str:
    fmt = Path(doc.transcript).suffix.lower()
    if fmt == ".txt":
        return "\n".join(_turn_lines(doc.cues, names=True)) + "\n"
    if fmt == ".srt":
        return _srt(doc.cues)
    if fmt == ".vtt":
        return _vtt(doc.cues)
    if fmt == ".textgrid":
        return _textgrid(doc)
    return json.dumps([{k: c[k] for k in ("start", "end", "speaker", "text")} for c in doc.cues], indent=1) + "\n"


# --- the folder -------------------------------------------------------------------------------
def _previous_files(out_dir: Path) -> list[str]:
    """Files of an earlier demo corpus in `out_dir` (to replace); refuse a folder holding anything else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise HilbertError(f"{out_dir}: exists and is not a folder; give a new or empty folder for the demo corpus.")
    present = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")) if out_dir.is_dir() else []
    if (out_dir / NEW_DIR).is_dir():  # the new recordings' folder: judged file by file
        present.remove(NEW_DIR)
        present += sorted(f"{NEW_DIR}/{p.name}" for p in (out_dir / NEW_DIR).iterdir() if not p.name.startswith("."))
    truth = out_dir / MARKER_DIR / TRUTH_FILE
    known: list[str] = []
    if truth.is_file():
        try:
            known = list(json.loads(truth.read_text(encoding="utf-8"))["files"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise HilbertError(f"{truth}: damaged demo-corpus record; delete {out_dir} or choose another folder.") from None
    foreign = [name for name in present if name not in known]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise HilbertError(
            f"{out_dir}: the folder is not empty and is not a demo corpus (it holds {shown}); "
            "choose a new or empty folder."
        )
    return known


def _readme(docs: list[DemoDoc], seed: int) -> str:
    counts = {t: Counter(d.labels[t] for d in docs) for t in TASKS}
    fmt = lambda t: ", ".join(f"{k} {v}" for k, v in sorted(counts[t].items()))  # noqa: E731
    cells = "\n".join(f"    {c:<9} = mood {m}, prosody {p}  (prior {q:.0%})" for c, (m, p, q) in SPECTRUM.items())
    prosody = "\n".join(f"    {k:<8} rate {v.rate_wpm[0]}-{v.rate_wpm[1]} words/min, pitch {v.pitch[0]}-{v.pitch[1]}, "
                        f"pitch range {v.pitch_range[0]}-{v.pitch_range[1]} (eSpeak 0-99 scales)"
                        for k, v in PROSODY.items())
    manner = "\n".join(f"    {k:<8} rate {v.rate_shift_wpm:+d} words/min, pitch {v.pitch_shift:+d}, "
                       f"pitch range {v.pitch_range[0]}-{v.pitch_range[1]}" for k, v in MANNER.items())
    lo, hi = REVEALING_SENTENCES
    return f"""Synthetic interview corpus written by `hilbert demo-data` (seed {seed}).

{len(docs)} interviews, {sum(d.duration for d in docs) / 60:.1f} minutes in all, two per subject (column
`subject`). Speech synthesised offline with eSpeak NG: an interviewer (one fixed voice) asks questions,
the interviewee answers. Most answers are neutral; {lo}-{hi} answer sentences per interview are revealing:
shared frames with a positive or a negative word in the slot ("work has been ... this week"), spoken in a
manner of their own. Labels in labels.csv; the ground truth is known by construction:

mood        carried by the WORDS only: the sign of the revealing sentences' slot words. The voice does
            not depend on it. Expected: text-only models find it, audio-only models do not.
            Counts: {fmt("mood")}
prosody     carried by the VOICE only: the interviewee's usual speaking rate, pitch and pitch range,
            drawn per interview from close class ranges; the words are drawn without looking at it.
            Expected: audio-only finds it, text-only does not.
{prosody}
            Counts: {fmt("prosody")}
spectrum    4 imbalanced classes, a function of both factors; needs words AND voice:
{cells}
            Counts: {fmt("spectrum")}
congruence  whether the revealing sentences are spoken in a manner that matches their words:
            positive words lively or negative words flat = congruent, the crossed ones = incongruent.
            Manner, relative to the interviewee's usual voice:
{manner}
            Balanced within every spectrum class (and mood within each prosody class), so neither the
            words alone nor the voice alone say anything about it: only what is said AND how it is said,
            on the same few sentences. Counts: {fmt("congruence")}

Varying within every class, independently of the labels: the interviewee's timbre (an eSpeak male
variant per subject), loudness, background noise, pauses, word gaps, document length, and where in
the interview the revealing sentences fall.
Files: audio as wav or flac at 22.05, 24 or 44.1 kHz, mono (both voices) or stereo (one speaker per
channel: interviewer left, interviewee right); transcripts as plain .txt (the exact words, one line per
turn led by `Interviewer:` or `Interviewee:`), timed .srt (name prefixes) / .vtt (`<v>` voice tags) /
.TextGrid (a tier per speaker and a phone tier) / .json (a speaker field), one cue per sentence, times
from the synthesis, or none (`hilbert segment` transcribes those). {MARKER_DIR}/{TRUTH_FILE} holds everything that was
generated: each document's voice settings and manner, full text, sentence cues (with the indices of
the revealing ones) and word times.

{NEW_DIR}/ holds {len(NEW_TRANSCRIPTS)} more interviews with no labels, one per spectrum class, drawn the same way
(other voices, other words; some with a transcript, some without), to try `hilbert predict` on. The
corpus reader skips subfolders, so they are not part of the corpus; their labels are only in
{MARKER_DIR}/{TRUTH_FILE} ("new_documents").
Try:  hilbert segment DIR --channels {",".join(SPEAKERS)}  then  hilbert evaluate --task {",".join(TASKS)}
      hilbert train --task spectrum -o model.pt  then  hilbert predict model.pt DIR/{NEW_DIR}
"""


def make_demo_corpus(
    out_dir: str | os.PathLike, n_docs: int = 60, seed: int = 0, min_seconds: float = 30.0,
    max_seconds: float = 90.0, progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Write the demo corpus into `out_dir` (new, empty, or an earlier demo corpus, which is replaced).

    progress(done, total) is called after each document."""
    import soundfile as sf

    if n_docs < MIN_DOCS:
        raise HilbertError(f"--n-docs: at least {MIN_DOCS} documents are needed (every class and format once), got {n_docs}.")
    if not MIN_SECONDS <= min_seconds <= max_seconds:
        raise HilbertError(
            f"--min-seconds/--max-seconds: need {MIN_SECONDS:g} <= min <= max, got {min_seconds:g} and {max_seconds:g}."
        )
    out_dir = Path(out_dir)
    previous = _previous_files(out_dir)
    docs = plan_corpus(n_docs, seed, min_seconds, max_seconds)
    new_docs = plan_new(seed, min_seconds, max_seconds)
    files = ["labels.csv", "README.md"] + [f for d in docs + new_docs for f in (d.audio, d.transcript) if f]
    truth = out_dir / MARKER_DIR / TRUTH_FILE
    # record first what this run may write, so an interrupted run can be re-run into the same folder
    atomic_write_json(truth, {"complete": False, "files": sorted(set(previous) | set(files))})
    for name in sorted(set(previous) - set(files)):
        (out_dir / name).unlink(missing_ok=True)

    # a private copy of eSpeak: the same seed gives the same bytes, whatever this process spoke before
    with Engine(fresh=True) as tts:
        jobs = [(i, doc) for i, doc in enumerate(docs)] + [(NEW_INDEX + k, doc) for k, doc in enumerate(new_docs)]
        for done, (i, doc) in enumerate(jobs, start=1):
            tracks, rate = render_doc(tts, doc, seed, i, min_seconds, max_seconds)
            data = _to_file_audio(tracks, rate, doc, seed, i)
            fmt = "FLAC" if doc.audio.endswith(".flac") else "WAV"
            atomic_save(out_dir / doc.audio, lambda f: sf.write(f, data, doc.sample_rate, format=fmt, subtype="PCM_16"))
            if doc.transcript:
                atomic_write_text(out_dir / doc.transcript, transcript_text(doc))
            if progress is not None:
                progress(done, len(jobs))

    buf = io.StringIO()
    buf.write("id,subject," + ",".join(TASKS) + "\n")
    for d in docs:
        buf.write(f"{d.doc_id},{d.subject}," + ",".join(d.labels[t] for t in TASKS) + "\n")
    atomic_write_text(out_dir / "labels.csv", buf.getvalue())
    atomic_write_text(out_dir / "README.md", _readme(docs, seed))
    atomic_write_json(truth, {
        "complete": True, "generator": "hilbert demo-data", "seed": seed, "n_docs": n_docs,
        "min_seconds": min_seconds, "max_seconds": max_seconds, "files": sorted(files),
        "documents": {d.doc_id: asdict(d) for d in docs},
        "new_documents": {d.doc_id: asdict(d) for d in new_docs},
    })
    return DemoResult(
        out_dir=out_dir, n_docs=n_docs, total_seconds=round(sum(d.duration for d in docs), 2),
        label_counts={t: dict(sorted(Counter(d.labels[t] for d in docs).items())) for t in TASKS},
        audio_formats=dict(sorted(Counter(
            f"{Path(d.audio).suffix[1:]} {d.sample_rate} Hz {'stereo' if d.channels == 2 else 'mono'}" for d in docs
        ).items())),
        transcripts=dict(sorted(Counter(Path(d.transcript).suffix[1:] if d.transcript else "none" for d in docs).items())),
        n_new=len(new_docs),
    )


def load_truth(corpus_dir: str | os.PathLike, new: bool = False) -> dict:
    """The ground-truth record of a demo corpus (for tests and benchmarks): doc_id -> DemoDoc fields;
    with new=True, of the unlabelled recordings in NEW_DIR instead."""
    path = Path(corpus_dir) / MARKER_DIR / TRUTH_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HilbertError(f"{path}: not found; {corpus_dir} is not a corpus written by `hilbert demo-data`.") from None
    if not record.get("complete"):
        raise HilbertError(f"{corpus_dir}: the demo corpus was not finished; run `hilbert demo-data {corpus_dir}` again.")
    return record["new_documents" if new else "documents"]
