"""Training one model: `fit` on arrays, `train_task` on a workspace task (writes model.pt and friends).

fit: the one training loop (trainer.train_folds) with one fold: AdamW on L = L_ce + Σ λ_k L_k
(losses.total_loss), inverse-frequency class weights, the learning-rate schedule and stopping rule of
config.train (by default every epoch runs; with train.val_fraction > 0, early stopping on an inner
validation split, stratified and grouped by subject), the weights of the best epoch kept. Seeded and
deterministic on CPU. With train.calibrate, a temperature T is then fitted on held-out documents (the
validation split, or with val_fraction 0 a calibration split that is not trained on: trainer.inner_plan;
learn/calibration.py); it is stored in model.pt, and `predict_proba` / `explain` take it.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..atomic import atomic_save, atomic_write_text, check_writable_dir, check_writable_file
from .calibration import Temperature
from .config import HilbertConfig
from .data import TaskData, load_task_data, pad_batch
from ..errors import DataError, HilbertError, OutputError
from ..evaluation.folds import subject_groups
from .trainer import HISTORY_KEYS, inner_plan, torch_threads, train_folds
from ..device import resolve_device
from ..workspace import Workspace

LOSS_COLUMNS = ("epoch", *HISTORY_KEYS, "val_loss", "val_auc", "lr", "seconds")
PREDICT_BATCH = 64  # documents per forward pass at inference


@dataclass
class FitResult:
    model: torch.nn.Module  # in eval mode, with the weights of the best validation epoch
    history: list[dict]  # one record per epoch, keys LOSS_COLUMNS
    best_epoch: int  # 1-based
    config: HilbertConfig
    n_classes: int
    d_audio: int
    d_text: int
    fit_index: np.ndarray = field(repr=False)  # documents the weights were fitted on
    val_index: np.ndarray = field(repr=False)  # documents used for early stopping (may equal fit_index)
    class_weights: Optional[list[float]] = None
    calibration: Temperature | None = None  # train.calibrate: the temperature fitted on cal_index
    cal_index: np.ndarray | None = field(default=None, repr=False)  # documents the temperature was fitted on

    @property
    def temperature(self) -> float:
        """The T to divide the logits by: the fitted one, or 1 (uncalibrated)."""
        return 1.0 if self.calibration is None else self.calibration.temperature


def fit(config: HilbertConfig, A_list, T_list, y, n_classes: int, *, groups=None,
        progress: Optional[Callable[[int, int, dict], None]] = None, device=None, threads: Optional[int] = None,
        dtype: torch.dtype = torch.float32) -> FitResult:
    """Train one model on documents (A_list[i] (S_i, d_a), T_list[i] (S_i, d_t), y[i] in 0..C-1): the
    trainer with one fold, fitted on all documents but an inner validation split that drives early stopping
    (train.val_fraction) and, with train.calibrate and no validation split, a calibration split (trainer.inner_plan).

    `groups` (one id per document, e.g. the subject) keeps a group's documents on one side of the
    validation split. `progress(epoch, epochs, record)` is called after every epoch. `device`: "auto",
    "cpu", "cuda[:N]", "mps" or a torch.device; `threads`: torch intra-op threads on the CPU (default:
    torch's own setting)."""
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    if n != len(A_list) or n != len(T_list):
        raise DataError(f"fit: got {n} labels for {len(A_list)} audio and {len(T_list)} text documents; they must match.")
    if n < 2:
        raise DataError(f"fit: need at least 2 labelled documents to train, got {n}.")
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(f"fit: labels must lie in 0..{n_classes - 1}, got values from {y.min()} to {y.max()}.")
    tc = config.train
    dev = resolve_device(device)
    plan = inner_plan(y, groups, config, tc.seed)
    on_epoch = None if progress is None else (lambda e, total, records: progress(e, total, records[0]))
    with torch_threads(threads):
        r = train_folds(config, A_list, T_list, y, n_classes, [plan], [tc.seed],
                        device=dev, dtype=dtype, val_auc=True, progress=on_epoch)
    return FitResult(r.model, r.history[0], r.best_epoch[0], config, n_classes, int(np.shape(A_list[0])[1]),
                     int(np.shape(T_list[0])[1]), plan.fit, plan.val, r.class_weights[0], r.temperatures[0], plan.cal)


@torch.no_grad()
def _forward_all(model, A_list, T_list) -> list[dict]:
    """A one-fold model's eval-mode outputs (on the CPU, no fold axis) in batches of PREDICT_BATCH documents."""
    model.eval()
    p = next(model.parameters())
    outs = []
    for i in range(0, len(A_list), PREDICT_BATCH):
        A, T, mask = pad_batch(A_list[i:i + PREDICT_BATCH], T_list[i:i + PREDICT_BATCH])
        out = model(A.to(p.device, p.dtype), T.to(p.device, p.dtype), mask.to(p.device))
        outs.append(({k: v.float().cpu() for k, v in out.items()}, mask))
    return outs


def _softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits / temperature, -1)  # x / 1.0 == x exactly: uncalibrated models are unchanged


