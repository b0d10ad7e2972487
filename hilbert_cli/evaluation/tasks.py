"""The learning task suite: synthetic segment-embedding datasets whose label mechanism is known.

Every task is a set of documents, each a sequence of aligned audio and text segment vectors
(A_i: (S_i, d_audio), T_i: (S_i, d_text)), as frozen encoders would give them. All tasks share a
nuisance structure that makes them hard the way real frozen features are:

- a large common mean vector per modality (its norm many times a segment's noise norm);
- anisotropic noise: per-direction scales drawn log-normal in a random basis, a few dominant ones;
- a per-subject (speaker) offset added to every segment of that subject's documents (labels are
  drawn independently of subjects);
- a content factor: a low-dimensional latent per segment mapped into both modalities by fixed
  random matrices, so that a segment's audio and text are correlated;
- two salient, label-free distractor segments per document (large-norm directions drawn from a
  small fixed set, the same for every class);
- 4 imbalanced classes with prior 60/25/10/5 %.

The label lives in one place, depending on the mechanism:

- ``mean-shift``: every segment is shifted a little along its class's direction (both modalities).
- ``needle``: 2-4 segments per document carry their class's direction (every class has one), so
  that mean-pooling dilutes the signal ~10x; ``needle-strong``: the same, larger amplitude.
- ``agreement``: in half of the segments one of two direction pairs (u_j in audio, v_j in text)
  appears with a random audio sign; whether the text sign agrees with it (within the same segment)
  follows the class's pattern (pair 1 agrees / disagrees, pair 2 agrees / disagrees: 4 classes)
  most of the time. Each modality alone has the same distribution in every class; the label is
  only in the audio-text interaction.
- ``order``: a fixed feature appears in the same number of segments in every document; the class
  decides *where* in the document (which quarter of it) those segments are.
- ``small-n``: ``needle-strong`` with 85 documents (the size of the paper's small clinical cohorts).

Amplitudes are in units of the noise's standard deviation along a random direction (the noise is
normalised to unit average variance per dimension, so a segment's noise norm is about sqrt(d)).

Only numpy is used; ``make_task(mechanism, seed)`` is deterministic: ``np.random.default_rng(seed)``
spawns three streams (world, documents, label mechanism), so one seed gives the same nuisance
(means, noise, subjects, labels, distractors) whichever mechanism is planted on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MECHANISMS = ("mean-shift", "needle", "needle-strong", "agreement", "order", "small-n")

# --- sizes -----------------------------------------------------------------------------------------
N_DOCS = 300  # documents per task
N_DOCS_SMALL = 85  # documents of the small-n task
SEGMENTS = (20, 40)  # segments per document, inclusive range, drawn uniformly
D_AUDIO = 384
D_TEXT = 384
N_CLASSES = 4
CLASS_PRIOR = (0.60, 0.25, 0.10, 0.05)  # class shares; counts are fixed (largest remainder), then shuffled
N_SUBJECTS = 60  # speakers/subjects; each document belongs to one, drawn uniformly, independent of the label

# --- nuisance ----------------------------------------------------------------------------------------
MEAN_RATIO = 10.0  # norm of the common mean vector / expected norm of a segment's noise (sqrt(d))
NOISE_LOG_SIGMA = 0.5  # per-direction noise scales are exp(N(0, this)) before normalisation
N_DOMINANT = 4  # that many noise directions get their scale multiplied by DOMINANT_FACTOR
DOMINANT_FACTOR = 6.0
SUBJECT_SCALE = {"audio": 0.7, "text": 0.3}  # sd of a subject's offset along a direction (voice > wording)
CONTENT_DIM = 8  # dimension of the latent content factor shared by a segment's audio and text
CONTENT_SCALE = 1.0  # content's average sd per dimension (all of it lies in a CONTENT_DIM-dim subspace)
N_DISTRACTORS = 2  # salient label-free segments per document
N_DISTRACTOR_DIRECTIONS = 3  # distractors draw their direction from this fixed set (per modality)
DISTRACTOR_RATIO = 1.0  # norm of a distractor's added vector / expected noise norm (sqrt(d))

# --- label mechanisms (amplitudes in noise sd along a direction) -------------------------------------
MEAN_SHIFT_AMP = 0.65  # shift of every segment along its class direction, audio and text
NEEDLE_COUNT = (2, 4)  # needle segments per document, inclusive, independent of the class
NEEDLE_AMP = 6.0  # needle segment: + amp * class direction, in audio and in text
NEEDLE_STRONG_AMP = 7.0  # the same for needle-strong and small-n
AGREE_ACTIVE = 0.5  # share of segments that carry one (random) agreement pair
AGREE_AMP = 6.0  # amplitude of the signed directions u_j (audio) and v_j (text) on an active segment (README: 3.0 was unlearnable)
AGREE_P = 0.8  # P(the class's pattern holds) on an active segment
# per class, per pair j: +1 = the audio and text signs of pair j tend to agree, -1 = tend to disagree
AGREE_PATTERNS = ((+1, +1), (+1, -1), (-1, +1), (-1, -1))
ORDER_COUNT = 3  # segments carrying the order feature, the same in every document
ORDER_AMP = 4.0  # amplitude of the order feature (one direction per modality, the same for all classes)
# relative-position window [lo, hi) of the order feature, per class: 0 early, 1 late, 2 and 3 between
ORDER_WINDOWS = ((0.0, 0.25), (0.75, 1.0), (0.25, 0.5), (0.5, 0.75))


@dataclass
class SuiteTask:
    name: str
    A: list[np.ndarray]  # per document (S_i, d_audio) float32
    T: list[np.ndarray]  # per document (S_i, d_text) float32, aligned with A segment by segment
    y: np.ndarray  # (n,) int64 labels in [0, n_classes)
    n_classes: int
    # per document (S_i,) bool, the segments that carry the label: mean-shift every segment; needle
    # tasks the needle segments; agreement the segments with a signed pair; order the feature segments
    needles: list[np.ndarray]
    subjects: np.ndarray  # (n,) int64 subject id per document
    # the planted mechanism, for oracles and diagnostics: label directions per modality ("dir_audio",
    # "dir_text", unit rows), the amplitude used, and mechanism-specific entries
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_docs(self) -> int:
        return len(self.y)


def make_task(
    mechanism: str, seed: int = 0, n_docs: int | None = None, d_audio: int = D_AUDIO, d_text: int = D_TEXT,
    *, segments: tuple[int, int] = SEGMENTS, n_subjects: int = N_SUBJECTS, strength: float = 1.0,
    mean_ratio: float = MEAN_RATIO,
) -> SuiteTask:
    """One instance of a task of the suite (see the module docstring for the mechanisms).

    `n_docs` defaults to N_DOCS (N_DOCS_SMALL for small-n); `segments` is the inclusive range of
    segments per document; `strength` multiplies the mechanism's amplitude (1.0 = the suite's
    calibration); `mean_ratio` sets the common mean's norm (in noise norms; only its scale changes,
    everything else stays the same). Same arguments give bit-identical arrays."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown mechanism {mechanism!r}; valid: {', '.join(MECHANISMS)}")
    lo, hi = int(segments[0]), int(segments[1])
    if lo < N_DISTRACTORS + 4 or hi < lo:
        raise ValueError(f"segments must be an inclusive range (lo, hi) with lo >= {N_DISTRACTORS + 4}, got {segments!r}")
    if n_docs is None:
        n_docs = N_DOCS_SMALL if mechanism == "small-n" else N_DOCS
    if n_docs < 4 * N_CLASSES:
        raise ValueError(f"n_docs must be at least {4 * N_CLASSES}, got {n_docs}")
    if min(d_audio, d_text) < 16:
        raise ValueError(f"d_audio and d_text must be at least 16, got {d_audio} and {d_text}")

    rng = np.random.default_rng(seed)
    # separate streams for the world (means, bases, directions), the documents and the label
    # mechanism: the same seed gives the same nuisance whatever the mechanism
    r_world, r_docs, r_label = rng.spawn(3)

    dims = {"audio": d_audio, "text": d_text}
    n_label_dirs = N_CLASSES  # enough for every mechanism (agreement uses N_CLASSES - 1, order 1)
    world = {m: _world(r_world, d, n_label_dirs, mean_ratio) for m, d in dims.items()}
    subject_offsets = {m: world[m]["noise"](r_world, n_subjects) * SUBJECT_SCALE[m] for m in dims}

    # documents: labels, subjects, lengths
    y = _labels(r_docs, n_docs)
    subjects = r_docs.integers(0, n_subjects, size=n_docs).astype(np.int64)
    lengths = r_docs.integers(lo, hi + 1, size=n_docs)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    n_seg = int(starts[-1])
    doc_of = np.repeat(np.arange(n_docs), lengths)
    content = r_docs.standard_normal((n_seg, CONTENT_DIM))
    X = {}
    for m in dims:
        w = world[m]
        X[m] = w["mean"][None, :] + w["noise"](r_docs, n_seg) + content @ w["content"] + subject_offsets[m][subjects[doc_of]]
    distractor_pos, distractor_dir = [], []
    for i in range(n_docs):
        distractor_pos.append(r_docs.choice(lengths[i], size=N_DISTRACTORS, replace=False))
        distractor_dir.append(r_docs.integers(0, N_DISTRACTOR_DIRECTIONS, size=N_DISTRACTORS))
    for m in dims:
        amp = DISTRACTOR_RATIO * np.sqrt(dims[m])
        for i in range(n_docs):
            X[m][starts[i] + distractor_pos[i]] += amp * world[m]["distractors"][distractor_dir[i]]

    # the label mechanism
    needles = [np.zeros(int(s), dtype=bool) for s in lengths]
    free = []  # per document: segments that are not distractors, in order
    for i in range(n_docs):
        keep = np.ones(lengths[i], dtype=bool)
        keep[distractor_pos[i]] = False
        free.append(np.flatnonzero(keep))
    dir_a, dir_t = world["audio"]["label"], world["text"]["label"]
    meta: dict[str, Any] = {"mechanism": mechanism, "dir_audio": dir_a, "dir_text": dir_t, "strength": strength}

    if mechanism == "mean-shift":
        amp = MEAN_SHIFT_AMP * strength
        X["audio"] += amp * dir_a[y[doc_of]]
        X["text"] += amp * dir_t[y[doc_of]]
        for nd in needles:
            nd[:] = True  # every segment carries the label
        meta["amp"] = amp
    elif mechanism in ("needle", "needle-strong", "small-n"):
        amp = (NEEDLE_AMP if mechanism == "needle" else NEEDLE_STRONG_AMP) * strength
        for i in range(n_docs):
            k = int(r_label.integers(NEEDLE_COUNT[0], NEEDLE_COUNT[1] + 1))
            pos = r_label.choice(free[i], size=k, replace=False)
            needles[i][pos] = True
            X["audio"][starts[i] + pos] += amp * dir_a[y[i]]
            X["text"][starts[i] + pos] += amp * dir_t[y[i]]
        meta["amp"] = amp
    elif mechanism == "agreement":
        amp = AGREE_AMP * strength
        patterns = np.asarray(AGREE_PATTERNS, dtype=np.float64)  # (classes, pairs)
        n_pairs = patterns.shape[1]
        for i in range(n_docs):
            f = free[i]
            active = f[r_label.random(len(f)) < AGREE_ACTIVE]
            pair = r_label.integers(0, n_pairs, size=len(active))
            s_a = r_label.choice(np.array([-1.0, 1.0]), size=len(active))
            # the text sign follows the class's pattern for that pair with probability AGREE_P
            follow = np.where(r_label.random(len(active)) < AGREE_P, 1.0, -1.0)
            s_t = s_a * patterns[y[i], pair] * follow
            needles[i][active] = True
            X["audio"][starts[i] + active] += amp * s_a[:, None] * dir_a[pair]
            X["text"][starts[i] + active] += amp * s_t[:, None] * dir_t[pair]
        meta.update(amp=amp, n_pairs=n_pairs)
    elif mechanism == "order":
        amp = ORDER_AMP * strength
        for i in range(n_docs):
            s = int(lengths[i])
            w_lo, w_hi = ORDER_WINDOWS[y[i]]
            a, b = _window(s, w_lo, w_hi)
            window = free[i][(free[i] >= a) & (free[i] < b)]
            pos = r_label.choice(window, size=min(ORDER_COUNT, len(window)), replace=False)
            if len(pos) < ORDER_COUNT:  # short documents only (< 5 segments per window): share distractors' segments
                busy = np.setdiff1d(np.arange(a, b), window)
                pos = np.concatenate([pos, busy[: ORDER_COUNT - len(pos)]])
            needles[i][pos] = True
            X["audio"][starts[i] + pos] += amp * dir_a[0]
            X["text"][starts[i] + pos] += amp * dir_t[0]
        meta.update(amp=amp, windows=ORDER_WINDOWS)

    A = [X["audio"][starts[i]:starts[i + 1]].astype(np.float32) for i in range(n_docs)]
    T = [X["text"][starts[i]:starts[i + 1]].astype(np.float32) for i in range(n_docs)]
    return SuiteTask(mechanism, A, T, y, N_CLASSES, needles, subjects, meta)


