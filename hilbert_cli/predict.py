"""`hilbert predict`: classify recordings nobody has labelled, from model.pt alone.

For every file: segment it with the settings stored in the model (a same-stem transcript beside the
audio is used, otherwise the audio is transcribed through the workspace's transcript cache), embed it
with the stored backbones through the workspace's embedding cache (so predicting the same file again
does no model work), classify, and say which segments mattered most (occlusion: how much the predicted class's
probability drops without the segment, for every configuration; beside it the attention weight). A file that fails gets one line
and the others still go through.
The probabilities are the model's softmax divided by its temperature when it was trained with train.calibrate
(learn/calibration.py); `PredictResult.calibration` / `probability_kind` say which, for the table and the JSON.

What a segment's "weight" is, by configuration:
  hilbert, contrastive-moe   α_j, the joint attention pooling's weight (METHOD.md §3): the document vector
                             is h_j = Σ_s α_j[s] H_j[s], so the weights are >= 0 and sum to 1. The audio and
                             text poolings' α_a and α_t go to --explain beside it.
  transfer, transfer-moe,    no attention: these configurations take the plain mean of the frozen segment
  audio-only, text-only,     vectors, so every segment weighs exactly 1/S in each modality they use. Their
  clap                       ranking is by occlusion for every configuration, and `weighting` says so.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from .atomic import atomic_write_json, atomic_write_text, check_writable_dir, describe_os_error, strict_json
from .corpus.audio import AUDIO_EXTENSIONS
from .device import resolve_device
from .features.backbones import AUDIO, BACKBONES, KINDS, TEXT, resolve_backbone
from .learn.calibration import Temperature
from .learn.config import CONFIGURATIONS
from .errors import HilbertError
from .workspace import SegmentedDoc, Workspace

TOP_SEGMENTS = 3  # segments shown per file
ATTENTION_WEIGHTING = "attention: α_j, the joint attention pooling weight of each segment (sums to 1 over the recording)"
UNIFORM_WEIGHTING = ("uniform: configuration {name} has no attention and mean-pools the segments, so every segment "
                     "weighs 1/S (the occlusion drop still tells segments apart)")
EXPLAIN_COLUMNS = ("file", "index", "start", "end", "occlusion", "weight", "weight_audio", "weight_text", "weight_joint",
                   "source", "text")

# progress(stage, done, total): stage "segment" counts files, "audio" documents, "text" segments
Progress = Callable[[str, int, int], None]


@dataclass
class SegmentWeight:
    index: int
    start: float  # seconds
    end: float  # seconds
    text: str
    source: str  # where the text came from (see segment.py)
    weight: float  # the ranking weight (module docstring)
    weight_audio: Optional[float]  # α_a, or 1/S when audio is mean-pooled; None when audio is not used
    weight_text: Optional[float]  # α_t, or 1/S; None when text is not used
    weight_joint: Optional[float]  # α_j; None without joint attention
    occlusion: float = 0.0  # drop of the predicted class's probability when this segment is left out


@dataclass
class FilePrediction:
    file: str
    label: Optional[str] = None
    probabilities: dict[str, float] = field(default_factory=dict)  # class -> probability, in the model's order
    segments: list[SegmentWeight] = field(default_factory=list)  # every segment, in time order
    duration: float = 0.0  # seconds
    error: Optional[str] = None  # one line when this file failed

    @property
    def top_segments(self) -> list[SegmentWeight]:
        """The TOP_SEGMENTS segments whose removal lowers the predicted class's probability most (ties: the
        heavier attention weight, then the earlier segment)."""
        return sorted(self.segments, key=lambda s: (-s.occlusion, -s.weight, s.index))[:TOP_SEGMENTS]

    def to_json(self) -> dict:
        return {
            "file": self.file, "label": self.label, "probabilities": dict(self.probabilities),
            "top_segments": [{"start": s.start, "end": s.end, "text": s.text, "occlusion": s.occlusion, "weight": s.weight}
                             for s in self.top_segments],
            "n_segments": len(self.segments), "duration": self.duration, "error": self.error,
        }


@dataclass
class PredictResult:
    model: str
    task: str
    configuration: str
    label_names: list[str]
    backbones: dict[str, str]  # kind -> backbone name as stored in the model
    weighting: str  # what "weight" means for this model (module docstring)
    predictions: list[FilePrediction]  # one per file, in the order given (folders expanded, sorted)
    warnings: list[str]
    seconds: float
    calibration: Temperature | None = None  # the model's temperature (train.calibrate), None = uncalibrated

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    @property
    def probability_kind(self) -> str:
        """One sentence on what the probabilities are: temperature-scaled (T and on what) or the raw softmax."""
        c = self.calibration
        if c is None:
            return ("not calibrated: the model's raw softmax (trained without train.calibrate), so a p near 1 is the "
                    "model's confidence, not a measured frequency")
        bound = ", at the end of its range" if c.at_bound else ""
        return (f"calibrated by temperature scaling (T = {c.temperature:.3g}{bound}, fitted on {c.n_documents} held-out "
                f"training documents)")

    @property
    def failed(self) -> list[FilePrediction]:
        return [p for p in self.predictions if p.error is not None]

    @property
    def weight_kind(self) -> str:
        """'attention' (weight = α_j) or 'uniform' (weight = 1/S): the first word of `weighting`."""
        return self.weighting.split(":", 1)[0]

    def to_json(self) -> list[dict]:
        t = None if self.calibration is None else self.calibration.temperature
        return [dict(p.to_json(), weight_kind=self.weight_kind, calibrated=self.calibrated, temperature=t)
                for p in self.predictions]


# --- inputs ---------------------------------------------------------------------------------------

def expand_inputs(paths) -> list[tuple[Path, Optional[str]]]:
    """Files and folders -> (audio path, None) per recording or (path, one-line problem). A folder gives
    every audio file directly inside it (sorted; hidden files and subfolders skipped)."""
    out, seen = [], set()

    def add(p: Path, problem: Optional[str] = None):
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append((p, problem))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if (q.is_file() or q.is_symlink()) and not q.name.startswith(".")
                           and q.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                add(p, f"{p}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder.")
            for q in found:
                add(q, _broken_link(q))
        elif _broken_link(p):
            add(p, _broken_link(p))
        elif not p.exists():
            add(p, f"{p}: no such file or folder.")
        elif p.suffix.lower() not in AUDIO_EXTENSIONS:
            add(p, f"{p}: not an audio file ({', '.join(AUDIO_EXTENSIONS)}); give recordings or a folder of them.")
        else:
            add(p)
    if not out:
        raise HilbertError("predict: no recordings given; give audio files or folders of them.")
    return out


def _broken_link(p: Path) -> Optional[str]:
    if p.is_symlink() and not p.exists():
        return f"{p}: broken link (it points to {os.readlink(p)}, which is not there); restore the recording or remove the link."
    return None


# --- the model's backbones ------------------------------------------------------------------------

def _looks_like_path(name: str) -> bool:
    if name in BACKBONES:
        return False
    is_hf_id = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    return not is_hf_id and (os.sep in name or "/" in name or name.startswith((".", "~")) or name.endswith(".pt"))


def check_backbones(model_path: Path, meta: dict, allow_download: bool) -> list[str]:
    """Fail with one sentence when a backbone of the model is not on this machine; return a warning per
    backbone whose weights differ from the ones the model was trained with (fingerprint)."""
    warnings = []
    for kind in KINDS:
        stored = meta["backbones"].get(kind) or {}
        name = str(stored.get("name"))
        if _looks_like_path(name) and not Path(name).expanduser().exists():
            raise HilbertError(
                f"{model_path}: the model was trained with the {kind} backbone at {name}, which is not on this machine; "
                f"put that model folder back at that path, or re-train with a backbone that is here."
            )
        try:
            fingerprint = resolve_backbone(name, kind, allow_download).fingerprint
        except HilbertError as e:
            msg, prefix = str(e), f"--{kind} {name}: "
            reason = msg[len(prefix):] if msg.startswith(prefix) else msg
            raise HilbertError(f"{model_path}: the model was trained with the {kind} backbone {name!r}, but {reason}") from None
        want = stored.get("fingerprint")
        if want and fingerprint != want:
            warnings.append(
                f"{model_path}: the {kind} backbone {name!r} on this machine is not the one the model was trained with "
                f"(weights fingerprint {fingerprint[:12]} vs {want[:12]}), so its vectors will not match the training "
                f"ones and the predictions may be off; use the same weights."
            )
    return warnings


# --- prediction -----------------------------------------------------------------------------------

def _weights(out: dict, n: int, modalities) -> tuple[list, list, list, list]:
    """(ranking weight, audio, text, joint) per segment for one document's explain() output."""
    if "alpha_j" in out:
        a, t, j = (out[k].tolist() for k in ("alpha_a", "alpha_t", "alpha_j"))
        return j, a, t, j
    u = [1.0 / n] * n
    none = [None] * n
    return u, (u if AUDIO in modalities else none), (u if TEXT in modalities else none), none