def predict_proba(model, A_list, T_list, temperature: float = 1.0) -> np.ndarray:
    """(N, C) class probabilities softmax(logits / temperature), rows in the order of the documents given;
    `temperature`: the model's calibration (FitResult.temperature, or model.pt's), 1 = the raw softmax."""
    if len(A_list) == 0:
        raise HilbertError("predict_proba: no documents given.")
    return np.concatenate([_softmax(o["logits"], temperature).numpy() for o, _ in _forward_all(model, A_list, T_list)])


EXPLAIN_KEYS = ("alpha_a", "alpha_t", "alpha_j")


def explain(model, A_list, T_list, occlusion: bool = True, temperature: float = 1.0) -> list[dict]:
    """Per document: class probabilities `proba` (logits divided by `temperature`, as in predict_proba); where the
    model has them, the per-segment attention weights alpha_a / alpha_t / alpha_j (each (S_i,), summing to 1) and
    the MoE gate weights; and (every configuration) `occlusion` (S_i,): how much the predicted class's probability
    drops when that segment is left out (positive = the segment supported the prediction)."""
    result = []
    for out, mask in _forward_all(model, A_list, T_list):
        proba = _softmax(out["logits"], temperature)
        for r in range(mask.shape[0]):
            s = int(mask[r].sum())
            doc = {"proba": proba[r].numpy()}
            doc.update({k: out[k][r, :s].numpy() for k in EXPLAIN_KEYS if k in out})
            if "gates" in out:
                doc["gates"] = out["gates"][r].numpy()
            result.append(doc)
    if occlusion:
        for doc, a, t in zip(result, A_list, T_list):
            doc["occlusion"] = _occlusion(model, np.asarray(a), np.asarray(t), int(doc["proba"].argmax()), doc["proba"],
                                          temperature)
    return result


@torch.no_grad()
def _occlusion(model, a: np.ndarray, t: np.ndarray, label: int, proba: np.ndarray,
               temperature: float = 1.0) -> np.ndarray:
    """p(label | document) − p(label | document without segment s), for every segment s: the document is
    repeated S times and copy s has segment s masked out (as padding), so one batched forward gives all S."""
    p = next(model.parameters())
    s = len(a)
    A = torch.as_tensor(a, dtype=p.dtype, device=p.device).expand(s, *a.shape)
    T = torch.as_tensor(t, dtype=p.dtype, device=p.device).expand(s, *t.shape)
    mask = ~torch.eye(s, dtype=torch.bool, device=p.device)
    drops = []
    for i in range(0, s, PREDICT_BATCH):
        logits = model(A[i:i + PREDICT_BATCH], T[i:i + PREDICT_BATCH], mask[i:i + PREDICT_BATCH])["logits"]
        drops.append(float(proba[label]) - torch.softmax(logits.double() / temperature, -1)[:, label].cpu().numpy())
    return np.concatenate(drops)


# --- a workspace task -> model.pt ---------------------------------------------------------------

@dataclass
class TrainResult:
    model_path: Path
    losses_csv: Path
    losses_png: Path
    config_yaml: Path
    config: HilbertConfig
    task: str
    label_names: list[str]
    class_counts: list[int]
    n_documents: int
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict]
    calibration: Temperature | None = None  # train.calibrate: the temperature stored in the model


def side_paths(model_path: Path) -> tuple[Path, Path, Path]:
    """model.pt -> model.losses.csv, model.losses.png, model.config.yaml (beside the model)."""
    stem = model_path.with_suffix("")
    return (stem.with_name(stem.name + ".losses.csv"), stem.with_name(stem.name + ".losses.png"),
            stem.with_name(stem.name + ".config.yaml"))


