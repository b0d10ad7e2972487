"""Segmentation strategies: where to cut a document's timed words into segments.

  auto   sentence ends and pauses, merged or split towards a target number of words and kept
         under a maximum duration, never cutting a word (dynamic programming over cut points)
  cues   the timed transcript's cues as given (manual segmentation)
  fixed  consecutive windows of N seconds; each word goes to the window holding its midpoint
Each returns a list of (start, end, text) spans in seconds. The `*_by_speaker` forms cut each run
of one speaker's consecutive words on its own, so that no segment holds two speakers (overlapping
turns stay apart), and return (start, end, text, speaker) spans sorted by start.
"""
from __future__ import annotations

from collections.abc import Sequence

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


def cue_word_speakers(cues: list[Cue]) -> list[str | None]:
    """The speaker of each word `cue_words` makes of `cues`."""
    return [c.speaker for c in cues for _ in c.text.split()]


def speaker_runs(speakers: Sequence[str | None]) -> list[tuple[int, int]]:
    """Index ranges [i, j) of consecutive words of one speaker (None, "not said", is a speaker too)."""
    runs, i = [], 0
    for j in range(1, len(speakers) + 1):
        if j == len(speakers) or speakers[j] != speakers[i]:
            runs.append((i, j))
            i = j
    return runs


def _in_time_order(spans: list[tuple[float, float, str, str | None]], n_runs: int):
    """Spans of several speaker runs sorted by start (overlapping turns interleave); one run's are already in order."""
    return sorted(spans, key=lambda s: (s[0], s[1])) if n_runs > 1 else spans


def auto_spans_by_speaker(words: list[Word], speakers: Sequence[str | None], target_words: int,
                          max_seconds: float, cue_ends: set[int] = frozenset()):
    """`auto_spans` over each speaker run, with a cut wherever the speaker changes."""
    spans, runs = [], speaker_runs(speakers)
    for i, j in runs:
        ends = {k - i for k in cue_ends if i <= k < j}
        spans += [(s, e, t, speakers[i]) for s, e, t in auto_spans(words[i:j], target_words, max_seconds, ends)]
    return _in_time_order(spans, len(runs))


def fixed_spans_by_speaker(words: list[Word], speakers: Sequence[str | None], window: float, duration: float):
    """`fixed_spans` over each speaker run. With one run the windows are as `fixed_spans` gives them;
    with several, each run's windows are narrowed to the run's own words (two speakers' segments
    share no more of the audio than their words do)."""
    runs = speaker_runs(speakers)
    if len(runs) <= 1:
        return [(s, e, t, speakers[0] if speakers else None) for s, e, t in fixed_spans(words, window, duration)]
    spans = []
    for i, j in runs:
        lo, hi = words[i].start, max(w.end for w in words[i:j])
        for s, e, t in fixed_spans(words[i:j], window, duration):
            s, e = max(s, lo), min(e, hi)
            spans.append((s, max(e, s + MIN_SPAN), t, speakers[i]))
    return _in_time_order(spans, len(runs))


def merge_channels(channel_words: Sequence[list[Word]], names: Sequence[str]) -> tuple[list[Word], list[str]]:
    """The words of several channels (one speaker each) as one sequence, with each word's speaker: each channel's
    words are grouped into turns (a pause of FULL_PAUSE or more ends one) and the turns are put in order of their
    start (the left channel first on a tie). A turn is never interleaved with another speaker's words, so a
    backchannel ("mm-hmm") said over a turn cuts it once at most, instead of chopping it word by word."""
    turns = []
    for k, words in enumerate(channel_words):
        i = 0
        for j in range(1, len(words) + 1):
            if j == len(words) or words[j].start - words[j - 1].end >= FULL_PAUSE:
                turns.append((words[i].start, k, words[i:j]))
                i = j
    turns.sort(key=lambda t: (t[0], t[1]))
    return [w for _, _, ws in turns for w in ws], [names[k] for _, k, ws in turns for _ in ws]


def cue_spans_with_speaker(cues: list[Cue]):
    """`cue_spans` with each cue's speaker (cues are never merged)."""
    return [(s, e, t, c.speaker) for (s, e, t), c in zip(cue_spans(cues), cues)]