def _segment_all(inputs, settings: dict, ws: Workspace, allow_download: bool, progress: Optional[Progress],
                 device: torch.device):
    """-> {position: SegmentedDoc} for the files that segmented, {position: problem} for the others."""
    from .corpus.asr import load_asr
    from .corpus.diarize import load_diarizer
    from .corpus.segment import SegmentSettings, segment_recording

    docs, problems = {}, {}
    todo = [(k, p) for k, (p, problem) in enumerate(inputs) if problem is None]
    problems.update({k: problem for k, (_, problem) in enumerate(inputs) if problem is not None})
    if todo:
        s = SegmentSettings.from_dict(settings)
        engine = load_asr(s.asr, allow_download, device=device, beam_size=s.beam_size)  # loads nothing yet: the weights load on the first transcription
        diarizer = load_diarizer(s.diarize, device=device) if s.diarize else None  # a missing extra stops here
    for done, (k, path) in enumerate(todo, start=1):
        try:
            doc = segment_recording(path, settings, cache_dir=ws.transcripts_dir, allow_download=allow_download,
                                    asr_engine=engine, device=device, diarizer=diarizer)
            docs[k] = dataclasses.replace(doc, doc_id=f"{k:06d}-{doc.doc_id}")  # unique even for same-named files
        except HilbertError as e:
            problems[k] = str(e)
        except OSError as e:  # e.g. a recording that cannot be opened
            problems[k] = describe_os_error(e, path, "cannot read it")
        if progress:
            progress("segment", done, len(todo))
    return docs, problems


