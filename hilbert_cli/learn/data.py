"""A task's training data: labelled documents with their segment features, and batch padding.

Vectors come ONLY through `embed.document_embeddings` (the embed stage computes and caches what is
missing), so training never has a second code path to the encoders.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import HilbertError
from ..evaluation.folds import check_class_sizes
from ..workspace import Workspace


@dataclass
class TaskData:
    task: str
    doc_ids: list[str]
    subjects: list[Optional[str]]
    y: np.ndarray  # (N,) int64 index into label_names
    label_names: list[str]
    A: list[np.ndarray]  # per document (S_i, d_a) float32
    T: list[np.ndarray]  # per document (S_i, d_t) float32

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def d_audio(self) -> int:
        return int(self.A[0].shape[1])

    @property
    def d_text(self) -> int:
        return int(self.T[0].shape[1])


def label_order(labels) -> list[str]:
    """Class names in a stable order: numerically when every label is a number, else alphabetically."""
    names = sorted({str(v) for v in labels})
    try:
        return sorted(names, key=lambda s: (float(s), s))
    except ValueError:
        return names


def encode_labels(labels, label_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(label_names)}
    return np.array([index[str(v)] for v in labels], dtype=np.int64)


def load_task_data(workspace: Workspace | str, task: str, audio: str, text: str, *, allow_download: bool = False,
                   progress: Optional[Callable] = None, device=None) -> TaskData:
    """Every labelled document of `task` with its (A, T) segment features from the embed stage (encoders on `device`)."""
    from ..features import embed  # the embed stage; imported here so the model code does not need the encoders

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    manifest = ws.load_manifest()
    labels = manifest.task_labels(task)
    if not labels:
        raise HilbertError(f"--task {task}: no document has a label for this task; fill its column in labels.csv.")
    doc_ids = sorted(labels)
    label_names = label_order(labels.values())
    y = encode_labels([labels[d] for d in doc_ids], label_names)
    if len(label_names) < 2:
        raise HilbertError(
            f"--task {task}: every labelled document has the label {label_names[0]!r}; a classifier needs at least two classes."
        )
    check_class_sizes(y, label_names, task)
    vectors = embed.document_embeddings(ws, doc_ids, audio, text, allow_download=allow_download, progress=progress,
                                        device=device)
    A, T = [], []
    for d in doc_ids:
        a, t = vectors[d]
        a, t = np.asarray(a, dtype=np.float32), np.asarray(t, dtype=np.float32)
        if a.ndim != 2 or t.ndim != 2 or len(a) != len(t) or len(a) == 0:
            raise HilbertError(
                f"document {d!r}: audio and text features must be (segments, dim) with the same number of at least one "
                f"segment, got {a.shape} and {t.shape}; re-run `hilbert segment` and `hilbert embed`."
            )
        A.append(a)
        T.append(t)
    subjects_all = manifest.subjects()
    subjects = [subjects_all.get(d) for d in doc_ids]
    return TaskData(task, doc_ids, subjects, y, label_names, A, T)


def pad_batch(A_list, T_list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack documents of different lengths: (A (N,S,d_a), T (N,S,d_t), mask (N,S) True on real segments)."""
    if len(A_list) == 0 or len(A_list) != len(T_list):
        raise HilbertError(f"pad_batch: need the same non-zero number of audio and text documents, got {len(A_list)} and {len(T_list)}.")
    n = len(A_list)
    s = max(len(a) for a in A_list)
    da, dt = np.shape(A_list[0])[1], np.shape(T_list[0])[1]
    A = torch.zeros(n, s, da)
    T = torch.zeros(n, s, dt)
    mask = torch.zeros(n, s, dtype=torch.bool)
    for i, (a, t) in enumerate(zip(A_list, T_list)):
        k = len(a)
        if len(t) != k:
            raise HilbertError(f"pad_batch: document {i} has {k} audio but {len(t)} text segments; they must be aligned.")
        A[i, :k] = torch.as_tensor(np.asarray(a), dtype=torch.float32)
        T[i, :k] = torch.as_tensor(np.asarray(t), dtype=torch.float32)
        mask[i, :k] = True
    return A, T, mask


def synthetic_embeddings(n_docs: int, n_classes: int = 2, *, segments: tuple[int, int] = (8, 30), d_audio: int = 32,
                         d_text: int = 24, signal: float = 1.0, seed: int = 0):
    """Random segment features with a planted label signal, for tests and benchmarks.

    Each class has a direction per modality; in a random 30 % of a document's segments that
    direction is added with strength `signal` (the label lives in a few segments, as in an
    interview). Returns (A_list, T_list, y) with balanced-ish labels.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n_docs) % n_classes
    rng.shuffle(y)
    dirs_a = rng.normal(size=(n_classes, d_audio))
    dirs_t = rng.normal(size=(n_classes, d_text))
    A, T = [], []
    for label in y:
        s = int(rng.integers(segments[0], segments[1] + 1))
        hot = rng.random(s) < 0.3
        a = rng.normal(size=(s, d_audio)) + signal * hot[:, None] * dirs_a[label]
        t = rng.normal(size=(s, d_text)) + signal * hot[:, None] * dirs_t[label]
        A.append(a.astype(np.float32))
        T.append(t.astype(np.float32))
    return A, T, y.astype(np.int64)
