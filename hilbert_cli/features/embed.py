"""Segment embeddings: one audio and one text vector per segment (METHOD.md §1), computed once.

The cache is content-addressed. A document's audio vectors live at
    <cache>/audio/<backbone>-<model key>/<input key>.npz
where the model key hashes the backbone name, its weights fingerprint and the pooling options (layer,
pooling), and the input key hashes the audio's sha256 and the exact segment times; text vectors likewise,
keyed by the text backbone and the segment texts. Each file holds the vectors (float16 when they fit)
and a JSON header with their sha256, so a damaged file is detected and recomputed. Re-running does no
model work and does not even load a model; a changed segment or a new backbone recomputes only what
changed. Returned arrays are always the stored values as float32, so a result never depends on whether
it came from the cache.

Encoders run on `device` (a torch.device from device.resolve_device; None = auto), which is not part of
any key: the same backbone, options and inputs are expected to give the same vectors on any device, so a
GPU run's vectors are cached under the same key as a CPU run's and reused by either (they differ slightly
all the same: CTranslate2 Whisper runs in float16 on a GPU and int8 on the CPU).

`train`, `evaluate` and `predict` go through `document_embeddings` / `embed_document`, the same code
path as `hilbert embed`, so a missing embedding is computed on demand.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import encoders
from ..atomic import atomic_save, check_writable_dir
from ..corpus.audio import load_audio, file_sha256
from ..device import resolve_device
from ..engine import LocalEngine
from .backbones import (AUDIO, DEFAULT_AUDIO, DEFAULT_TEXT, TEXT, ResolvedBackbone, backbone_fingerprint,
                        check_layer, resolve_backbone)
from ..errors import HilbertError
from ..workspace import SegmentedDoc, Workspace

__all__ = ["EmbedResult", "embed_corpus", "document_embeddings", "embed_document", "embed_documents",
           "backbone_fingerprint"]

CACHE_FORMAT = 1  # bump when the file layout or the pooling code changes meaning
FLOAT16_MAX = 60000.0  # vectors with larger magnitudes are stored as float32 instead

# progress(stage, done, total): stage "audio" counts documents, stage "text" counts segments
Progress = Callable[[str, int, int], None]


@dataclass
class EmbedResult:
    audio_backbone: str
    text_backbone: str
    docs: int
    segments: int
    audio_computed: int  # documents whose audio vectors were computed now
    audio_cached: int
    text_computed: int  # documents whose text vectors were computed now
    text_cached: int
    corrupt: int  # damaged cache files found and recomputed
    seconds: float  # wall time of the whole call
    audio_seconds: float  # duration of the audio embedded now (computed, not cached)
    audio_dim: int
    text_dim: int

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio embedded per second of wall time (0 when nothing was computed)."""
        return self.audio_seconds / self.seconds if self.audio_seconds and self.seconds > 0 else 0.0


# --- cache ------------------------------------------------------------------------------------------

def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name.rstrip("/")).name or name)[:40]