def _window(s: int, lo: float, hi: float) -> tuple[int, int]:
    """Segment index range [a, b) of the relative-position window [lo, hi) in a document of s segments."""
    return int(np.floor(lo * s)), int(np.floor(hi * s))


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Labels with class counts as close to CLASS_PRIOR as n allows (largest remainder), shuffled."""
    exact = np.asarray(CLASS_PRIOR) * n
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    y = np.repeat(np.arange(N_CLASSES), counts)
    rng.shuffle(y)
    return y.astype(np.int64)


def _world(rng: np.random.Generator, d: int, n_label: int, mean_ratio: float) -> dict[str, Any]:
    """One modality's fixed structure: mean, noise model, content map, distractor and label directions."""
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.exp(NOISE_LOG_SIGMA * rng.standard_normal(d))
    scales[:N_DOMINANT] *= DOMINANT_FACTOR
    scales /= np.sqrt(np.mean(scales**2))  # unit average variance per dimension
    noise_map = scales[:, None] * basis.T  # z (.., d) @ noise_map: independent scaled components in `basis`

    def noise(r: np.random.Generator, n: int) -> np.ndarray:
        return r.standard_normal((n, d)) @ noise_map

    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    mean = mean_ratio * np.sqrt(d) * direction
    content = rng.standard_normal((CONTENT_DIM, d)) * (CONTENT_SCALE / np.sqrt(CONTENT_DIM))
    # distractor and label directions: orthonormal to each other and to the common mean
    m = N_DISTRACTOR_DIRECTIONS + n_label
    q, _ = np.linalg.qr(np.column_stack([direction, rng.standard_normal((d, m))]))
    dirs = q[:, 1:].T  # (m, d) unit rows
    return {"mean": mean, "noise": noise, "content": content,
            "distractors": dirs[:N_DISTRACTOR_DIRECTIONS], "label": dirs[N_DISTRACTOR_DIRECTIONS:]}


