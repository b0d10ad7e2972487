"""Frozen encoders behind one interface (s3prl-style).

Audio encoders take a whole document's 16 kHz audio plus its segment spans and return one pooled vector
per segment (`embed_segments`); internally each turns the document into a sequence of frames at
`frame_rate` Hz and pools the frames inside each span (`pool_frames`). Text encoders embed a list of
texts (`embed_texts`). eGeMAPS and CLAP's audio tower give one vector per segment directly (no frames). Encoders are
built by `load_encoder` from a backbone that backbones.py has already located on this machine; nothing here
touches the network.

Devices: `load_encoder(resolved, device=...)` takes a torch.device (from device.resolve_device; None =
auto). The torch models (transformers, openai-whisper, sentence-transformers) run on it, CUDA or MPS,
in float32, and their outputs come back to the CPU as float32 numpy arrays. CTranslate2 Whisper runs in
float16 on a CUDA GPU and int8 on the CPU, with `threads` CPU threads (None = device.default_threads);
CTranslate2 has no MPS backend, so `mps` runs it on the CPU. The spectrogram and eGeMAPS encoders always
run on the CPU (numpy / openSMILE). Each encoder's `device` says where it actually runs. The torch models'
CPU threads are torch's own setting (torch.set_num_threads), which library code leaves alone.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..corpus.audio import SAMPLE_RATE
from .backbones import (AUDIO, BOTH, CLAP, CT2_WHISPER, EGEMAPS, HF_AUDIO, HF_WHISPER, OPENAI_WHISPER, SENTENCE,
                        SPECTROGRAM, ResolvedBackbone, EGEMAPS_MISSING)
from ..device import ctranslate2_options, resolve_device
from ..errors import HilbertError

POOLINGS = ("mean", "mean+std")
CPU = torch.device("cpu")

WHISPER_WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper's encoder sees exactly 30-s windows
WHISPER_MEL_FRAMES = 3000  # 10-ms mel frames per window
WHISPER_FRAME_RATE = 50.0  # encoder frames per second (the conv front end halves 100 Hz)
WHISPER_WINDOW_BATCH = 4  # windows encoded together

HF_CHUNK_SECONDS = 30  # long documents go through wav2vec2-style models in chunks, to bound memory
HF_CONTEXT_SECONDS = 5  # extra audio on each side of a chunk, so frames near chunk edges see context
HF_BATCH = 2  # equal-length chunks per forward pass

MEL_BANDS, MEL_N_FFT, MEL_HOP = 80, 400, 160  # 25-ms windows every 10 ms
EGEMAPS_MIN_SECONDS = 0.5  # openSMILE functionals need some signal; shorter spans are widened
CLAP_MIN_SECONDS = 0.5  # CLAP repeats a short clip to fill its 10 s; shorter spans are widened first
CLAP_BATCH = 8  # CLAP clips per forward pass (every clip is padded to the same 10 s)


def pool_frames(frames: np.ndarray, frame_rate: float, spans, pooling: str = "mean") -> np.ndarray:
    """Pool frames (N, d) whose frame i is centred at (i + 0.5) / frame_rate s into one vector per
    span [start, end): mean, or mean and standard deviation side by side. A span holding no frame
    centre takes the frame nearest its midpoint."""
    if pooling not in POOLINGS:
        raise HilbertError(f"--pooling: unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}.")
    n, d = frames.shape
    out = np.zeros((len(spans), 2 * d if pooling == "mean+std" else d), dtype=np.float32)
    if n == 0:
        return out
    for s, (start, end) in enumerate(spans):
        lo = max(0, math.ceil(start * frame_rate - 0.5))
        hi = min(n, math.ceil(end * frame_rate - 0.5))
        if hi <= lo:  # shorter than a frame: its nearest frame
            lo = min(n - 1, max(0, int((start + end) / 2 * frame_rate)))
            hi = lo + 1
        x = frames[lo:hi].astype(np.float64)
        out[s, :d] = x.mean(axis=0)
        if pooling == "mean+std":
            out[s, d:] = x.std(axis=0)
    return out


def span_audio(audio: np.ndarray, start: float, end: float, min_seconds: float) -> np.ndarray:
    """The samples of [start, end) s of 16-kHz `audio`, a span shorter than `min_seconds` widened to that length
    around its midpoint (clipped to the audio)."""
    if end - start < min_seconds:
        mid = (start + end) / 2
        start, end = mid - min_seconds / 2, mid + min_seconds / 2
    a, b = max(0, int(start * SAMPLE_RATE)), min(len(audio), int(end * SAMPLE_RATE))
    return audio[a:max(a, b)]


class AudioEncoder:
    kind = "audio"
    frame_rate: float = WHISPER_FRAME_RATE

    def __init__(self, resolved: ResolvedBackbone, device: Optional[torch.device] = None, threads: Optional[int] = None):
        self.name = resolved.name
        self.fingerprint = resolved.fingerprint
        self.device = CPU  # where the work runs; encoders with a model set their own
        self.calls = 0  # forward passes run; lets tests prove a cached run did no model work

    def frames(self, audio: np.ndarray, layer: int | None = None) -> np.ndarray:
        """(N, dimension) float32 frames of the whole document at `frame_rate` Hz."""
        raise NotImplementedError

    def embed_segments(self, audio: np.ndarray, spans, layer: int | None = None, pooling: str = "mean") -> np.ndarray:
        """One vector per (start, end) span, in seconds, of the document `audio` (16 kHz mono float32)."""
        return pool_frames(self.frames(audio, layer), self.frame_rate, spans, pooling)


class _WhisperWindows(AudioEncoder):
    """Whisper: cut the document into consecutive 30-s windows (the last one zero-padded), encode the
    windows in batches, and concatenate their frames, so each segment is pooled from the windows it spans.
    Subclasses give `window_features` (n_mels, 3000) and `encode_windows` (B, n_mels, 3000) -> (B, 1500, d)."""

    def window_features(self, window: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode_windows(self, features: np.ndarray, layer: int | None) -> np.ndarray:
        raise NotImplementedError

    def frames(self, audio, layer=None):
        n_windows = max(1, math.ceil(len(audio) / WHISPER_WINDOW_SAMPLES))
        frames = None  # filled in place: a long document's frames are held once, never twice while joined
        for first in range(0, n_windows, WHISPER_WINDOW_BATCH):
            batch = []
            for w in range(first, min(first + WHISPER_WINDOW_BATCH, n_windows)):
                window = audio[w * WHISPER_WINDOW_SAMPLES:(w + 1) * WHISPER_WINDOW_SAMPLES]
                window = np.pad(window, (0, WHISPER_WINDOW_SAMPLES - len(window)))
                batch.append(self.window_features(window))
            out = self.encode_windows(np.stack(batch).astype(np.float32), layer)  # (windows, frames, d)
            if frames is None:
                frames = np.empty((n_windows * out.shape[1], out.shape[2]), np.float32)
            frames[first * out.shape[1]:(first + len(batch)) * out.shape[1]] = out.reshape(-1, out.shape[2])
            self.calls += 1
        return frames[: max(1, math.ceil(len(audio) / SAMPLE_RATE * self.frame_rate))]


class CT2WhisperEncoder(_WhisperWindows):
    """CTranslate2 Whisper through faster-whisper: int8 on the CPU (fast there), float16 on a CUDA GPU, and
    the CPU for `mps` (CTranslate2 has no MPS backend); only the last layer is exposed."""

    def __init__(self, resolved, device=None, threads=None):
        super().__init__(resolved)
        from faster_whisper import WhisperModel

        device = resolve_device(device)
        self.device = device if device.type == "cuda" else CPU
        self.model = WhisperModel(str(resolved.path), **ctranslate2_options(device, threads))
        self._dimension = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:  # CTranslate2 does not say; one silent window tells (only when asked)
            silent = np.zeros((1, self.model.model.n_mels, WHISPER_MEL_FRAMES), np.float32)
            self._dimension = int(self.encode_windows(silent, None).shape[-1])
        return self._dimension

    def window_features(self, window):
        return self.model.feature_extractor(window)[:, :WHISPER_MEL_FRAMES]

    def encode_windows(self, features, layer):
        import ctranslate2

        features = np.ascontiguousarray(features, dtype=np.float32)
        out = self.model.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True)  # off the GPU, if on it
        return np.array(out, dtype=np.float32)  # float16 on a GPU


class _TorchLayers:
    """Picks --layer out of a tuple of hidden states (0 = input embeddings, last = encoder output)."""

    @staticmethod
    def pick(hidden_states, layer, name, last):
        """hidden_states[layer], except that the last layer is always the encoder's output `last` (some
        models apply a final layer norm that not every hidden-states tuple includes)."""
        n = len(hidden_states) - 1
        if not -(n + 1) <= layer <= n:
            raise HilbertError(f"--layer {layer}: {name} has layers 0 (input embeddings) to {n}; pick one of those.")
        return last if layer % (n + 1) == n else hidden_states[layer]


class OpenAIWhisperEncoder(_WhisperWindows):
    """An openai-whisper checkpoint (.pt with dims + model_state_dict), encoder only, on `device` (the log-mel
    features are computed on the CPU)."""

    def __init__(self, resolved, device=None, threads=None):
        super().__init__(resolved)
        import whisper

        self.whisper = whisper
        self.device = resolve_device(device)
        # loaded on the CPU, then only the encoder moves: the whole model's sparse alignment-heads buffer
        # cannot go to MPS, and the decoder is not needed on the device
        self.model = whisper.load_model(str(resolved.path), device="cpu").eval()
        self.model.encoder.to(self.device)
        self.dimension = self.model.dims.n_audio_state
        self.n_mels = self.model.dims.n_mels

    def window_features(self, window):
        return self.whisper.log_mel_spectrogram(window, self.n_mels).numpy()[:, :WHISPER_MEL_FRAMES]

    def encode_windows(self, features, layer):
        import torch
        import torch.nn.functional as F

        enc = self.model.encoder
        with torch.inference_mode():
            x = F.gelu(enc.conv2(F.gelu(enc.conv1(torch.from_numpy(features).to(self.device)))))
            x = x.permute(0, 2, 1) + enc.positional_embedding
            states = [x]
            for block in enc.blocks:
                x = block(x)
                states.append(x)
            states[-1] = enc.ln_post(x)  # the last layer is the encoder's output, as in transformers
            x = states[-1] if layer is None else _TorchLayers.pick(states, layer, self.name, states[-1])
        return x.float().cpu().numpy()


class HFWhisperEncoder(_WhisperWindows):
    """A transformers Whisper checkpoint folder, encoder only, on `device` (features computed on the CPU)."""

    def __init__(self, resolved, device=None, threads=None):
        super().__init__(resolved)
        from transformers import AutoFeatureExtractor, WhisperModel

        self.device = resolve_device(device)
        self.extractor = AutoFeatureExtractor.from_pretrained(str(resolved.path), local_files_only=True)
        model = WhisperModel.from_pretrained(str(resolved.path), local_files_only=True)
        self.encoder = model.get_encoder().eval().to(self.device)
        self.dimension = self.encoder.config.d_model

    def window_features(self, window):
        return self.extractor(window, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]

    def encode_windows(self, features, layer):
        import torch

        with torch.inference_mode():
            out = self.encoder(torch.from_numpy(features).to(self.device), output_hidden_states=layer is not None)
            x = out.last_hidden_state if layer is None else _TorchLayers.pick(out.hidden_states, layer, self.name, out.last_hidden_state)
        return x.float().cpu().numpy()


class HFAudioEncoder(AudioEncoder):
    """wav2vec2 / HuBERT / wav2vec2-Conformer and kin, through the checkpoint's own feature extractor.

    A long document is cut into 30-s chunks, each run with 5 s of context on both sides and keeping only
    its own frames; chunks of equal length are batched, so no chunk is ever padded and the attention-mask
    question (some checkpoints must not get one) never changes a vector. The model runs on `device`; the
    feature extractor on the CPU."""

    def __init__(self, resolved, device=None, threads=None):
        super().__init__(resolved)
        from transformers import AutoFeatureExtractor, AutoModel

        self.device = resolve_device(device)
        self.extractor = AutoFeatureExtractor.from_pretrained(str(resolved.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(resolved.path), local_files_only=True).eval().to(self.device)
        cfg = self.model.config
        self.stride = int(np.prod(cfg.conv_stride))  # samples per frame (320 = 20 ms)
        self.receptive = int(sum((k - 1) * int(np.prod(cfg.conv_stride[:i])) for i, k in enumerate(cfg.conv_kernel)) + 1)
        self.frame_rate = SAMPLE_RATE / self.stride
        self.dimension = cfg.hidden_size

    def _forward(self, inputs: list[np.ndarray], layer):
        import torch

        feats = self.extractor(inputs, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                               return_attention_mask=bool(getattr(self.extractor, "return_attention_mask", False)))
        kwargs = {"attention_mask": feats["attention_mask"].to(self.device)} if "attention_mask" in feats else {}
        with torch.inference_mode():
            out = self.model(feats["input_values"].to(self.device), output_hidden_states=layer is not None, **kwargs)
            x = out.last_hidden_state if layer is None else _TorchLayers.pick(out.hidden_states, layer, self.name, out.last_hidden_state)
        self.calls += 1
        return x.float().cpu().numpy()

    def frames(self, audio, layer=None):
        chunk, ctx = HF_CHUNK_SECONDS * SAMPLE_RATE, HF_CONTEXT_SECONDS * SAMPLE_RATE  # both multiples of the stride
        audio = np.pad(audio, (0, max(0, self.receptive - len(audio))))
        jobs = []  # (input start sample, core first frame, core end frame, input audio)
        for c0 in range(0, len(audio), chunk):
            s0, s1 = max(0, c0 - ctx), min(len(audio), c0 + chunk + ctx)
            piece = audio[s0:s1]
            if len(piece) < self.receptive:
                piece = np.pad(piece, (0, self.receptive - len(piece)))
            jobs.append((s0, c0 // self.stride, (c0 + chunk) // self.stride, piece))
        results = {}
        by_length: dict[int, list[int]] = {}
        for j, job in enumerate(jobs):
            by_length.setdefault(len(job[3]), []).append(j)
        for idx in by_length.values():
            for b in range(0, len(idx), HF_BATCH):
                part = idx[b:b + HF_BATCH]
                for j, x in zip(part, self._forward([jobs[j][3] for j in part], layer)):
                    results[j] = x
        out = []
        for j, (s0, f0, f1, _) in enumerate(jobs):
            first = f0 - s0 // self.stride  # this chunk's own frames within its output
            out.append(results[j][first:first + (f1 - f0)])
        return np.concatenate(out)


class SpectrogramEncoder(AudioEncoder):
    """Log-mel frames (80 bands, 25-ms windows every 10 ms); pooling gives log-mel statistics. Always on the
    CPU (numpy): `device` is ignored."""

    frame_rate = SAMPLE_RATE / MEL_HOP
    dimension = MEL_BANDS
    _BLOCK = 6000  # frames per STFT block (1 minute), to bound memory on long documents

    def __init__(self, resolved, device=None, threads=None):
        super().__init__(resolved)
        from faster_whisper.feature_extractor import FeatureExtractor

        self.filters = FeatureExtractor.get_mel_filters(SAMPLE_RATE, MEL_N_FFT, n_mels=MEL_BANDS).astype(np.float32)
        self.window = np.hanning(MEL_N_FFT + 1)[:-1].astype(np.float32)

    def frames(self, audio, layer=None):
        padded = np.pad(audio, (MEL_N_FFT // 2, MEL_N_FFT // 2))  # frame i centred on sample i * hop
        n = 1 + (len(padded) - MEL_N_FFT) // MEL_HOP
        out = np.empty((n, MEL_BANDS), np.float32)
        for b in range(0, n, self._BLOCK):
            idx = np.arange(b, min(n, b + self._BLOCK))[:, None] * MEL_HOP + np.arange(MEL_N_FFT)
            power = np.abs(np.fft.rfft(padded[idx] * self.window, axis=1)) ** 2
            out[b:b + len(idx)] = np.log(power @ self.filters.T + 1e-10)
        self.calls += 1
        return out


class EGeMAPSEncoder(AudioEncoder):
    """openSMILE eGeMAPSv02 functionals (88 values) per segment; pooling does not apply (they are statistics).
    Always on the CPU (openSMILE): `device` is ignored."""

    dimension = 88

    def __init__(self, resolved, device=None, threads=None):
        try:
            import opensmile
        except ImportError:
            raise HilbertError(EGEMAPS_MISSING) from None
        super().__init__(resolved)
        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.Functionals)

    def embed_segments(self, audio, spans, layer=None, pooling="mean"):
        if pooling not in POOLINGS:
            raise HilbertError(f"--pooling: unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}.")
        out = np.zeros((len(spans), self.dimension), np.float32)
        for s, (start, end) in enumerate(spans):
            piece = span_audio(audio, start, end, EGEMAPS_MIN_SECONDS)
            if len(piece) < SAMPLE_RATE * EGEMAPS_MIN_SECONDS / 2:
                piece = np.pad(piece, (0, SAMPLE_RATE // 2))
            out[s] = np.nan_to_num(self.smile.process_signal(piece, SAMPLE_RATE).to_numpy()[0])
            self.calls += 1
        return out


class TextEncoder:
    """A sentence-transformers model (each model keeps its own pooling and normalisation), on `device`."""

    kind = "text"
    batch_size = 64

    def __init__(self, resolved: ResolvedBackbone, device: Optional[torch.device] = None, threads: Optional[int] = None):
        from sentence_transformers import SentenceTransformer

        self.name = resolved.name
        self.fingerprint = resolved.fingerprint
        self.device = resolve_device(device)
        self.model = SentenceTransformer(str(resolved.path), device=str(self.device), local_files_only=True)
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = dim()
        self.calls = 0

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        return np.asarray(self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float32)


def _clap_model(resolved: ResolvedBackbone, device: torch.device):
    from transformers import ClapModel

    return ClapModel.from_pretrained(str(resolved.path), local_files_only=True).eval().to(device)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _pooled(out) -> torch.Tensor:
    """The projected embedding of a ClapModel.get_*_features call (a tensor in transformers 4, the output's
    pooler_output in 5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClapAudioEncoder(AudioEncoder):
    """CLAP's audio tower (transformers ClapModel.get_audio_features): one unit-length projected embedding per
    segment, on `device` (features computed on the CPU).

    Each segment's 16-kHz audio (widened to CLAP_MIN_SECONDS if shorter) is resampled to the feature extractor's
    rate (48 kHz for LAION CLAP) with soxr. The extractor takes clips of at most its `max_length_s` (10 s) and
    repeats a shorter clip to fill them; a longer one it would crop at random, so a longer segment is cut here
    into the fewest equal pieces that fit, each embedded, and their mean renormalised. No clip is ever longer than
    the extractor's length, so none is "longer" (fused checkpoints then take no random fusion crop either), and
    a segment's vector depends only on its own audio. Pooling does not apply (one vector per segment already);
    `layer` neither (check_layer refuses it)."""

    def __init__(self, resolved, device=None, threads=None):
        super().__init__(resolved)
        from transformers import AutoFeatureExtractor

        self.device = resolve_device(device)
        self.extractor = AutoFeatureExtractor.from_pretrained(str(resolved.path), local_files_only=True)
        self.model = _clap_model(resolved, self.device)
        self.rate = int(self.extractor.sampling_rate)
        self.clip_samples = int(self.extractor.nb_max_samples)
        self.dimension = int(self.model.config.projection_dim)

    def clips(self, audio, start, end) -> list[np.ndarray]:
        """The extractor-rate clips one segment is embedded from."""
        import soxr

        piece = span_audio(audio, start, end, CLAP_MIN_SECONDS)
        piece = np.pad(piece, (0, max(0, int(CLAP_MIN_SECONDS * SAMPLE_RATE) - len(piece))))  # past the end: silence
        if self.rate != SAMPLE_RATE:
            piece = soxr.resample(piece.astype(np.float32), SAMPLE_RATE, self.rate, quality="HQ")
        return np.array_split(piece, max(1, math.ceil(len(piece) / self.clip_samples)))

    def embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        """(n, dimension) unit-length embeddings of clips at the extractor's rate, none longer than its length."""
        out = []
        for b in range(0, len(clips), CLAP_BATCH):
            feats = self.extractor(clips[b:b + CLAP_BATCH], sampling_rate=self.rate, return_tensors="pt")
            is_longer = torch.zeros_like(feats["is_longer"])  # none is (a fusion extractor flags one at random)
            with torch.inference_mode():
                x = _pooled(self.model.get_audio_features(input_features=feats["input_features"].to(self.device),
                                                          is_longer=is_longer.to(self.device)))
            out.append(x.float().cpu().numpy())
            self.calls += 1
        return _unit_rows(np.concatenate(out) if out else np.zeros((0, self.dimension)))

    def embed_segments(self, audio, spans, layer=None, pooling="mean"):
        if pooling not in POOLINGS:
            raise HilbertError(f"--pooling: unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}.")
        clips, owner = [], []
        for s, (start, end) in enumerate(spans):
            for clip in self.clips(audio, start, end):
                clips.append(clip)
                owner.append(s)
        out = np.zeros((len(spans), self.dimension), np.float64)
        np.add.at(out, np.asarray(owner, dtype=np.int64), self.embed_clips(clips))
        return _unit_rows(out)


class ClapTextEncoder:
    """CLAP's text tower (transformers ClapModel.get_text_features): one unit-length projected embedding per
    text, through the checkpoint's own tokenizer (truncated to what the text model can take), on `device`.
    Texts are batched by length; padding is masked, so a text's vector does not depend on its batch."""

    kind = "text"
    batch_size = 32

    def __init__(self, resolved, device=None, threads=None):
        from transformers import AutoTokenizer

        self.name = resolved.name
        self.fingerprint = resolved.fingerprint
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolved.path), local_files_only=True)
        self.model = _clap_model(resolved, self.device)
        positions = self.model.config.text_config.max_position_embeddings - 2  # RoBERTa positions start after padding
        self.max_length = min(int(self.tokenizer.model_max_length), positions)
        self.dimension = int(self.model.config.projection_dim)
        self.calls = 0

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
            with torch.inference_mode():
                x = _pooled(self.model.get_text_features(input_ids=enc["input_ids"].to(self.device),
                                                         attention_mask=enc["attention_mask"].to(self.device)))
            out[idx] = x.float().cpu().numpy()
        return _unit_rows(out)