@dataclass(frozen=True)
class _Slot:
    """Where one kind of vector (audio or text) of one backbone + options lives in the cache."""

    root: Path
    model_key: str

    @classmethod
    def make(cls, cache_dir: Path, kind: str, resolved: ResolvedBackbone, options: dict) -> "_Slot":
        # resolved.model names the backbone canonically: the alias's model, an HF id or an absolute path
        key = _digest({"format": CACHE_FORMAT, "model": resolved.model, "fingerprint": resolved.fingerprint, **options})
        return cls(Path(cache_dir) / kind / f"{_slug(resolved.name)}-{key[:16]}", key)

    def path(self, input_key: str) -> Path:
        return self.root / f"{input_key}.npz"

    def read(self, input_key: str, rows: int) -> tuple[np.ndarray | None, bool]:
        """(vectors as float32, or None when absent or damaged; whether the file was damaged)."""
        path = self.path(input_key)
        if not path.exists():
            return None, False
        try:
            with np.load(path, allow_pickle=False) as z:
                vectors, meta = z["vectors"], json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
            return None, True
        ok = (
            meta.get("model_key") == self.model_key
            and meta.get("input_key") == input_key
            and meta.get("sha256") == hashlib.sha256(vectors.tobytes()).hexdigest()
            and vectors.ndim == 2
            and vectors.shape[0] == rows
        )
        return (vectors.astype(np.float32), False) if ok else (None, True)

    def write(self, input_key: str, vectors: np.ndarray) -> np.ndarray:
        """Store `vectors` compactly and return exactly what a later read will give back."""
        small = np.isfinite(vectors).all() and (vectors.size == 0 or np.abs(vectors).max() < FLOAT16_MAX)
        stored = np.ascontiguousarray(vectors, dtype=np.float16 if small else np.float32)
        meta = {"model_key": self.model_key, "input_key": input_key, "shape": list(stored.shape),
                "sha256": hashlib.sha256(stored.tobytes()).hexdigest()}
        atomic_save(self.path(input_key), lambda f: np.savez(f, vectors=stored, meta=np.array(json.dumps(meta))))
        return stored.astype(np.float32)


def _audio_key(doc: SegmentedDoc) -> str:
    key = {"audio_sha256": doc.audio_sha256, "spans": [[f"{s.start:.6f}", f"{s.end:.6f}"] for s in doc.segments]}
    if any(s.channel is not None for s in doc.segments):  # audio from single channels (--channels); else as before
        key["channels"] = [s.channel for s in doc.segments]
    return _digest(key)


def _text_key(doc: SegmentedDoc) -> str:
    return _digest({"texts": [s.text for s in doc.segments]})


def _check_doc_audio(doc: SegmentedDoc) -> Path:
    path = Path(doc.audio_path)
    if not path.is_file():
        raise HilbertError(f"{path}: the audio of document {doc.doc_id!r} is missing; restore it or re-run `hilbert segment DIR`.")
    if file_sha256(path) != doc.audio_sha256:
        raise HilbertError(
            f"{path}: the audio changed since it was segmented; re-run `hilbert segment DIR` so segments match the audio."
        )
    return path


def _embed_doc_audio(encoder, doc: SegmentedDoc, layer: int | None, pooling: str) -> tuple[np.ndarray, float]:
    """(one audio vector per segment, seconds of audio read): each segment's audio is its channel's (--channels) or
    all channels averaged; one channel's audio is held at a time."""
    path = _check_doc_audio(doc)
    by_channel: dict[int | None, list[int]] = {}
    for i, s in enumerate(doc.segments):
        by_channel.setdefault(s.channel, []).append(i)
    out, seconds = None, 0.0
    for channel, rows in (by_channel or {None: []}).items():
        wav = load_audio(path, channel=channel)
        vectors = encoder.embed_segments(wav, [(doc.segments[i].start, doc.segments[i].end) for i in rows],
                                         layer=layer, pooling=pooling)
        seconds += len(wav) / encoders.SAMPLE_RATE
        del wav
        if out is None:
            out = np.zeros((len(doc.segments), vectors.shape[1]), np.float32)
        out[rows] = vectors
    return out, seconds


# --- the one code path -----------------------------------------------------------------------------