def _embed_all(docs: dict[int, SegmentedDoc], meta: dict, ws: Workspace, allow_download: bool,
               progress: Optional[Progress], device: torch.device):
    """-> {position: (A, T)} and {position: problem}. All documents go through one call (each encoder
    loads once); if that fails, each is retried alone so the error lands on the file that caused it."""
    from .features.embed import embed_documents

    b = meta["backbones"]
    kw = dict(cache_dir=ws.embeddings_dir, layer=b[AUDIO].get("layer"), pooling=b[AUDIO].get("pooling", "mean"),
              allow_download=allow_download, device=device)
    if not docs:
        return {}, {}
    try:
        by_id = embed_documents(list(docs.values()), b[AUDIO]["name"], b[TEXT]["name"], progress=progress, **kw)
        return {k: by_id[d.doc_id] for k, d in docs.items()}, {}
    except HilbertError as e:
        if len(docs) == 1:
            return {}, {k: str(e) for k in docs}
    vectors, problems = {}, {}
    for k, d in docs.items():
        try:
            vectors[k] = embed_documents([d], b[AUDIO]["name"], b[TEXT]["name"], **kw)[d.doc_id]
        except HilbertError as e:
            problems[k] = str(e)
    return vectors, problems


def predict_files(model_path: str | os.PathLike, paths, *, workspace: Workspace | str | os.PathLike | None = None,
                  allow_download: bool = False, progress: Optional[Progress] = None,
                  device: Optional[torch.device] = None) -> PredictResult:
    """Predict every recording in `paths` (files, or folders of recordings) with the model at `model_path`.

    Caches (ASR transcripts, embeddings) live in `workspace` (default ./hilbert-work or $HILBERT_WORKSPACE).
    ASR, the encoders and the classifier run on `device` (a torch.device or name; None = auto).
    Raises HilbertError for a problem with the model; a problem with one file goes into its prediction."""
    from .learn.calibration import from_checkpoint
    from .learn.checkpoint import load_checkpoint
    from .learn.train import explain

    t0 = time.perf_counter()
    device = resolve_device(device)
    model_path = Path(model_path)
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    model, meta = load_checkpoint(model_path, device=device)
    check_writable_dir(ws.root, "--workspace")  # the transcript and embedding caches go there
    warnings = check_backbones(model_path, meta, allow_download)
    inputs = expand_inputs(paths)
    label_names = list(meta["label_names"])
    config = meta["config"]
    dims = meta["input_dims"]
    calibration = from_checkpoint(meta)

    docs, problems = _segment_all(inputs, meta.get("segmentation") or {}, ws, allow_download, progress, device)
    vectors, embed_problems = _embed_all(docs, meta, ws, allow_download, progress, device)
    problems.update(embed_problems)
    for k, (A, T) in list(vectors.items()):
        if A.shape[1] != dims["d_audio"] or T.shape[1] != dims["d_text"]:
            problems[k] = (f"{inputs[k][0]}: the backbones give {A.shape[1]}-d audio and {T.shape[1]}-d text vectors but the "
                           f"model expects {dims['d_audio']} and {dims['d_text']}; use the backbones it was trained with.")
            del vectors[k]

    spec = CONFIGURATIONS[config["configuration"]]
    modalities = spec.modalities
    order = sorted(vectors)
    temperature = 1.0 if calibration is None else calibration.temperature
    outs = dict(zip(order, explain(model, [vectors[k][0] for k in order], [vectors[k][1] for k in order],
                                   temperature=temperature))) if order else {}
    predictions = []
    for k, (path, _) in enumerate(inputs):
        if k in problems or k not in outs:
            predictions.append(FilePrediction(str(path), error=problems.get(k, f"{path}: not predicted.")))
            continue
        doc, out = docs[k], outs[k]
        proba = [float(p) for p in out["proba"]]
        if not all(math.isfinite(p) for p in proba):
            predictions.append(FilePrediction(str(path), error=(
                f"{path}: the model gave probabilities that are not numbers (NaN) for this recording, so it has no "
                f"prediction; the model file {model_path} may be damaged: train it again.")))
            continue
        w, wa, wt, wj = _weights(out, len(doc.segments), modalities)
        occ = out["occlusion"]
        segments = [SegmentWeight(s.index, s.start, s.end, s.text, s.source, float(w[i]), wa[i], wt[i], wj[i], float(occ[i]))
                    for i, s in enumerate(doc.segments)]
        best = max(range(len(proba)), key=proba.__getitem__)
        predictions.append(FilePrediction(str(path), label_names[best], dict(zip(label_names, proba)), segments,
                                          doc.duration))
    weighting = ATTENTION_WEIGHTING if spec.segment_weight == "attention" else UNIFORM_WEIGHTING.format(name=config["configuration"])
    return PredictResult(str(model_path), meta["task"], config["configuration"], label_names,
                         {kind: meta["backbones"][kind]["name"] for kind in KINDS}, weighting, predictions, warnings,
                         time.perf_counter() - t0, calibration)


# --- output files ---------------------------------------------------------------------------------

def json_text(result: PredictResult) -> str:
    """One object per file: file, label, probabilities, top_segments (start, end, text, occlusion, weight), n_segments, duration, error, and
    calibrated / temperature (whether the probabilities are temperature-scaled, and T); strict JSON (a value that is not a finite number is null)."""
    return strict_json(result.to_json())


def write_json(result: PredictResult, path: str | os.PathLike) -> Path:
    """json_text(result), written atomically to `path`."""
    return atomic_write_json(path, result.to_json())


def write_explain_csv(result: PredictResult, path: str | os.PathLike) -> Path:
    """Every segment of every predicted file with its weight per modality (EXPLAIN_COLUMNS); empty = not used."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXPLAIN_COLUMNS)
    fmt = lambda v: "" if v is None else f"{v:.6g}"  # noqa: E731
    for p in result.predictions:
        for s in p.segments:
            w.writerow([p.file, s.index, f"{s.start:.3f}", f"{s.end:.3f}", fmt(s.occlusion), fmt(s.weight), fmt(s.weight_audio),
                        fmt(s.weight_text), fmt(s.weight_joint), s.source, s.text])
    return atomic_write_text(path, buf.getvalue())
