"""Long recordings: audio read in streamed blocks (the same samples as reading it whole), transcription in
chunks cut at quiet points, each finished chunk cached so that a killed run resumes after it, and the
memory load_audio needs for an hour of 44.1-kHz stereo."""
import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import soxr

from hilbert_cli.corpus import audio as audio_mod
from hilbert_cli.corpus.asr import Word, cache_path, chunk_bounds, transcribe_cached
from hilbert_cli.corpus.audio import SAMPLE_RATE, AudioInfo, load_audio


def _one_shot(path, channel=None):
    """What load_audio did before it streamed: the whole file read, mixed down, resampled in one call."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    x = data.mean(axis=1) if channel is None else data[:, channel]
    return x if rate == SAMPLE_RATE else soxr.resample(x, rate, SAMPLE_RATE, quality="HQ")


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_streamed_reading_gives_the_samples_of_one_shot_reading(tmp_path, rate, channels):
    rng = np.random.default_rng(rate + channels)
    seconds = 2 * audio_mod.BLOCK_SECONDS + 7.3  # three blocks, the last one short
    t = np.arange(int(seconds * rate)) / rate
    signal = np.stack([0.3 * np.sin(2 * np.pi * (180 + 90 * c) * t) + 0.05 * rng.standard_normal(t.size)
                       for c in range(channels)], axis=1).astype(np.float32)
    path = tmp_path / f"a{rate}.wav"
    sf.write(path, signal, rate, subtype="FLOAT")
    for channel in [None, *range(channels)]:
        want, got = _one_shot(path, channel), load_audio(path, channel=channel)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert abs(len(got) / SAMPLE_RATE - seconds) < 1e-3


def test_a_header_that_undercounts_the_samples_still_reads_them_all(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 44100 * 40).astype(np.float32), 44100, subtype="FLOAT")
    want = _one_shot(path)
    real = audio_mod.audio_info
    monkeypatch.setattr(audio_mod, "audio_info", lambda p: AudioInfo(real(p).frames // 3, 44100, 1))  # like a VBR mp3
    np.testing.assert_allclose(load_audio(path), want, atol=1e-6)


def test_channel_that_is_not_there(tmp_path):
    sf.write(tmp_path / "m.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(audio_mod.HilbertError, match=r"m.wav: has 1 channel\(s\), so there is no channel 2"):
        load_audio(tmp_path / "m.wav", channel=1)


# --- chunked transcription ---------------------------------------------------------------------------
def _bursts(seconds=21.0, seed=0):
    """Word-like 0.2-0.5 s tone bursts with 0.15-0.6 s pauses, in a quiet room."""
    rng = np.random.default_rng(seed)
    audio = rng.normal(0, 1e-3, int(seconds * SAMPLE_RATE)).astype(np.float32)
    t = 0.3
    while t < seconds - 0.6:
        n = int(rng.uniform(0.2, 0.5) * SAMPLE_RATE)
        i = int(t * SAMPLE_RATE)
        audio[i:i + n] += 0.3 * np.sin(2 * np.pi * 200 * np.arange(n) / SAMPLE_RATE)
        t += n / SAMPLE_RATE + rng.uniform(0.15, 0.6)
    return audio


class BurstASR:
    """Hears one word per burst (10-ms frames above a threshold), and counts its calls; `fail_on` raises there."""
    identity = "bursts:1"

    def __init__(self, fail_on=None):
        self.calls, self.fail_on = 0, fail_on

    def transcribe(self, audio, progress=None):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt  # the user stops the run (or the machine kills it) mid-transcription
        loud = np.abs(audio[: len(audio) // 160 * 160].reshape(-1, 160)).max(axis=1) > 0.05
        edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(int), [0]])))
        words = [Word(a / 100, b / 100, f"w{b - a}") for a, b in zip(edges[::2], edges[1::2])]
        if progress:
            progress(1.0)
        return words


def test_chunks_are_cut_at_quiet_points_and_give_the_words_of_one_pass():
    audio = _bursts()
    bounds = chunk_bounds(audio, chunk_seconds=5.0)
    assert len(bounds) == 5 and bounds[0][0] == 0 and bounds[-1][1] == len(audio)
    assert all(b - a <= 5 * SAMPLE_RATE for a, b in bounds) and all(x[1] == y[0] for x, y in itertools.pairwise(bounds))
    for _, cut in bounds[:-1]:
        assert np.abs(audio[cut - 800:cut + 800]).max() < 0.01  # in a pause, not in a burst
    assert chunk_bounds(audio, chunk_seconds=30.0) == [(0, len(audio))]  # short audio: one pass, as before
    whole = BurstASR().transcribe(audio)
    chunked, cached = transcribe_cached(BurstASR(), audio, "a" * 64, None, chunk_seconds=5.0)
    assert not cached and [w.text for w in chunked] == [w.text for w in whole]
    assert [t for w in chunked for t in (w.start, w.end)] == pytest.approx([t for w in whole for t in (w.start, w.end)],
                                                                            abs=1e-3)


def test_a_killed_chunked_transcription_resumes_after_its_last_finished_chunk(tmp_path):
    audio, sha = _bursts(), "b" * 64
    n_chunks = len(chunk_bounds(audio, 5.0))
    with pytest.raises(KeyboardInterrupt):
        transcribe_cached(BurstASR(fail_on=3), audio, sha, tmp_path / "run", chunk_seconds=5.0)
    entry = cache_path(tmp_path / "run", sha, BurstASR.identity, chunk_seconds=5.0)
    assert not entry.exists() and len(list(entry.with_suffix(".parts").glob("*.json"))) == 2

    resumed, seen = BurstASR(), []
    words, cached = transcribe_cached(resumed, audio, sha, tmp_path / "run", seen.append, chunk_seconds=5.0)
    assert resumed.calls == n_chunks - 2 and not cached  # chunks 1 and 2 came from the cache
    assert seen == sorted(seen) and seen[-1] == 1.0
    straight = BurstASR()
    assert words == transcribe_cached(straight, audio, sha, tmp_path / "other", chunk_seconds=5.0)[0]
    assert straight.calls == n_chunks
    assert entry.is_file() and not entry.with_suffix(".parts").exists()  # whole: the parts are gone
    assert json.loads(entry.read_text())["words"][0] == [words[0].start, words[0].end, words[0].text]

    again = BurstASR()
    assert transcribe_cached(again, audio, sha, tmp_path / "run", chunk_seconds=5.0) == (words, True)
    assert again.calls == 0
    # one pass and chunks are cached apart: a short recording keeps the key it always had
    assert cache_path(tmp_path, sha, BurstASR.identity) != entry


# --- memory --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_hour_of_44khz_stereo_loads_in_about_the_memory_of_its_result(tmp_path):
    """Reading it whole as float32 took 5.5x the 16-kHz result before resampling even began; streamed, the
    peak resident memory grows by little more than the result itself."""
    rate, path = 44100, tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    block = (rng.normal(0, 0.05, (rate * 60, 2)) * 32767).astype(np.int16)
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
        for _ in range(60):
            f.write(block)
    code = textwrap.dedent(f"""
        import resource
        from hilbert_cli.corpus.audio import load_audio
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        audio = load_audio({str(path)!r})
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, audio.nbytes)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    grown_kb, nbytes = map(int, out.split())
    assert nbytes == 3600 * SAMPLE_RATE * 4
    assert grown_kb * 1024 < 1.3 * nbytes, (grown_kb / 1024, nbytes / 2**20)