def _embed_docs(docs: list[SegmentedDoc], audio: str, text: str, cache_dir: Path, layer: int | None, pooling: str,
                allow_download: bool, progress: Progress | None, device: Optional[torch.device] = None,
                threads: Optional[int] = None, engine=None):
    """Vectors for `docs` from the cache, computing (and caching) what is missing, with encoders on `device`, on
    `engine` (engine.py; None = local): documents' audio on its workers, the corpus's texts in one call on one.
    Returns (vectors, stats)."""
    device = resolve_device(device)
    if pooling not in encoders.POOLINGS:
        raise HilbertError(f"--pooling: unknown pooling {pooling!r}; use one of {', '.join(encoders.POOLINGS)}.")
    a_res = resolve_backbone(audio, AUDIO, allow_download)
    t_res = resolve_backbone(text, TEXT, allow_download)
    check_layer(a_res, layer)
    a_slot = _Slot.make(cache_dir, AUDIO, a_res, {"layer": layer, "pooling": pooling})
    t_slot = _Slot.make(cache_dir, TEXT, t_res, {})
    stats = {"audio_computed": 0, "text_computed": 0, "corrupt": 0, "audio_seconds": 0.0}

    A, T = {}, {}
    for doc in docs:
        for slot, key, store in ((a_slot, _audio_key(doc), A), (t_slot, _text_key(doc), T)):
            vectors, damaged = slot.read(key, len(doc.segments))
            stats["corrupt"] += damaged
            if vectors is not None:
                store[doc.doc_id] = vectors

    engine = engine if engine is not None else LocalEngine()
    threads = threads if threads is not None else engine.threads
    on = engine.worker_device(device)
    todo = [d for d in docs if d.doc_id not in A]  # nothing to do: no model is loaded
    factory = functools.partial(encoders.load_encoder, a_res, device=on, threads=threads)
    job = functools.partial(_audio_job, layer=layer, pooling=pooling)
    for n_done, (i, result, error) in enumerate(engine.map_documents(factory, job, todo), 1):
        if error is not None:
            raise error
        doc, (vectors, seconds) = todo[i], result
        A[doc.doc_id] = a_slot.write(_audio_key(doc), vectors)  # as each document finishes: kept if the run stops
        stats["audio_computed"] += 1
        stats["audio_seconds"] += seconds
        if progress:
            progress(AUDIO, n_done, len(todo))

    todo = [d for d in docs if d.doc_id not in T]
    t_dim = 0
    if todo:  # all texts of the corpus in one call (on one worker): sentence-transformers batches them by length
        texts = [s.text for d in todo for s in d.segments]
        vectors, t_dim = engine.call(_text_job, t_res, on, threads, texts)
        start = 0
        for doc in todo:
            n = len(doc.segments)
            T[doc.doc_id] = t_slot.write(_text_key(doc), vectors[start:start + n].reshape(n, t_dim))
            start += n
            stats["text_computed"] += 1
        if progress:
            progress(TEXT, len(texts), len(texts))

    stats["audio_dim"] = _width(A)
    stats["text_dim"] = _width(T, t_dim)
    return {d.doc_id: (A[d.doc_id], T[d.doc_id]) for d in docs}, stats


def _audio_job(encoder, doc: SegmentedDoc, report, *, layer: int | None, pooling: str) -> tuple[np.ndarray, float]:
    """One document's audio vectors on a worker holding `encoder` (engine.map_documents)."""
    return _embed_doc_audio(encoder, doc, layer, pooling)


def _text_job(resolved: ResolvedBackbone, device, threads: Optional[int], texts: list[str]) -> tuple[np.ndarray, int]:
    """(the vectors of `texts`, the encoder's width), the text encoder loaded for this call (engine.call)."""
    encoder = encoders.load_encoder(resolved, device=device, threads=threads)
    return encoder.embed_texts(texts), encoder.dimension


def _width(vectors: dict, fallback: int = 0) -> int:
    """The vectors' width: of a document with segments, else of any (an empty document's (0, d)), else `fallback`."""
    for v in vectors.values():
        if v.shape[0]:
            return int(v.shape[1])
    return next((int(v.shape[1]) for v in vectors.values() if v.ndim == 2 and v.shape[1]), int(fallback or 0))


def _load_docs(workspace: Workspace, doc_ids) -> list[SegmentedDoc]:
    manifest = workspace.load_manifest()
    ids = sorted(manifest.documents) if doc_ids is None else list(doc_ids)
    unknown = [d for d in ids if d not in manifest.documents]
    if unknown:
        raise HilbertError(
            f"{workspace.manifest_path}: unknown document(s) {', '.join(map(repr, unknown[:5]))}; "
            f"re-run `hilbert segment DIR` if the corpus changed."
        )
    return [workspace.load_doc(d) for d in ids]