# --- reference features ---------------------------------------------------------------------------

def pooled_features(task: SuiteTask, how: str = "mean", modalities: tuple[str, ...] = ("audio", "text")) -> np.ndarray:
    """Document features from pooled segments: how = "mean", "max" or "mean+max";
    [mean(A); max(A); mean(T); max(T)] for both modalities and "mean+max"."""
    parts = []
    for m in modalities:
        docs = task.A if m == "audio" else task.T
        for h in how.split("+"):
            if h == "mean":
                parts.append(np.stack([x.mean(axis=0) for x in docs]))
            elif h == "max":
                parts.append(np.stack([x.max(axis=0) for x in docs]))
            else:
                raise ValueError(f"unknown pooling {h!r}; valid: mean, max, mean+max")
    return np.concatenate(parts, axis=1)


def product_features(task: SuiteTask, k: int = 16, fit: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Document features for a bilinear read-out without the planted directions: each document's mean of its
    segments' audio x text outer products, a_s t_sᵀ (k x k, flattened), after a PCA of each modality to k
    components fitted on the segments of the documents `fit` (default: all; pass the training fold's).
    The outside reference for the agreement task (benchmarks/bench_learning.py's LR(products))."""
    from sklearn.decomposition import PCA  # scikit-learn is a dependency; the generator above needs only numpy

    idx = np.arange(task.n_docs) if fit is None else np.asarray(fit)
    pa = PCA(k, random_state=seed).fit(np.concatenate([task.A[i] for i in idx]))
    pt = PCA(k, random_state=seed).fit(np.concatenate([task.T[i] for i in idx]))
    return np.stack([np.einsum("sk,sl->kl", pa.transform(a), pt.transform(t)).ravel() / len(a)
                     for a, t in zip(task.A, task.T)])


def oracle_features(task: SuiteTask) -> np.ndarray:
    """Document features that use the planted mechanism (its directions and marked segments).

    mean-shift: document-mean projections on every class direction (audio and text);
    needle tasks: projections on every class direction, averaged over the needle segments only;
    agreement: per pair j, the within-document mean of (a_s - mean a)(t_s - mean t), where a_s, t_s
    are segment s's audio projection on u_j and text projection on v_j;
    order: a histogram of the order segments' relative positions over the class windows."""
    meta = task.meta
    mech = meta["mechanism"]
    da, dt = meta["dir_audio"], meta["dir_text"]
    rows = []
    for A, T, nd in zip(task.A, task.T, task.needles):
        pa, pt = A.astype(np.float64) @ da.T, T.astype(np.float64) @ dt.T  # (S, n_dirs)
        if mech in ("mean-shift", "needle", "needle-strong", "small-n"):
            rows.append(np.concatenate([pa[nd].mean(axis=0), pt[nd].mean(axis=0)]))
        elif mech == "agreement":
            k = meta["n_pairs"]
            ca, ct = pa[:, :k] - pa[:, :k].mean(axis=0), pt[:, :k] - pt[:, :k].mean(axis=0)
            rows.append((ca * ct).mean(axis=0))
        elif mech == "order":
            pos = np.flatnonzero(nd)
            bounds = [_window(len(nd), lo, hi) for lo, hi in meta["windows"]]
            rows.append(np.array([np.mean((pos >= a) & (pos < b)) if len(pos) else 0.0 for a, b in bounds]))
        else:  # pragma: no cover - make_task only builds the mechanisms above
            raise ValueError(mech)
    return np.stack(rows)