def _clap_encoder(resolved, device=None, threads=None):
    if resolved.kind == BOTH:
        raise HilbertError(f"backbone {resolved.name}: a CLAP model embeds both audio and text; load it as an audio "
                           f"or a text backbone (kind='audio' or kind='text').")
    return (ClapAudioEncoder if resolved.kind == AUDIO else ClapTextEncoder)(resolved, device=device, threads=threads)


_ENCODERS = {
    CT2_WHISPER: CT2WhisperEncoder,
    OPENAI_WHISPER: OpenAIWhisperEncoder,
    HF_WHISPER: HFWhisperEncoder,
    HF_AUDIO: HFAudioEncoder,
    SPECTROGRAM: SpectrogramEncoder,
    EGEMAPS: EGeMAPSEncoder,
    SENTENCE: TextEncoder,
    CLAP: _clap_encoder,
}


def _quiet_hub_progress() -> None:
    """Loading local weights needs no 'Loading weights' bars from transformers / huggingface_hub."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()


def load_encoder(resolved: ResolvedBackbone, device: Optional[torch.device] = None, threads: Optional[int] = None):
    """Build the encoder for a backbone already located on this machine (backbones.resolve_backbone), on
    `device` (None = auto; see the module docstring) with `threads` CTranslate2 CPU threads (None = default)."""
    device = resolve_device(device)
    if resolved.loader in (HF_AUDIO, HF_WHISPER, SENTENCE, CLAP):
        _quiet_hub_progress()
    try:
        return _ENCODERS[resolved.loader](resolved, device=device, threads=threads)
    except (OSError, ValueError, RuntimeError) as e:  # unreadable / incompatible weights
        where = resolved.path if resolved.path is not None else resolved.model
        raise HilbertError(f"backbone {resolved.name}: cannot load the model at {where} ({e}); check the files or pick another backbone.") from None
