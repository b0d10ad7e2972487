"""Reading a corpus folder (SPEC.md "Corpus layout"): audio by stem, optional same-stem transcript,
and labels.csv. The folder is only ever read.

Problems that concern one document (a transcript without audio, duplicate ids, a label row
without audio, audio without a label row, a broken link) become one line each in `Corpus.problems`;
that document is left out and the rest of the corpus still goes through. Problems that make the whole
corpus unusable (no such folder, no audio, a labels.csv without an `id` column) raise HilbertError.

labels.csv is read as spreadsheets save it: UTF-8 with or without a BOM, UTF-16 with a BOM, or Windows
cp1252; comma, semicolon or tab separated. Ids (in labels.csv and file names alike) are compared after
Unicode NFC normalisation and trimming surrounding spaces; an id that matches nothing but nearly matches
another (`007` and `7`, `X01` and `x01`) is reported with "did you mean ...?".
"""
from __future__ import annotations

import csv
import difflib
import io
import os
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .audio import AUDIO_EXTENSIONS
from ..errors import HilbertError
from .transcripts import TRANSCRIPT_EXTENSIONS

LABELS_FILE = "labels.csv"
ID_COLUMN = "id"
SUBJECT_COLUMN = "subject"
# Cells that mean "not labelled for this task", besides an empty cell (R and pandas write these).
MISSING_LABELS = {"", "na", "nan", "n/a"}


@dataclass
class Document:
    doc_id: str  # the file stem
    audio: Path
    transcript: Path | None = None
    subject: str | None = None
    labels: dict[str, str | None] = field(default_factory=dict)  # task -> label, None = unlabelled


@dataclass
class Corpus:
    root: Path
    documents: list[Document]  # sorted by doc_id; only the usable ones
    tasks: list[str]  # label columns of labels.csv, in file order
    problems: list[str]  # one line per document left out
    has_labels: bool  # False when the folder has no labels.csv


def normal_id(text: str) -> str:
    """An id as compared: NFC-normalised (macOS writes file names decomposed) with surrounding spaces trimmed."""
    return unicodedata.normalize("NFC", text).strip()


def _loose(doc_id: str) -> str:
    """What a near-miss shares: case folded, spaces, '-' and '_' dropped, leading zeros of numbers dropped."""
    return re.sub(r"\d+", lambda m: str(int(m.group())), re.sub(r"[\s_-]", "", doc_id.casefold()))


def did_you_mean(doc_id: str, candidates) -> str:
    """' (did you mean 'X'?)' for the closest candidate id, or '' when none is close."""
    candidates = sorted(candidates)
    close = [c for c in candidates if _loose(c) == _loose(doc_id)]
    close = close or difflib.get_close_matches(doc_id, candidates, n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _decode(path: Path, data: bytes) -> str:
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a BOM (Excel's "Unicode text")
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:  # Excel's plain "CSV" on Windows
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise HilbertError(f"{path}: cannot decode as UTF-8, UTF-16 or Windows text; re-save the spreadsheet as CSV UTF-8.") from None


def _read_labels(path: Path) -> tuple[list[str], dict[str, list[dict]]]:
    """Task names and id -> the rows with that id (more than one row is a duplicate id)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise HilbertError(f"{path}: cannot read it ({e.strerror}); check that the file is there and readable.") from None
    text = unicodedata.normalize("NFC", _decode(path, data))  # ids, task names and labels alike
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = max(",;\t", key=first.count)  # spreadsheets in some locales write ';' or tab
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    lower = [h.lower() for h in header]
    if ID_COLUMN not in lower:
        raise HilbertError(
            f"{path}: no '{ID_COLUMN}' column (found: {', '.join(header) or 'an empty file'}); "
            f"the first row must name the columns, e.g. id,subject,depression."
        )
    tasks = [h for h, l in zip(header, lower) if l not in (ID_COLUMN, SUBJECT_COLUMN) and h]
    rows: dict[str, list[dict]] = defaultdict(list)
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank line
        row = {l: (cells[i].strip() if i < len(cells) else "") for i, l in enumerate(lower)}
        row["_line"] = line_no
        row["_cells"] = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        rows[normal_id(row[ID_COLUMN])].append(row)
    return tasks, rows


def read_corpus(root: str | os.PathLike) -> Corpus:
    root = Path(root)
    if not root.is_dir():
        raise HilbertError(f"{root}: no such folder; give the folder that holds the recordings and labels.csv.")
    audio, transcripts, broken = defaultdict(list), defaultdict(list), {}
    for p in sorted(root.iterdir()):
        ext = p.suffix.lower()
        if p.name.startswith(".") or ext not in AUDIO_EXTENSIONS + TRANSCRIPT_EXTENSIONS:
            continue
        if p.is_symlink() and not p.exists():
            broken[normal_id(p.stem)] = (f"{p.name}: broken link (it points to {os.readlink(p)}, which is not there); "
                                         "restore the file or remove the link.")
        elif p.is_file():
            (audio if ext in AUDIO_EXTENSIONS else transcripts)[normal_id(p.stem)].append(p)
    if not audio and not broken:
        raise HilbertError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder.")

    labels_path = root / LABELS_FILE
    has_labels = labels_path.is_file()
    tasks, rows = _read_labels(labels_path) if has_labels else ([], {})

    problems, documents = [broken[k] for k in sorted(broken)], []
    for stem in sorted(transcripts.keys() - audio.keys() - broken.keys()):
        for t in transcripts[stem]:
            problems.append(f"{t.name}: transcript without audio (no {stem}.wav/.flac/.ogg/.mp3); add the audio or remove the file.")
    unlabelled = set(audio) - set(rows)
    for doc_id in sorted(set(rows) - audio.keys() - broken.keys()):
        hint = did_you_mean(doc_id, unlabelled)
        problems.append(f"{LABELS_FILE} line {rows[doc_id][0]['_line']}: id {doc_id!r} has no audio file in {root}{hint}; "
                        "make the id and the file name the same.")
    for doc_id in sorted(audio.keys() - broken.keys()):
        names = ", ".join(p.name for p in audio[doc_id])
        if len(audio[doc_id]) > 1:
            problems.append(f"{doc_id}: duplicate id: several audio files ({names}); keep one.")
            continue
        if len(transcripts.get(doc_id, [])) > 1:
            problems.append(f"{doc_id}: several transcripts ({', '.join(p.name for p in transcripts[doc_id])}); keep one.")
            continue
        doc = Document(doc_id, audio[doc_id][0], (transcripts.get(doc_id) or [None])[0])
        if has_labels:
            found = rows.get(doc_id, [])
            if not found:
                hint = did_you_mean(doc_id, set(rows) - set(audio))
                problems.append(f"{names}: no row with id {doc_id!r} in {LABELS_FILE}{hint}; add one, or fix the id "
                                "(empty cells = unlabelled).")
                continue
            if len(found) > 1:
                lines = ", ".join(str(r["_line"]) for r in found)
                problems.append(f"{LABELS_FILE}: duplicate id {doc_id!r} on lines {lines}; keep one row.")
                continue
            row = found[0]
            doc.subject = row.get(SUBJECT_COLUMN) or None
            doc.labels = {t: (None if row["_cells"].get(t, "").lower() in MISSING_LABELS else row["_cells"][t]) for t in tasks}
        documents.append(doc)
    return Corpus(root, documents, tasks, problems, has_labels)