# --- public API ------------------------------------------------------------------------------------

def embed_corpus(workspace: Workspace, audio: str = DEFAULT_AUDIO, text: str = DEFAULT_TEXT, *, doc_ids=None,
                 layer: int | None = None, pooling: str = "mean", allow_download: bool = False,
                 progress: Progress | None = None, device: Optional[torch.device] = None,
                 threads: Optional[int] = None, engine=None) -> EmbedResult:
    """Embed every segmented document of the workspace (or `doc_ids`), filling the cache; encoders run on
    `device` (None = auto) with `threads` CTranslate2 CPU threads (None = device.default_threads), on `engine`
    (engine.make_engine; None = local): with Ray, documents run on its workers, each holding the encoder once,
    and their vectors are written here into the same cache as they finish."""
    t0 = time.perf_counter()
    check_writable_dir(workspace.embeddings_dir, "--workspace", label=workspace.root)  # before any encoder runs
    docs = _load_docs(workspace, doc_ids)
    vectors, stats = _embed_docs(docs, audio, text, workspace.embeddings_dir, layer, pooling, allow_download, progress,
                                 device, threads, engine)
    return EmbedResult(
        audio_backbone=audio, text_backbone=text, docs=len(docs), segments=sum(len(d.segments) for d in docs),
        audio_computed=stats["audio_computed"], audio_cached=len(docs) - stats["audio_computed"],
        text_computed=stats["text_computed"], text_cached=len(docs) - stats["text_computed"],
        corrupt=stats["corrupt"], seconds=time.perf_counter() - t0, audio_seconds=stats["audio_seconds"],
        audio_dim=stats["audio_dim"], text_dim=stats["text_dim"],
    )


def document_embeddings(workspace: Workspace, doc_ids, audio: str = DEFAULT_AUDIO, text: str = DEFAULT_TEXT, *,
                        layer: int | None = None, pooling: str = "mean", allow_download: bool = False,
                        progress: Progress | None = None, device: Optional[torch.device] = None,
                        threads: Optional[int] = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """doc_id -> (A (S, d_a) float32, T (S, d_t) float32), from the cache or computed now on `device` (None = auto)."""
    docs = _load_docs(workspace, doc_ids)
    vectors, _ = _embed_docs(docs, audio, text, workspace.embeddings_dir, layer, pooling, allow_download, progress,
                             device, threads)
    return vectors


def embed_document(doc: SegmentedDoc, audio_backbone: str = DEFAULT_AUDIO, text_backbone: str = DEFAULT_TEXT, *,
                   cache_dir, layer: int | None = None, pooling: str = "mean", allow_download: bool = False,
                   device: Optional[torch.device] = None, threads: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(A, T) for one document that need not be in a workspace (e.g. a new recording in `predict`), on `device`."""
    vectors, _ = _embed_docs([doc], audio_backbone, text_backbone, Path(cache_dir), layer, pooling, allow_download, None,
                             device, threads)
    return vectors[doc.doc_id]


def embed_documents(docs: list[SegmentedDoc], audio_backbone: str = DEFAULT_AUDIO, text_backbone: str = DEFAULT_TEXT, *,
                    cache_dir, layer: int | None = None, pooling: str = "mean", allow_download: bool = False,
                    progress: Progress | None = None, device: Optional[torch.device] = None,
                    threads: Optional[int] = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """doc_id -> (A, T) for documents outside a workspace, loading each encoder at most once (doc_ids must differ),
    on `device` (None = auto)."""
    if len({d.doc_id for d in docs}) != len(docs):
        raise HilbertError("embed_documents: the documents' ids must differ (vectors are returned by id).")
    vectors, _ = _embed_docs(docs, audio_backbone, text_backbone, Path(cache_dir), layer, pooling, allow_download, progress,
                             device, threads)
    return vectors
