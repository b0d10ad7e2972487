"""Compute devices: resolve_device, `--device` on segment / embed / predict, and encoders and ASR that run
where they are told (CPU here; the `gpu` tests need a CUDA GPU and are skipped elsewhere)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tiny_models as tm
from hilbert_cli.cli import app
from hilbert_cli.device import DEVICE_CHOICES, default_threads, resolve_device
from hilbert_cli.errors import DeviceError, HilbertError
from hilbert_cli.features.backbones import load_backbone

CUDA = torch.cuda.is_available()
MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
no_cuda_only = pytest.mark.skipif(CUDA, reason="this machine has a CUDA GPU")
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
SR = 16000


# --- resolve_device ------------------------------------------------------------------------------

def test_auto_and_cpu():
    assert resolve_device("auto") == resolve_device(None) == (torch.device("cuda:0") if CUDA else torch.device("cpu"))
    assert resolve_device("cpu") == resolve_device(" CPU ") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert default_threads(torch.device("cpu")) >= 1 and default_threads(torch.device("cpu"), jobs=10_000) == 1
    assert default_threads(torch.device("cuda", 0)) is None  # torch's own setting on a GPU


@no_cuda_only
@pytest.mark.parametrize("spec", ["cuda", "CUDA", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_names_the_parameter(spec):
    with pytest.raises(DeviceError) as e:
        resolve_device(spec, param="--device")
    assert str(e.value).startswith("--device: ") and "CUDA" in str(e.value) and e.value.param == "--device"
    with pytest.raises(DeviceError) as e:
        resolve_device(spec)  # library callers see the parameter's name
    assert str(e.value).startswith("device: ") and e.value.param == "device"


@pytest.mark.skipif(MPS, reason="this machine has Apple's MPS")
def test_mps_when_absent():
    with pytest.raises(DeviceError, match="^--device: 'mps'") as e:
        resolve_device("mps", param="--device")
    assert e.value.param == "--device"


def test_unknown_device_lists_the_valid_names():
    with pytest.raises(DeviceError) as e:
        resolve_device("tpu", param="--device")
    msg = str(e.value)
    assert msg.startswith("--device: unknown device 'tpu'") and all(name in msg for name in DEVICE_CHOICES)
    assert e.value.param == "--device" and isinstance(e.value, HilbertError)


# --- the CLI -------------------------------------------------------------------------------------

@no_cuda_only
@pytest.mark.parametrize("verb", ["segment", "embed", "predict"])
def test_cli_device_cuda_without_a_gpu_stops_at_once(verb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HILBERT_WORKSPACE", raising=False)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    before = sorted(tmp_path.rglob("*"))
    args = {"segment": ["segment", str(corpus)], "embed": ["embed"],
            "predict": ["predict", str(tmp_path / "m.pt"), str(tmp_path / "x.wav")]}[verb]
    res = CliRunner().invoke(app, [*args, "--device", "cuda", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device: 'cuda'"), res.stderr
    assert "Traceback" not in res.output and res.stdout == ""
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written: no workspace, no model, no cache


# --- encoders on a device ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"hubert": tm.hubert_dir(root), "sbert": tm.sentence_dir(root)}


def _noise(seconds, seed=0):
    return (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def test_encoders_run_on_the_device_they_are_given(models, one_thread):
    cpu = torch.device("cpu")
    audio = load_backbone(str(models["hubert"]), kind="audio", device=cpu)
    assert audio.device == cpu and {p.device for p in audio.model.parameters()} == {cpu}
    a = audio.embed_segments(_noise(3.0), [(0.0, 1.0), (1.0, 3.0)])
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (2, 16) and np.isfinite(a).all()

    text = load_backbone(str(models["sbert"]), kind="text", device=cpu)
    assert text.device == cpu and {p.device for p in text.model.parameters()} == {cpu}
    t = text.embed_texts(["the day was good", "no"])
    assert isinstance(t, np.ndarray) and t.dtype == np.float32 and t.shape == (2, 16)


def test_spectrogram_stays_on_the_cpu_whatever_the_device():
    enc = load_backbone("spectrogram", device=torch.device("cpu"))
    assert enc.device == torch.device("cpu")


# --- on a CUDA GPU -------------------------------------------------------------------------------

@pytest.mark.gpu
@needs_cuda
def test_gpu_vectors_match_the_cpu_ones(models):
    cuda, cpu = torch.device("cuda:0"), torch.device("cpu")
    wav, spans = _noise(8.0), [(0.0, 2.5), (2.5, 8.0)]
    texts = ["the day was good", "she said no", "well yes"]
    for name, kind in ((models["hubert"], "audio"), (models["sbert"], "text")):
        on_gpu, on_cpu = (load_backbone(str(name), kind=kind, device=d) for d in (cuda, cpu))
        assert {p.device.type for p in on_gpu.model.parameters()} == {"cuda"}
        run = (lambda e: e.embed_segments(wav, spans)) if kind == "audio" else (lambda e: e.embed_texts(texts))
        g, c = run(on_gpu), run(on_cpu)
        assert g.dtype == np.float32 and g.shape == c.shape
        np.testing.assert_allclose(g, c, rtol=1e-2, atol=1e-3)
    # CTranslate2 Whisper: float16 on the GPU, int8 on the CPU; close, not equal
    g, c = (load_backbone("whisper-tiny", device=d).embed_segments(wav, spans) for d in (cuda, cpu))
    assert g.dtype == np.float32 and g.shape == c.shape == (2, 384)
    cos = (g * c).sum(1) / np.linalg.norm(g, axis=1) / np.linalg.norm(c, axis=1)
    assert (cos > 0.95).all(), cos


@pytest.mark.gpu
@needs_cuda
def test_gpu_faster_whisper_transcribes_in_float16(monkeypatch):
    from hilbert_cli.corpus.asr import load_asr
    from hilbert_cli.demo.tts import synthesize

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    audio, _ = synthesize("I have been sleeping quite well lately, thank you for asking.")
    eng = load_asr("faster-whisper", device=torch.device("cuda:0"))
    words = eng.transcribe(audio)
    assert eng._model.model.device == "cuda" and eng._model.model.compute_type == "float16"
    said = {w.text.strip(".,!?").lower() for w in words}
    assert {"sleeping", "thank", "asking"} & said, words
