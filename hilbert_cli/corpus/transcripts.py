"""Transcript readers: plain text (untimed) and timed cues from .srt, .vtt, Praat .TextGrid, .json.

Every reader returns a `Transcript`: either `text` (a plain transcript, to be aligned to ASR word
timings) or `cues` (timed spans of text, in seconds, each with its `speaker` when the file says
who speaks). A file that cannot be decoded or parsed raises DataError naming the file (and the
line or tier); things worth a look that leave nothing out (which TextGrid tiers were used, hidden
zero-length cues dropped) are in `Transcript.warnings`.

Text is cleaned the same way in every format (`clean_text`): HTML entities decoded; ASS override
tags `{\\an8}` removed and `\\N`, `\\n`, `\\h` made spaces; markup tags (`<i>`, `<v Name>`,
`<c.loud>`, `<00:01.000>`) removed; non-speech labels removed: anything in square brackets with a
letter in it (`[laughs]`, but not a bare `[1]`), in angle or curly brackets (`<noise>`, `<sil>`,
`<p:>`, `{SL}`), between music notes, and in parentheses when it starts with a known non-speech
word or is in capitals (`(inaudible)`, `(LAUGHS)`, but not `(well, almost)`); a label that is only
aligner silence (`sil`, `sp`, `spn`, `pau`, `h#`) becomes empty; dialogue dashes (`- `, `>> `) at
the start of a line are removed.

Speakers (`Cue.speaker`, `Transcript.turns`):
  - TextGrid: each tier used is one speaker, named by the tier name without words that only say
    the tier's level ("Mary - words" -> "Mary"; "words" alone -> no speaker name, None);
  - WebVTT: `<v Name>` voice tags;
  - SRT, WebVTT and plain text: a `NAME:` prefix at the start of a line (see `speaker_prefix`);
  - JSON: a "speaker" field in each cue.
A speaker holds until the next one is named (a line or cue without a name continues the current
turn). A cue whose lines name two speakers is split into one cue per speaker, its time shared in
proportion to the length of each part.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Sequence

from ..errors import DataError, HilbertError


@dataclass
class Cue:
    start: float  # seconds
    end: float  # seconds
    text: str
    speaker: str | None = None  # who speaks, when the transcript says so


@dataclass
class Transcript:
    path: str
    format: str  # a key of READERS
    text: str | None = None  # plain transcripts
    cues: list[Cue] | None = None  # timed transcripts, sorted by start
    turns: list[tuple[str | None, str]] | None = None  # plain transcripts: (speaker, text) per turn; text joins them
    warnings: list[str] = field(default_factory=list)  # one sentence each, naming the file

    @property
    def timed(self) -> bool:
        return self.cues is not None

    @property
    def words(self) -> list[str]:
        if self.cues is not None:
            return [w for c in self.cues for w in c.text.split()]
        return (self.text or "").split()

    @property
    def word_speakers(self) -> list[str | None]:
        """The speaker of each of `words` (None where the transcript does not say)."""
        if self.cues is not None:
            return [c.speaker for c in self.cues for _ in c.text.split()]
        if self.turns is not None:
            return [s for s, text in self.turns for _ in text.split()]
        return [None] * len(self.words)

    @property
    def speakers(self) -> list[str]:
        """The named speakers, in order of first appearance."""
        named = (c.speaker for c in self.cues) if self.cues is not None else (s for s, _ in self.turns or ())
        return list(dict.fromkeys(s for s in named if s is not None))


def decode_text(path: Path) -> str:
    """UTF-8 (with or without BOM), or UTF-16 with a BOM (Praat writes TextGrids in UTF-16)."""
    data = path.read_bytes()
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: cannot decode the transcript as UTF-8 or UTF-16 ({e.reason} at byte {e.start}); "
            "re-save it as UTF-8."
        ) from None


def _bad(path: Path, what: str) -> HilbertError:
    return DataError(f"{path}: {what}; fix the file or remove it (audio without a transcript is transcribed).")


# --- text cleaning ----------------------------------------------------------------------------
ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # {\an8}, {\i1}: SubStation Alpha styling
ASS_BREAK = re.compile(r"\\[Nnh]")  # \N and \n (line breaks), \h (hard space)
VOICE_TAG = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]*?)\s*>")  # WebVTT voice span: <v Name>, <v.loud Name>
MARKUP_TAG = re.compile(r"</?(?:[ibuc]|v|lang|ruby|rt|font|span)(?:[\s.][^<>]*)?>|<\d[\d:.]*>", re.IGNORECASE)  # <i>, </v>, <00:01.000>
ANGLE_LABEL = re.compile(r"<[^<>]*>")  # labels: <noise>, <sil>, <p:>
CURLY_LABEL = re.compile(r"\{[^{}]*\}")  # aligner noise labels: {SL}, {NS}, {LG}
SQUARE_LABEL = re.compile(r"\[[^\[\]]*[^\W\d_][^\[\]]*\]")  # [laughs], [inaudible 00:12]; not a bare [1]
PAREN_LABEL = re.compile(r"\(([^()]*)\)")
MUSIC = re.compile(r"[♪♫][^♪♫]*[♪♫]|[♪♫]")
DIALOGUE_DASH = re.compile(r"^\s*(?:[-‐–—]+|>>+)\s*")  # a turn mark at the start of a subtitle line
SILENCE_LABELS = frozenset({"sil", "sp", "spn", "pau", "h#", "#"})  # aligners' silence and noise labels
NON_SPEECH_WORDS = frozenset(
    "inaudible unintelligible indistinct unclear incomprehensible laughs laughter laughing laugh chuckles "
    "chuckling giggles coughs cough coughing sighs sigh sighing crosstalk cross-talk overlapping overlap "
    "pause pauses silence silent noise noises background music applause breath breathes breathing inhales "
    "exhales sniffs sniffing clears throat static beep beeps knock knocking cries crying sobs sobbing "
    "whispers whispering mumbles mumbling yawns groans gasps redacted name unk unknown interruption "
    "interrupted phone door nods gestures".split()
)
MIN_CAPS_LABEL = 2  # letters: "(LAUGHS)" is a label, "(I)" is not


def _paren_label(m: re.Match) -> str:
    """A parenthesis that holds a non-speech label goes; one that holds words stays."""
    inner = m.group(1).strip()
    first = re.sub(r"[^\w'-]", "", inner.split()[0]).casefold() if inner.split() else ""
    letters = [ch for ch in inner if ch.isalpha()]
    is_caps = len(letters) >= MIN_CAPS_LABEL and all(ch.isupper() for ch in letters)
    return " " if not inner or first in NON_SPEECH_WORDS or is_caps else m.group(0)


def strip_markup(line: str) -> str:
    """One line of transcript without styling, entities, markup tags or non-speech labels
    (whitespace not yet collapsed)."""
    line = ASS_BREAK.sub(" ", ASS_OVERRIDE.sub("", line))
    line = MARKUP_TAG.sub("", html.unescape(line))
    line = ANGLE_LABEL.sub(" ", line)
    line = CURLY_LABEL.sub(" ", line)
    line = SQUARE_LABEL.sub(" ", line)
    line = PAREN_LABEL.sub(_paren_label, line)
    return MUSIC.sub(" ", line)


def clean_text(text: str) -> str:
    """Transcript text without markup or non-speech labels, whitespace collapsed; "" for a label
    that is only silence (see the module docstring)."""
    text = " ".join(strip_markup(text).split())
    if text and all(w.casefold() in SILENCE_LABELS for w in text.split()):
        return ""
    return text


# --- speakers in the text ---------------------------------------------------------------------
SPEAKER_PREFIX = re.compile(r"^\s*\*?(?P<name>[^\W\d_][\w.'’ -]{0,29}?)\s*:(?:\s+|$)")
KNOWN_SPEAKER_LABELS = frozenset(
    "interviewer interviewee participant patient subject respondent clinician therapist examiner doctor dr "
    "researcher investigator moderator caregiver parent child mother father int inv iv par chi mot fat "
    "exa p i q a".split()
)
NUMBERED_SPEAKER = re.compile(r"^(?:speaker|spk|participant|subject|interviewer|patient|p|s|i|int|par)[ _-]?(?:\d+|[a-z])$",
                              re.IGNORECASE)
CAPS_NAME = re.compile(r"^[A-Z][A-Z.'’-]*(?: [A-Z][A-Z.'’-]*){0,2}$")  # JOHN, DR. SMITH, MARY-ANN
TITLE_NAME = re.compile(r"^[A-Z][a-z.'’-]+(?: [A-Z][a-z.'’-]+)?$")  # Mary, Dr. Smith
NOT_SPEAKERS = frozenset(  # words that lead a sentence of prose with a colon
    "note notes nb ps warning caution important tip hint example examples e.g question answer summary update edit "
    "source re fyi todo title date time location place translation transcript transcription comment comments "
    "also then so and but well yes no ok okay now here there this that remember reminder step".split()
)
MIN_NAME_USES = 2  # lines a capitalised name ("Mary:") must lead to show that a file marks turns by name


def speaker_prefix(line: str) -> tuple[str, str] | None:
    """(name, rest of the line) when the line starts with a possible speaker name and a colon.

    A possible name: a known label (INTERVIEWER, Participant, P, I, Q, A, ...), a numbered one
    (Speaker 1, SPEAKER_00, P2), a name in capitals of up to three words (JOHN, DR. SMITH), or a
    capitalised name of one or two words (Mary, Dr. Smith); never a word that leads prose
    ("Note:", "Example:"). `accepted_speakers` decides which capitalised names count."""
    m = SPEAKER_PREFIX.match(line)
    if not m:
        return None
    name = " ".join(m.group("name").split())
    key = name.casefold().rstrip(".")
    if key in NOT_SPEAKERS or len(name) > 24:
        return None
    if key in KNOWN_SPEAKER_LABELS or NUMBERED_SPEAKER.match(name) or CAPS_NAME.match(name) or TITLE_NAME.match(name):
        return name, line[m.end():]
    return None


def _is_sure_speaker(name: str) -> bool:
    key = name.casefold().rstrip(".")
    return key in KNOWN_SPEAKER_LABELS or bool(NUMBERED_SPEAKER.match(name) or CAPS_NAME.match(name))


def accepted_speakers(lines: Iterable[str]) -> set[str]:
    """The prefixes of `lines` taken as speakers: known, numbered and capitals names always; a
    capitalised name when it leads at least MIN_NAME_USES lines, or once in a file whose turns are
    already marked by other names (one "Mary: ..." in prose could be a sentence)."""
    counts: dict[str, int] = {}
    for line in lines:
        found = speaker_prefix(_line_start(line))
        if found:
            counts[found[0]] = counts.get(found[0], 0) + 1
    sure = {n for n, k in counts.items() if _is_sure_speaker(n) or k >= MIN_NAME_USES}
    return set(counts) if sure else set()


def _line_start(line: str) -> str:
    """A line without styling, tags, labels and a dialogue dash, for reading a speaker prefix
    (entities are decoded later, by clean_text)."""
    return DIALOGUE_DASH.sub("", ANGLE_LABEL.sub(" ", MARKUP_TAG.sub("", ASS_OVERRIDE.sub("", line))))


def split_speaker(line: str, speakers: set[str]) -> tuple[str | None, str]:
    """(speaker named at the start of `line` or None, the line's clean text): a WebVTT voice tag
    or an accepted NAME: prefix, after a dialogue dash."""
    voice = VOICE_TAG.search(line)
    name = (" ".join(voice.group(1).split()) or None) if voice else None
    rest = _line_start(line)
    found = speaker_prefix(rest)
    if found and found[0] in speakers:
        name, rest = found
    return name, clean_text(DIALOGUE_DASH.sub("", rest))


def _turns(lines: list[str], speakers: set[str], current: str | None) -> list[tuple[str | None, str]]:
    """(speaker, text) for each run of lines of one speaker; a line without a name continues
    `current`, the speaker of the lines before."""
    turns: list[tuple[str | None, str]] = []
    for line in lines:
        name, text = split_speaker(line, speakers)
        speaker = name if name is not None else current
        current = speaker
        if turns and turns[-1][0] == speaker:
            turns[-1] = (speaker, f"{turns[-1][1]} {text}".strip())
        else:
            turns.append((speaker, text))
    return [(s, t) for s, t in turns if t] or [(current, "")]


# --- timed cues -------------------------------------------------------------------------------
def _check_cues(path: Path, cues: list[Cue], warnings: list[str]) -> list[Cue]:
    """Cues sorted by start; empty cues (pauses) dropped; zero-length cues with text dropped and
    counted in `warnings`; a cue that ends before it starts, or whose time is not a number, is an error."""
    for i, c in enumerate(cues):
        if not (math.isfinite(c.start) and math.isfinite(c.end)):
            raise _bad(path, f"cue {i + 1} ({c.text[:30]!r}) has a time that is not a finite number "
                             f"(start {c.start}, end {c.end}); give times in seconds")
        if c.start < 0 or c.end < c.start:
            raise _bad(path, f"cue {c.text[:30]!r} has an invalid time span {c.start:.3f}-{c.end:.3f} s")
    hidden = [c for c in cues if c.text and c.end == c.start]
    if hidden:
        warnings.append(f"{path}: {len(hidden)} zero-length cue(s) dropped (the first at {hidden[0].start:.3f} s, "
                        f"{hidden[0].text[:30]!r}); give them a duration if they were spoken.")
    cues = [c for c in cues if c.text and c.end > c.start]
    if not cues:
        raise _bad(path, "the transcript has no cue with text" + (" of non-zero length" if hidden else ""))
    return sorted(cues, key=lambda c: (c.start, c.end))


def split_cue(start: float, end: float, turns: list[tuple[str | None, str]]) -> list[Cue]:
    """One cue per speaker turn, sharing [start, end] in proportion to the length of each text."""
    weights = [len(t) + 1 for _, t in turns]
    total, out, t = sum(weights), [], start
    for (speaker, text), w in zip(turns, weights):
        step = (end - start) * w / total
        out.append(Cue(t, t + step if len(out) < len(turns) - 1 else end, text, speaker))
        t += step
    return out


# --- plain text -----------------------------------------------------------------------------
def read_txt(path: Path) -> Transcript:
    """Untimed text; `NAME:` prefixes become the speaker of the turns they start (and leave the text)."""
    lines = decode_text(path).splitlines()
    turns = [t for t in _turns(lines, accepted_speakers(lines), None) if t[1]]
    text = " ".join(t for _, t in turns)
    if not text:
        raise _bad(path, "the transcript is empty")
    return Transcript(str(path), "txt", text=text, turns=turns)


# --- SubRip and WebVTT ----------------------------------------------------------------------
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s.*)?$")  # then cue settings (VTT) or coordinates (SRT)
_TIMING_LIKE = re.compile(r"^\s*\d.*-->")
EXPECTED_TIMING = {"srt": "HH:MM:SS,mmm --> HH:MM:SS,mmm", "vtt": "HH:MM:SS.mmm --> HH:MM:SS.mmm"}


def _seconds(h, m, s, frac) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


@dataclass
class _Block:
    start: float
    end: float
    lines: list[str]


def _timing(path: Path, fmt: str, number: int, line: str) -> tuple[float, float] | None:
    """(start, end) of a timing line; None for a line that is not one; an error for one that
    looks like one but cannot be read (a cue must never be dropped silently)."""
    m = _TIMING.match(line)
    if m is None:
        if _TIMING_LIKE.match(line):
            raise DataError(f"{path}: line {number}: malformed timing line {line.strip()!r}; "
                            f"expected '{EXPECTED_TIMING[fmt]}'.")
        return None
    g = m.groups()
    if any(int(x) >= 60 for x in (g[1], g[2], g[5], g[6])):
        raise DataError(f"{path}: line {number}: timing line {line.strip()!r} has minutes or seconds of 60 or more; "
                        f"expected '{EXPECTED_TIMING[fmt]}'.")
    return _seconds(*g[:4]), _seconds(*g[4:])


def _subtitle_blocks(path: Path, fmt: str, lines: list[str]) -> list[_Block]:
    """Cues as given: a `start --> end` line, then text lines up to a blank line. NOTE/STYLE
    blocks and cue ids are skipped."""
    blocks, current = [], None
    for number, line in enumerate(lines, start=1):
        span = _timing(path, fmt, number, line)
        if span is not None:
            if current is not None and current.lines and current.lines[-1].strip().isdigit():
                current.lines.pop()  # the next cue's number, with the blank line before it missing
            current = _Block(span[0], span[1], [])
            blocks.append(current)
        elif not line.strip():
            current = None
        elif current is not None:
            current.lines.append(line)
    return blocks


def _read_subtitles(path: Path, fmt: str) -> Transcript:
    """SRT and VTT share the shape: blocks separated by blank lines, a `start --> end` line, text lines."""
    lines = decode_text(path).splitlines()
    if fmt == "vtt" and not (lines and lines[0].startswith("WEBVTT")):
        raise _bad(path, "a WebVTT file must start with 'WEBVTT'")
    blocks = _subtitle_blocks(path, fmt, lines)
    if not blocks:
        raise _bad(path, "no 'start --> end' timing lines found")
    speakers = accepted_speakers(line for b in blocks for line in b.lines)
    cues, current = [], None
    for b in blocks:
        turns = _turns(b.lines, speakers, current)
        current = turns[-1][0]
        cues += split_cue(b.start, b.end, turns)
    warnings: list[str] = []
    return Transcript(str(path), fmt, cues=_check_cues(path, cues, warnings), warnings=warnings)


def read_srt(path: Path) -> Transcript:
    return _read_subtitles(path, "srt")


def read_vtt(path: Path) -> Transcript:
    return _read_subtitles(path, "vtt")


# --- Praat TextGrid ---------------------------------------------------------------------------
# Both the long ("xmin = 0") and the short (values only) text formats are a stream of values
# in the same order once the labels are dropped, which is how Praat itself reads them.
_TG_TOKEN = re.compile(r'"((?:[^"]|"")*)"|\[\d*\]|<(exists|absent)>|[A-Za-z_][\w]*|(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)')
TEXTGRID_FILE_TYPES = ("ooTextFile", "ooTextFile short")

# Words in a tier name that say what level the tier is (the rest of the name is the speaker).
TIER_LEVEL_WORDS = {
    "other": frozenset("event events note notes comment comments misc tone tones tobi break breaks noise noises "
                       "pause pauses silence silences task tasks gesture gestures marker markers prosody accent "
                       "accents info code codes coding".split()),
    "phones": frozenset("phone phones phoneme phonemes phon phn phonetic segment segments seg syllable syllables "
                        "syl syll mas kan pho sampa ipa arpabet".split()),  # MAUS: MAS syllables, KAN phonemic words
    "words": frozenset("word words wrd wrds ortho orthography orthographic ort token tokens lexical".split()),
    "utterances": frozenset("transcription transcript trans trn utterance utterances utt utts sentence sentences "
                            "phrase phrases text turn turns ipu ipus speech chunk chunks".split()),
}
TIER_NAME_NOISE = frozenset({"mau"})  # words in a tier name that are neither a level nor a speaker (WebMAUS "ORT-MAU")
TIER_NAME_SPLIT = re.compile(r"[\s\-_:/|().\[\]]+")
PHONE_LABEL_CHARS = 3  # a phone label: one token of at most this many characters ("ə", "AH0", "tS")
PHONE_SHORT_SHARE = 0.9  # of a phone tier's labels that are that short
PHONE_MEDIAN_SECONDS = 0.15  # median phone; a word tier's median word is longer
PHONE_POINT_MEAN_CHARS = 2.0  # a point tier has no durations: its labels must be shorter on average
MIN_LETTER_SHARE = 0.5  # of labels with a letter, below which a tier holds codes (break indices, numbers)
POINT_WORD_SECONDS = 0.5  # a word on a point tier lasts until the next point, at most this long
POINT_MIN_SECONDS = 0.05  # and at least this long (points at the same time)


@dataclass
class _Tier:
    name: str
    points: bool  # a TextTier (points) rather than an IntervalTier
    xmax: float
    items: list[tuple[float, float, str]]  # (start, end, raw label); points have start == end

    def labels(self) -> list[tuple[float, float, str]]:
        return [(a, b, clean_text(t)) for a, b, t in self.items if clean_text(t)]


def _textgrid_values(text: str) -> list:
    out = []
    for m in _TG_TOKEN.finditer(text):
        string, flag, number = m.groups()
        if string is not None:
            out.append(string.replace('""', '"'))
        elif flag is not None:
            out.append(flag)
        elif number is not None:
            out.append(float(number))
    return out


def _parse_textgrid(path: Path) -> list[_Tier]:
    """Every tier of a text TextGrid (long or short format, UTF-8 or UTF-16)."""
    values = _textgrid_values(decode_text(path))
    if values[:1] == ["ooBinaryFile"]:
        raise _bad(path, "a binary TextGrid; save it from Praat as a text file")
    if len(values) < 2 or values[0] not in TEXTGRID_FILE_TYPES or values[1] != "TextGrid":
        raise _bad(path, "not a Praat text TextGrid (expected 'File type = \"ooTextFile\"')")
    if len(values) > 4 and values[4] == "absent":
        raise _bad(path, "the TextGrid has no tiers")
    tiers = []
    try:
        if values[4] != "exists":
            raise ValueError
        n_tiers, pos = int(values[5]), 6
        for _ in range(n_tiers):
            kind, name, xmax, n = values[pos], values[pos + 1], float(values[pos + 3]), int(values[pos + 4])
            pos += 5
            if kind not in ("IntervalTier", "TextTier") or not isinstance(name, str):
                raise ValueError
            width = 3 if kind == "IntervalTier" else 2
            raw = values[pos:pos + width * n]
            pos += width * n
            if len(raw) < width * n:
                raise IndexError
            if width == 3:
                items = [(float(a), float(b), str(t)) for a, b, t in zip(raw[0::3], raw[1::3], raw[2::3])]
            else:
                items = [(float(a), float(a), str(t)) for a, t in zip(raw[0::2], raw[1::2])]
            tiers.append(_Tier(name, width == 2, xmax, items))
    except (IndexError, ValueError, TypeError):
        raise _bad(path, "the TextGrid is truncated or malformed") from None
    return tiers


def tier_speaker_and_level(name: str) -> tuple[str | None, str | None]:
    """What a tier name says: (speaker, level), the level being "words", "utterances", "phones" or
    "other" (events, notes, tones...), None when the name does not say. "Mary - words" ->
    ("Mary", "words"); "words" -> (None, "words"); "Interviewer" -> ("Interviewer", None)."""
    parts = [p for p in TIER_NAME_SPLIT.split(name.strip()) if p]
    level = next((lv for lv, vocab in TIER_LEVEL_WORDS.items() for p in parts if p.casefold() in vocab), None)
    rest = [p for p in parts if p.casefold() not in TIER_NAME_NOISE
            and not any(p.casefold() in vocab for vocab in TIER_LEVEL_WORDS.values())]
    return (" ".join(rest) or None), level


def tier_level(tier: _Tier) -> str:
    """"words", "utterances", "phones", "other" or "empty": from the name when it says, else from
    the labels (phones are short labels on short intervals; words are one token a label)."""
    labels = tier.labels()
    if not labels:
        return "empty"
    named = tier_speaker_and_level(tier.name)[1]
    if named is not None:
        return named
    texts = [t for _, _, t in labels]
    if sum(any(ch.isalpha() for ch in t) for t in texts) < MIN_LETTER_SHARE * len(texts):
        return "other"
    short = sum(len(t) <= PHONE_LABEL_CHARS and " " not in t for t in texts) / len(texts)
    if short >= PHONE_SHORT_SHARE:
        if tier.points:
            if statistics.fmean(len(t) for t in texts) <= PHONE_POINT_MEAN_CHARS:
                return "phones"
        elif statistics.median(b - a for a, b, _ in labels) <= PHONE_MEDIAN_SECONDS:
            return "phones"
    return "words" if statistics.median(len(t.split()) for t in texts) <= 1 else "utterances"


def _tiers_named(path: Path, tiers: list[_Tier], wanted: Sequence[str]) -> list[_Tier]:
    """The tiers named in `wanted` (case and surrounding spaces ignored); an unknown name is an error."""
    names = {t.name.strip().casefold() for t in tiers}
    unknown = [w for w in wanted if w.strip().casefold() not in names]
    if unknown:
        raise DataError(f"{path}: no tier named {', '.join(repr(w) for w in unknown)}; its tiers are "
                        f"{', '.join(repr(t.name) for t in tiers)} (choose with --tier NAME[,NAME]).")
    keys = {w.strip().casefold() for w in wanted}
    return [t for t in tiers if t.name.strip().casefold() in keys]


def _choose_tiers(path: Path, tiers: list[_Tier]) -> tuple[list[_Tier], list[str]]:
    """The tiers to read when none were named: for each speaker (tier name without its level words),
    its word tier, else its utterance tier; interval tiers first, point tiers only when named as
    words or when no interval tier serves; never a phone tier. Also the warnings."""
    levels = {id(t): tier_level(t) for t in tiers}
    with_text = [t for t in tiers if levels[id(t)] != "empty"]
    if not with_text:
        raise _bad(path, "the TextGrid has no tier with text")
    usable = [t for t in with_text if levels[id(t)] in ("words", "utterances")
              and (not t.points or tier_speaker_and_level(t.name)[1] == "words")]
    if not any(not t.points for t in usable):
        usable = usable or [t for t in with_text if t.points and levels[id(t)] in ("words", "utterances")]
    if not usable:
        found = ", ".join(f"{t.name!r} ({levels[id(t)]})" for t in with_text)
        raise _bad(path, f"no word or utterance tier among its tiers with text ({found}); "
                         "name the tier to use with --tier NAME")
    by_speaker: dict[str, list[_Tier]] = {}
    for t in usable:
        by_speaker.setdefault((tier_speaker_and_level(t.name)[0] or "").casefold(), []).append(t)
    chosen = []
    for group in by_speaker.values():
        best = "words" if any(levels[id(t)] == "words" for t in group) else "utterances"
        chosen += [t for t in group if levels[id(t)] == best]
    chosen = [t for t in tiers if t in chosen]  # file order
    warnings = []
    if len(with_text) > 1:
        found = ", ".join(f"{t.name!r} ({levels[id(t)]})" for t in with_text)
        warnings.append(f"{path}: several tiers hold text ({found}); used {', '.join(repr(t.name) for t in chosen)}, "
                        "one speaker each (choose others with --tier NAME[,NAME]).")
    return chosen, warnings


def tier_cues(tier: _Tier) -> list[Cue]:
    """A tier's labelled intervals as cues of the tier's speaker; a point becomes a word lasting
    until the next point (at most POINT_WORD_SECONDS, at least POINT_MIN_SECONDS)."""
    speaker = tier_speaker_and_level(tier.name)[0]
    labels = tier.labels()
    if not tier.points:
        return [Cue(a, b, t, speaker) for a, b, t in labels]
    times = [a for a, _, _ in tier.items] + [float("inf")]
    cues = []
    for (a, _, raw), nxt in zip(tier.items, times[1:]):
        text = clean_text(raw)
        if text:
            end = min(nxt, a + POINT_WORD_SECONDS, max(tier.xmax, a + POINT_MIN_SECONDS))
            cues.append(Cue(a, max(end, a + POINT_MIN_SECONDS), text, speaker))
    return cues


def read_textgrid(path: Path, tier: Sequence[str] | None = None) -> Transcript:
    """The named tiers (`tier`), or the word-level tier of each speaker (see `_choose_tiers`);
    each tier's intervals become cues of its speaker, empty intervals (pauses) dropped."""
    tiers = _parse_textgrid(path)
    if tier:
        chosen, warnings = _tiers_named(path, tiers, tier), []
    else:
        chosen, warnings = _choose_tiers(path, tiers)
    cues = [c for t in chosen for c in tier_cues(t)]
    if not cues:
        raise _bad(path, f"tier(s) {', '.join(repr(t.name) for t in chosen)} hold no text")
    return Transcript(str(path), "textgrid", cues=_check_cues(path, cues, warnings), warnings=warnings)


# --- JSON -------------------------------------------------------------------------------------
def _json_speaker(value) -> str | None:
    return " ".join(str(value).split()) or None if value is not None else None


def read_json(path: Path) -> Transcript:
    """A list of {"start", "end", "text"} (seconds, an optional "speaker"), or an object with such a
    list under "segments"."""
    try:
        data = json.loads(decode_text(path))
    except json.JSONDecodeError as e:
        raise _bad(path, f"invalid JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("segments"), list):
        data = data["segments"]
    if not isinstance(data, list):
        raise _bad(path, 'expected a list of {"start": s, "end": s, "text": "..."}')
    cues = []
    for i, item in enumerate(data):
        try:
            cues.append(Cue(float(item["start"]), float(item["end"]), clean_text(str(item["text"])),
                            _json_speaker(item.get("speaker"))))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _bad(path, f'item {i} is not {{"start": seconds, "end": seconds, "text": "..."}}') from None
    warnings: list[str] = []
    return Transcript(str(path), "json", cues=_check_cues(path, cues, warnings), warnings=warnings)


READERS = {".txt": read_txt, ".srt": read_srt, ".vtt": read_vtt, ".textgrid": read_textgrid, ".json": read_json}
TRANSCRIPT_EXTENSIONS = tuple(READERS)


def read_transcript(path: str | os.PathLike, tier: Sequence[str] | None = None) -> Transcript:
    """Read any supported transcript. `tier`: TextGrid tier names to use (other formats ignore it);
    None chooses the word-level tier of each speaker."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"{path}: unknown transcript format {path.suffix!r}; use one of {', '.join(TRANSCRIPT_EXTENSIONS)}."
        )
    try:
        return reader(path, tier) if reader is read_textgrid else reader(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read the transcript ({e.strerror}).") from None
