"""Align the words of a plain transcript to ASR word timings, so that segments carry the
researcher's words (the text of record) with times from the audio.

Sequence alignment (difflib's longest-matching-blocks) on normalised words: matched words take
the ASR word's times (anchors); a one-to-one substitution takes the substituted word's times. Every
other run of transcript words is interpolated between its anchors, bounded so that it stays speech:
n words never get less than n × MIN_WORD_SECONDS (16 words are not squeezed into one 0.05-s ASR word)
nor more than n × MAX_WORD_SECONDS (one word does not span a 22-s stretch the recogniser missed; the
rest of such a stretch stays a pause). Runs of words that were not heard are reported as gaps.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from .asr import Word


def normalise(word: str) -> str:
    """Lower case without punctuation or symbols: "Don't," and "dont" compare equal."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", word).casefold()
                   if not unicodedata.category(ch).startswith(("P", "S")))


MIN_WORD_SECONDS = 0.12  # shortest time an interpolated word gets (fast speech: ~8 words/s at most)
TYPICAL_WORD_SECONDS = 0.35  # ordinary conversational speech, ~170 words per minute
MAX_WORD_SECONDS = 0.8  # longest time an interpolated word gets: more than this is a pause, not the word
GAP_WORDS = 5  # a run of at least this many transcript words the recogniser missed is reported as a gap


@dataclass
class Gap:
    start: float  # seconds: where the run of unheard transcript words was placed
    end: float
    n_words: int


@dataclass
class Alignment:
    words: list[Word]  # the transcript's words, each with a time span
    matched: int  # transcript words found verbatim (after normalising) in the ASR output
    gaps: list[Gap] = field(default_factory=list)  # runs of >= GAP_WORDS transcript words the ASR missed

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


def _place(tokens: list[str], lo: float, hi: float, support: tuple[float, float] | None, side: str) -> list[Word]:
    """Spread `tokens` inside [lo, hi] (the neighbouring anchors) over a span of n × [MIN, MAX] word seconds:
    around `support` (the ASR words they stand for) when there is one, else against the `side` anchor
    ("next": the words end where the next heard word starts, "prev": start after the previous one, "both": centred)."""
    n, room = len(tokens), max(0.0, hi - lo)
    have = (support[1] - support[0]) if support else room
    if have < n * MIN_WORD_SECONDS:  # the recogniser lost words here: give them the time of ordinary speech
        have = n * TYPICAL_WORD_SECONDS
    span = min(room, have, n * MAX_WORD_SECONDS)
    if support is not None:
        centre = (support[0] + support[1]) / 2
    else:
        centre = {"next": hi - span / 2, "prev": lo + span / 2}.get(side, (lo + hi) / 2)
    start = min(max(lo, centre - span / 2), hi - span)
    return spread_words(tokens, start, start + span)


def align_words(tokens: list[str], asr: list[Word], duration: float | None = None) -> Alignment:
    """Time every token of a plain transcript from the ASR words `asr` (sorted by time).
    `duration` (seconds) bounds transcript words after the last ASR word."""
    end_of_audio = duration if duration is not None else (asr[-1].end if asr else 0.0)
    if not asr:
        words = _place(tokens, 0.0, end_of_audio, None, "both") if tokens else []
        gaps = [Gap(words[0].start, words[-1].end, len(words))] if len(words) >= GAP_WORDS else []
        return Alignment(words, 0, gaps)
    a = [normalise(t) for t in tokens]
    b = [normalise(w.text) for w in asr]
    out: list[Word] = []
    gaps: list[Gap] = []
    matched = 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "insert":  # words only the ASR heard: not part of the text of record
            continue
        if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):  # one to one
            out += [Word(asr[j].start, asr[j].end, tokens[i]) for i, j in zip(range(i1, i2), range(j1, j2))]
            matched += (i2 - i1) if op == "equal" else 0
            continue
        lo = out[-1].end if out else 0.0  # the previous anchor (never before an earlier word)
        hi = asr[j2].start if j2 < len(asr) else max(end_of_audio, lo)  # the next heard word
        if op == "replace":  # n transcript words for m ASR words: around their span
            placed = _place(tokens[i1:i2], lo, max(lo, hi), (asr[j1].start, asr[j2 - 1].end), "both")
        else:  # "delete": transcript words the ASR missed
            side = "next" if not out else ("prev" if j1 >= len(asr) else "both")
            placed = _place(tokens[i1:i2], lo, max(lo, hi), None, side)
        out += placed
        unheard = (i2 - i1) - (j2 - j1 if op == "replace" else 0)
        if unheard >= GAP_WORDS:
            gaps.append(Gap(placed[0].start, placed[-1].end, unheard))
    return Alignment(out, matched, gaps)
