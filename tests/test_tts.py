"""eSpeak NG through ctypes: real synthesis, checked by what can be measured in the sound."""
import threading

import numpy as np
import pytest

from hilbert_cli.corpus.audio import SAMPLE_RATE
from hilbert_cli.errors import HilbertError
from hilbert_cli.demo.tts import Engine, synthesize, synthesize_native

SENTENCE = "I have been sleeping quite well lately, thank you for asking."


def _median_f0(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Median fundamental frequency (Hz) of the loud, clearly periodic 40 ms frames (autocorrelation)."""
    frame, lo, hi = int(0.04 * sr), int(sr / 400), int(sr / 50)
    loud = 0.3 * np.sqrt(np.mean(x ** 2))
    f0 = []
    for i in range(0, len(x) - frame, frame // 2):
        f = x[i:i + frame] - x[i:i + frame].mean()
        if np.sqrt(np.mean(f ** 2)) < loud:
            continue
        ac = np.correlate(f, f, "full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            f0.append(sr / lag)
    assert len(f0) > 5, "too few voiced frames to estimate pitch"
    return float(np.median(f0))


def test_speech_is_audible_16khz_float_of_plausible_length():
    audio, words = synthesize(SENTENCE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.05 < np.sqrt(np.mean(audio ** 2)) and np.abs(audio).max() <= 1.0
    seconds = len(audio) / SAMPLE_RATE
    n_words = len(SENTENCE.split())
    assert 0.5 * n_words / (175 / 60) < seconds < 2.0 * n_words / (175 / 60)  # ~175 words per minute


def test_duration_grows_with_text_and_shrinks_with_rate():
    one = len(synthesize("The weather has been quite mixed this week.")[0])
    three = len(synthesize(" ".join(["The weather has been quite mixed this week."] * 3))[0])
    assert 2.5 * one < three < 3.5 * one
    slow, fast = (len(synthesize(SENTENCE, rate_wpm=r)[0]) for r in (120, 240))
    assert 1.5 < slow / fast < 2.5  # twice the rate, about half the time


def test_pitch_parameter_raises_the_fundamental_frequency():
    low = _median_f0(synthesize(SENTENCE, pitch=15)[0])
    high = _median_f0(synthesize(SENTENCE, pitch=85)[0])
    assert high > 1.3 * low, (low, high)


def test_word_timings_cover_every_word_in_order():
    audio, words = synthesize(SENTENCE)
    assert [w.word for w in words] == SENTENCE.split()
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in words)
    assert words[0].start < 0.3 and abs(words[-1].end - len(audio) / SAMPLE_RATE) < 0.5
    # slower speech moves the last word later
    assert synthesize(SENTENCE, rate_wpm=120)[1][-1].start > words[-1].start + 0.5


def test_native_rate_and_voices():
    samples, rate, _ = synthesize_native(SENTENCE, voice="en-us+m3")
    assert samples.dtype == np.int16 and rate == 22050
    other, _, _ = synthesize_native(SENTENCE, voice="en-us+f2")
    assert _median_f0(other.astype(np.float32), rate) > 1.3 * _median_f0(samples.astype(np.float32), rate)


def test_fresh_engines_repeat_exactly_whatever_was_spoken_before():
    def run():
        with Engine(fresh=True) as tts:
            return [tts.synthesize_native(t, voice=v)[0] for t, v in
                    ((SENTENCE, "en-us+m1"), ("Another sentence follows.", "en-us+f2"), (SENTENCE, "en-us+m1"))]

    first = run()
    synthesize("Something unrelated, spoken on the shared engine in between.")
    second = run()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    engine = Engine(fresh=True)
    engine.close()
    with pytest.raises(HilbertError, match="closed"):
        engine.synthesize(SENTENCE)


def test_threads_share_the_engine_safely():
    texts = [f"Sentence number {n} is spoken now." for n in ("one", "two", "three", "four")]
    expected = [synthesize(t) for t in texts]
    got = [None] * len(texts)

    def run(i):
        got[i] = synthesize(texts[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # eSpeak's carried-over state moves samples a little; interleaved calls would garble words and lengths
    for (a, wa), (b, wb) in zip(expected, got):
        assert [w.word for w in wa] == [w.word for w in wb]
        assert abs(len(a) - len(b)) < 0.02 * len(a)
        assert abs(np.sqrt(np.mean(a ** 2)) / np.sqrt(np.mean(b ** 2)) - 1) < 0.1


@pytest.mark.parametrize("kwargs, match", [
    (dict(text="hello", voice="xx-nonexistent"), "voice"),
    (dict(text="hello", rate_wpm=20), "rate_wpm"),
    (dict(text="hello", pitch=150), "pitch"),
    (dict(text="   "), "empty"),
])
def test_bad_arguments_raise_hilbert_error(kwargs, match):
    with pytest.raises(HilbertError, match=match):
        synthesize(**kwargs)
