"""The workspace: where every command keeps its state (default ./hilbert-work).

Layout
    .lock                       held by the command using the workspace (its pid inside)
    corpus.json                 manifest written by `segment`: documents, labels, tasks, settings
    segments/<doc_id>.json      one SegmentedDoc per document
    transcripts/<key>.json      ASR cache (word timings), keyed by audio hash + channel + ASR model
    transcripts/<key>.parts/    the finished chunks of a long recording still being transcribed
    embeddings/...              content-addressed vector cache (see embed.py)
    runs/<name>/                evaluation reports
Every file is written atomically (atomic.py), so an interrupted command leaves it consistent.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic import atomic_write_json, check_writable_dir
from .errors import HilbertError, OutputError

DEFAULT_WORKSPACE = "hilbert-work"
WORKSPACE_ENV = "HILBERT_WORKSPACE"


@dataclass
class Segment:
    doc_id: str
    index: int
    start: float  # seconds
    end: float  # seconds
    text: str
    source: str  # where the text came from: "transcript", "asr", "transcript+asr-timing", ...
    speaker: str | None = None  # who speaks, when the transcript says (None in workspaces from before speakers)
    channel: int | None = None  # the recording's channel (0 = left) its audio is taken from; None: all averaged

    @property
    def n_words(self) -> int:
        return len(self.text.split())


@dataclass
class SegmentedDoc:
    doc_id: str
    audio_path: str
    audio_sha256: str
    duration: float  # seconds
    segments: list[Segment]
    settings: dict = field(default_factory=dict)  # segmentation settings used
    speech: dict = field(default_factory=dict)  # speaker (or "" when unnamed) -> seconds of speech, before --speakers

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "SegmentedDoc":
        segs = [Segment(**s) for s in d["segments"]]
        return cls(d["doc_id"], d["audio_path"], d["audio_sha256"], float(d["duration"]), segs, d.get("settings", {}),
                   d.get("speech", {}))


@dataclass
class Manifest:
    corpus_dir: str
    documents: dict  # doc_id -> {"audio": path, "audio_sha256": str, "subject": str|None, "labels": {task: str|None}}
    tasks: list[str]
    segmentation: dict

    def task_labels(self, task: str) -> dict[str, str]:
        """doc_id -> label for the documents labelled for `task` (empty cells left out)."""
        if task not in self.tasks:
            raise HilbertError(
                f"--task: unknown task {task!r}; the corpus's labels.csv has: {', '.join(self.tasks) or '(none)'}."
            )
        out = {}
        for doc_id, d in sorted(self.documents.items()):
            v = d.get("labels", {}).get(task)
            if v is not None and str(v).strip() != "":
                out[doc_id] = str(v)
        return out

    def subjects(self) -> dict[str, str | None]:
        return {doc_id: d.get("subject") for doc_id, d in self.documents.items()}


class Workspace:
    def __init__(self, root: str | os.PathLike | None = None):
        root = root or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE
        self.root = Path(root)

    @contextlib.contextmanager
    def lock(self, command: str):
        """Hold the workspace for one command: a second command on it stops with one line naming the holder.

        An advisory lock (flock) on `.lock`, which holds the holder's pid and command: the operating system
        releases it when the holder ends however it ends, so a lock left by a killed command is taken over.
        Where flock does not exist (Windows) commands are not serialised."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        path = self.root / ".lock"
        check_writable_dir(self.root, "--workspace")  # a file in the way, no permission: its own one line
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"--workspace {self.root}: cannot create its lock file ({e.strerror}); "
                              "choose a folder you can write to.", param="--workspace") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                raise HilbertError(f"--workspace {self.root}: busy: `hilbert {holder}` is using it; wait for it to "
                                   "finish, or use another workspace.", param="--workspace") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{command} (pid {os.getpid()})".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    # folders
    @property
    def manifest_path(self) -> Path:
        return self.root / "corpus.json"

    @property
    def segments_dir(self) -> Path:
        return self.root / "segments"

    @property
    def transcripts_dir(self) -> Path:
        return self.root / "transcripts"

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    # segments
    def segments_path(self, doc_id: str) -> Path:
        return self.segments_dir / f"{doc_id}.json"

    def write_doc(self, doc: SegmentedDoc) -> Path:
        return atomic_write_json(self.segments_path(doc.doc_id), doc.to_json())

    def load_doc(self, doc_id: str) -> SegmentedDoc:
        p = self.segments_path(doc_id)
        try:
            return SegmentedDoc.from_json(json.loads(p.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise HilbertError(f"{p}: no segments for document {doc_id!r}; run `hilbert segment DIR` first.") from None
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise HilbertError(f"{p}: the segment file is damaged ({e}); re-run `hilbert segment DIR`.") from None

    # manifest
    def write_manifest(self, manifest: Manifest) -> Path:
        return atomic_write_json(self.manifest_path, asdict(manifest))

    def load_manifest(self) -> Manifest:
        p = self.manifest_path
        if not p.exists():
            raise HilbertError(
                f"{self.root}: no segmented corpus in this workspace; run `hilbert segment DIR` first "
                f"(or point --workspace/-w or {WORKSPACE_ENV} at the right folder)."
            )
        try:
            return Manifest(**json.loads(p.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as e:
            raise HilbertError(f"{p}: the workspace manifest is damaged ({e}); re-run `hilbert segment DIR`.") from None
