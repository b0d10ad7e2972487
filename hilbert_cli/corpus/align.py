"""Align the words of a plain transcript to ASR word timings, so that segments carry the
researcher's words (the text of record) with times from the audio.

Sequence alignment (difflib's longest-matching-blocks) on normalised words: matched words take
the ASR word's times; a run of substituted words shares the time span of the ASR words it
replaces; transcript words the ASR missed are spread over the gap between their neighbours.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher

from .asr import Word


def normalise(word: str) -> str:
    """Lower case without punctuation or symbols: "Don't," and "dont" compare equal."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", word).casefold()
                   if not unicodedata.category(ch).startswith(("P", "S")))


@dataclass
class Alignment:
    words: list[Word]  # the transcript's words, each with a time span
    matched: int  # transcript words found verbatim (after normalising) in the ASR output

    @property
    def match_rate(self) -> float:
        return self.matched / len(self.words) if self.words else 0.0


def spread_words(tokens: list[str], start: float, end: float) -> list[Word]:
    """Give `tokens` consecutive spans over [start, end], proportional to their length."""
    weights = [len(t) + 1 for t in tokens]
    total, out, t = sum(weights), [], start
    for tok, w in zip(tokens, weights):
        step = (end - start) * w / total
        out.append(Word(t, t + step, tok))
        t += step
    return out


def align_words(tokens: list[str], asr: list[Word], duration: float | None = None) -> Alignment:
    """Time every token of a plain transcript from the ASR words `asr` (sorted by time).
    `duration` (seconds) bounds transcript words after the last ASR word."""
    end_of_audio = duration if duration is not None else (asr[-1].end if asr else 0.0)
    if not asr:
        return Alignment(spread_words(tokens, 0.0, end_of_audio), 0)
    a = [normalise(t) for t in tokens]
    b = [normalise(w.text) for w in asr]
    out: list[Word] = []
    matched = 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "insert":  # words only the ASR heard: not part of the text of record
            continue
        if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):  # one to one
            out += [Word(asr[j].start, asr[j].end, tokens[i]) for i, j in zip(range(i1, i2), range(j1, j2))]
            matched += (i2 - i1) if op == "equal" else 0
        elif op == "replace":  # n transcript words for m ASR words: share their span
            out += spread_words(tokens[i1:i2], asr[j1].start, asr[j2 - 1].end)
        else:  # "delete": transcript words the ASR missed; fill the gap between neighbours
            lo = asr[j1 - 1].end if j1 > 0 else 0.0
            hi = asr[j1].start if j1 < len(asr) else max(end_of_audio, lo)
            out += spread_words(tokens[i1:i2], lo, max(lo, hi))
    return Alignment(out, matched)