def train_task(workspace: Workspace | str, task: str, audio: str, text: str, config: HilbertConfig,
               out_path: str | Path, *, allow_download: bool = False, progress: Optional[Callable] = None,
               embed_progress: Optional[Callable] = None, device=None) -> TrainResult:
    """Train on every labelled document of `task` and write model.pt, its loss CSV/PNG and its config. A
    configuration with its own backbones (clap) embeds with those, whatever `audio` and `text` say."""
    from .checkpoint import save_checkpoint

    t0 = time.perf_counter()
    ((audio, text),) = config.spec.pairs([(audio, text)])
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    out_path = Path(out_path)
    if out_path.suffix != ".pt":
        raise HilbertError(f"-o {out_path}: a model file must end in .pt, e.g. model.pt.")
    check_writable_file(out_path, "-o")  # before any work: a model that cannot be written stops here
    check_writable_dir(ws.root, "--workspace")  # the embedding cache goes there
    device = resolve_device(device)
    data: TaskData = load_task_data(ws, task, audio, text, allow_download=allow_download, progress=embed_progress,
                                    device=device)
    from ..features import embed

    fingerprints = {"audio": embed.backbone_fingerprint(audio), "text": embed.backbone_fingerprint(text)}
    groups = subject_groups(data.doc_ids, data.subjects)
    res = fit(config, data.A, data.T, data.y, data.n_classes, groups=groups, progress=progress, device=device)
    save_checkpoint(out_path, res.model, config=config, task=task, label_names=data.label_names,
                    audio=audio, text=text, d_audio=data.d_audio, d_text=data.d_text,
                    segmentation=ws.load_manifest().segmentation, fingerprints=fingerprints,
                    extra={"n_documents": len(data.doc_ids), "best_epoch": res.best_epoch,
                           "class_weights": res.class_weights}, calibration=res.calibration)
    csv_path, png_path, yaml_path = side_paths(out_path)
    try:  # after the model: a side file that cannot be written loses no training
        write_losses_csv(csv_path, res.history)
        atomic_write_text(yaml_path, config.to_yaml())
        plot_losses(png_path, res.history, title=f"{task}: {config.configuration} ({audio} + {text})",
                    best_epoch=res.best_epoch)
    except OutputError as e:
        raise OutputError(f"{str(e).rstrip('.')}; the model itself was written to {out_path}.") from None
    return TrainResult(out_path, csv_path, png_path, yaml_path, config, task, data.label_names,
                       np.bincount(data.y, minlength=data.n_classes).tolist(), len(data.doc_ids), res.best_epoch,
                       len(res.history), time.perf_counter() - t0, res.history, res.calibration)


def write_losses_csv(path: Path, history: list[dict]) -> Path:
    lines = [",".join(LOSS_COLUMNS)]
    for r in history:
        lines.append(",".join(str(r["epoch"]) if k == "epoch" else f"{r[k]:.6g}" for k in LOSS_COLUMNS))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def plot_losses(path: Path, history: list[dict], title: str = "", best_epoch: Optional[int] = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for k in (*HISTORY_KEYS, "val_loss"):
        vals = [r[k] for r in history]
        if any(v != 0 for v in vals):
            ax.plot(ep, vals, label=k, linestyle="--" if k == "val_loss" else "-")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.legend(), ax.set_title(title, fontsize=9)
    aucs = [r["val_auc"] for r in history]
    ax2.plot(ep, aucs, color="black")
    ax2.set_xlabel("epoch"), ax2.set_ylabel("validation AUC"), ax2.set_ylim(0, 1), ax2.set_xlim(min(ep), max(ep) + 1)
    if all(a != a for a in aucs):  # NaN everywhere: the validation split lacks a class
        ax2.text(0.5, 0.5, "undefined: a class is missing\nfrom the validation split", ha="center", va="center",
                 transform=ax2.transAxes, color="grey")
    if best_epoch:
        for a in (ax, ax2):
            a.axvline(best_epoch, color="grey", linewidth=0.8, linestyle=":")
    fig.tight_layout()

    def writer(buf: io.BytesIO):
        fig.savefig(buf, format="png", dpi=100)

    try:
        return atomic_save(path, writer)
    finally:
        plt.close(fig)
