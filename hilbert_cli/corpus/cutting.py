"""Segmentation strategies: where to cut a document's timed words into segments.

  auto   sentence ends and pauses, merged or split towards a target number of words and kept
         under a maximum duration, never cutting a word (dynamic programming over cut points)
  cues   the timed transcript's cues as given (manual segmentation)
  fixed  consecutive windows of N seconds; each word goes to the window holding its midpoint
Each returns a list of (start, end, text) spans in seconds.
"""
from __future__ import annotations

from .align import spread_words
from .asr import Word
from .transcripts import Cue

SENTENCE_END = (".", "?", "!", "…")
CLAUSE_END = (",", ";", ":", "—", "–")
CLOSING = "\"')]}”’»"
FULL_PAUSE = 0.8  # seconds: a silence this long is as good a place to cut as any
MIN_SPAN = 0.05  # seconds: no segment is shorter (zero-length word timings happen)


def _break_cost(words: list[Word], k: int, cue_ends: set[int]) -> float:
    """Cost of cutting after word k: 1 in the middle of a fluent clause, 0 at a sentence end after a pause."""
    text = words[k].text.rstrip(CLOSING)
    cost = 1.0
    if text.endswith(SENTENCE_END):
        cost -= 0.6
    elif text.endswith(CLAUSE_END):
        cost -= 0.25
    gap = words[k + 1].start - words[k].end
    cost -= 0.6 * min(max(gap, 0.0) / FULL_PAUSE, 1.0)
    if k in cue_ends:
        cost -= 0.4
    return max(cost, 0.0)


def auto_spans(words: list[Word], target_words: int, max_seconds: float, cue_ends: set[int] = frozenset()):
    """Cut points minimising sum over segments of ((n_words - target) / target)^2 + break cost,
    with every segment of two or more words at most `max_seconds` long. O(words x words per segment)."""
    n = len(words)
    if n == 0:
        return []
    brk = [_break_cost(words, k, cue_ends) for k in range(n - 1)] + [0.0]
    best = [0.0] + [float("inf")] * n  # best[j]: cost of cutting words[:j]
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            if i < j - 1 and words[j - 1].end - words[i].start > max_seconds:
                break
            m = j - i
            cost = best[i] + ((m - target_words) / target_words) ** 2 + brk[j - 1]
            if cost < best[j]:
                best[j], back[j] = cost, i
    cuts, j = [], n
    while j > 0:
        cuts.append((back[j], j))
        j = back[j]
    return [_span(words[i:j]) for i, j in reversed(cuts)]


def _span(words: list[Word]) -> tuple[float, float, str]:
    start, end = words[0].start, max(w.end for w in words)
    return start, max(end, start + MIN_SPAN), " ".join(w.text for w in words)


def fixed_spans(words: list[Word], window: float, duration: float):
    """Windows [k*window, (k+1)*window) that hold at least one word."""
    groups: dict[int, list[Word]] = {}
    for w in words:
        groups.setdefault(int(((w.start + w.end) / 2) // window), []).append(w)
    return [(k * window, min((k + 1) * window, duration), " ".join(w.text for w in ws))
            for k, ws in sorted(groups.items())]


def cue_spans(cues: list[Cue]):
    return [(c.start, max(c.end, c.start + MIN_SPAN), c.text) for c in cues]


def cue_words(cues: list[Cue]) -> tuple[list[Word], set[int]]:
    """Spread each cue's words over its span (proportional to length); also the indices of
    the last word of each cue (good places to cut)."""
    words, ends = [], set()
    for c in cues:
        tokens = c.text.split()
        if tokens:
            words += spread_words(tokens, c.start, c.end)
            ends.add(len(words) - 1)
    return words, ends
