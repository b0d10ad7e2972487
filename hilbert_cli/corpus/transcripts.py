"""Transcript readers: plain text (untimed) and timed cues from .srt, .vtt, Praat .TextGrid, .json.

Every reader returns a `Transcript`: either `text` (a plain transcript, to be aligned to ASR word
timings) or `cues` (timed spans of text, in seconds). A file that cannot be decoded or parsed
raises HilbertError naming the file.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import HilbertError


@dataclass
class Cue:
    start: float  # seconds
    end: float  # seconds
    text: str


@dataclass
class Transcript:
    path: str
    format: str  # a key of READERS
    text: str | None = None  # plain transcripts
    cues: list[Cue] | None = None  # timed transcripts, sorted by start

    @property
    def timed(self) -> bool:
        return self.cues is not None

    @property
    def words(self) -> list[str]:
        if self.cues is not None:
            return [w for c in self.cues for w in c.text.split()]
        return (self.text or "").split()


def decode_text(path: Path) -> str:
    """UTF-8 (with or without BOM), or UTF-16 with a BOM (Praat writes TextGrids in UTF-16)."""
    data = path.read_bytes()
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise HilbertError(
            f"{path}: cannot decode the transcript as UTF-8 or UTF-16 ({e.reason} at byte {e.start}); "
            "re-save it as UTF-8."
        ) from None


def _clean(text: str) -> str:
    """Collapse whitespace (cue text spans lines)."""
    return " ".join(text.split())


def _bad(path: Path, what: str) -> HilbertError:
    return HilbertError(f"{path}: {what}; fix the file or remove it (audio without a transcript is transcribed).")


def _check_cues(path: Path, cues: list[Cue]) -> list[Cue]:
    for i, c in enumerate(cues):
        if not (math.isfinite(c.start) and math.isfinite(c.end)):
            raise _bad(path, f"cue {i + 1} ({c.text[:30]!r}) has a time that is not a finite number "
                             f"(start {c.start}, end {c.end}); give times in seconds")
        if c.start < 0 or c.end < c.start:
            raise _bad(path, f"cue {c.text[:30]!r} has an invalid time span {c.start:.3f}-{c.end:.3f} s")
    cues = [c for c in cues if c.text]
    if not cues:
        raise _bad(path, "the transcript has no cue with text")
    return sorted(cues, key=lambda c: (c.start, c.end))


# --- plain text -----------------------------------------------------------------------------
def read_txt(path: Path) -> Transcript:
    text = _clean(decode_text(path))
    if not text:
        raise _bad(path, "the transcript is empty")
    return Transcript(str(path), "txt", text=text)


# --- SubRip and WebVTT ----------------------------------------------------------------------
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <v Speaker>, <00:01.000>, {\an8}


def _seconds(h, m, s, frac) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def _read_subtitles(path: Path, fmt: str) -> Transcript:
    """SRT and VTT share the shape: blocks separated by blank lines, a `start --> end` line, text lines."""
    lines = decode_text(path).splitlines()
    if fmt == "vtt" and not (lines and lines[0].startswith("WEBVTT")):
        raise _bad(path, "a WebVTT file must start with 'WEBVTT'")
    cues, current = [], None
    for line in lines:
        m = _TIMING.match(line)
        if m:
            g = m.groups()
            current = Cue(_seconds(*g[:4]), _seconds(*g[4:]), "")
            cues.append(current)
        elif not line.strip():
            current = None  # a blank line ends the cue; NOTE/STYLE blocks and cue ids are skipped
        elif current is not None:
            current.text = _clean(current.text + " " + _TAG.sub("", line))
    if not cues:
        raise _bad(path, "no 'start --> end' timing lines found")
    return Transcript(str(path), fmt, cues=_check_cues(path, cues))


def read_srt(path: Path) -> Transcript:
    return _read_subtitles(path, "srt")


def read_vtt(path: Path) -> Transcript:
    return _read_subtitles(path, "vtt")


# --- Praat TextGrid ---------------------------------------------------------------------------
# Both the long ("xmin = 0") and the short (values only) text formats are a stream of values
# in the same order once the labels are dropped, which is how Praat itself reads them.
_TG_TOKEN = re.compile(r'"((?:[^"]|"")*)"|\[\d*\]|<(exists|absent)>|[A-Za-z_][\w]*|(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)')


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


def read_textgrid(path: Path) -> Transcript:
    """The first interval tier with any text; empty intervals (pauses) are dropped."""
    values = _textgrid_values(decode_text(path))
    try:
        if values[:2] != ["ooTextFile", "TextGrid"]:
            raise _bad(path, "not a Praat text TextGrid (expected 'File type = \"ooTextFile\"')")
        pos = 4  # header, xmin, xmax
        if values[pos] != "exists":
            raise _bad(path, "the TextGrid has no tiers")
        n_tiers = int(values[pos + 1])
        pos += 2
        for _ in range(n_tiers):
            kind, _name, n = values[pos], values[pos + 1], int(values[pos + 4])
            pos += 5
            if kind == "IntervalTier":
                raw = values[pos:pos + 3 * n]
                pos += 3 * n
                if len(raw) < 3 * n:
                    raise IndexError
                cues = [Cue(float(a), float(b), _clean(str(t))) for a, b, t in zip(raw[0::3], raw[1::3], raw[2::3])]
                if any(c.text for c in cues):
                    return Transcript(str(path), "textgrid", cues=_check_cues(path, cues))
            else:  # TextTier: points (time, mark)
                pos += 2 * n
    except (IndexError, ValueError, TypeError):
        raise _bad(path, "the TextGrid is truncated or malformed") from None
    raise _bad(path, "the TextGrid has no interval tier with text")


# --- JSON -------------------------------------------------------------------------------------
def read_json(path: Path) -> Transcript:
    """A list of {"start", "end", "text"} (seconds), or an object with such a list under "segments"."""
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
            cues.append(Cue(float(item["start"]), float(item["end"]), _clean(str(item["text"]))))
        except (KeyError, TypeError, ValueError):
            raise _bad(path, f'item {i} is not {{"start": seconds, "end": seconds, "text": "..."}}') from None
    return Transcript(str(path), "json", cues=_check_cues(path, cues))


READERS = {".txt": read_txt, ".srt": read_srt, ".vtt": read_vtt, ".textgrid": read_textgrid, ".json": read_json}
TRANSCRIPT_EXTENSIONS = tuple(READERS)


def read_transcript(path: str | os.PathLike) -> Transcript:
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise HilbertError(
            f"{path}: unknown transcript format {path.suffix!r}; use one of {', '.join(TRANSCRIPT_EXTENSIONS)}."
        )
    try:
        return reader(path)
    except OSError as e:
        raise HilbertError(f"{path}: cannot read the transcript ({e.strerror}).") from None
