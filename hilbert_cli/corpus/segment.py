"""`hilbert segment`: corpus folder -> one SegmentedDoc per document + the manifest, in the workspace.

Per document: read the recording's length from its header, then get timed words from
  - a timed transcript (.srt/.vtt/.TextGrid/.json): its cues, no ASR (the audio is never decoded);
  - a plain .txt transcript: ASR word timings, with the transcript's words aligned onto them;
  - no transcript: ASR words;
where ASR reads the audio as 16 kHz mono (channels averaged), or with `channels` (--channels) each channel
on its own, its words carrying the channel's name as speaker. The words are cut with a strategy (cutting.py),
never across a change of speaker (each segment keeps its `speaker` when the transcript or a channel names
one, and the `channel` its audio is embedded from; with `diarize`, a document whose transcript names nobody
gets its speakers from offline diarization, diarize.py). A document's problem becomes one line in the result
and the rest of the corpus goes on. Re-running resumes: a document whose segment file already
has the same audio hash, transcript hash and settings is not redone, and ASR output is cached.
ASR runs on `device` (a torch.device from device.resolve_device; None = auto); the device is not part
of the settings, so a document segmented on a GPU is resumed on the CPU and back.
"""
from __future__ import annotations

import bisect
import functools
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Optional

import torch

from . import cutting
from ..atomic import check_writable_dir, describe_os_error
from .align import align_words
from .asr import BEAM_SIZE, DEFAULT_ASR, check_beam, load_asr, transcribe_cached
from .audio import AudioInfo, audio_info, file_sha256, load_audio
from ..device import resolve_device
from ..engine import LocalEngine
from .diarize import (DEFAULT_DIARIZER, DIARIZERS, NUM_SPEAKERS, PARTICIPANT, diarize_cached, load_diarizer,
                      most_speech, speakers_of)
from .reading import Document, read_corpus
from ..errors import HilbertError, OutputError
from .transcripts import TRANSCRIPT_EXTENSIONS, read_transcript
from ..workspace import Manifest, Segment, SegmentedDoc, Workspace

STRATEGIES = ("auto", "cues", "fixed")
CUE_TOLERANCE = 0.5  # seconds a cue may run past the end of the audio before it is an error
LOW_MATCH = 0.5  # warn when fewer aligned transcript words than this were heard by the ASR
MAX_GAPS_SHOWN = 3  # unheard stretches named in a document's warning


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"
PAPER_WORDS, PAPER_SECONDS = 17, 6.47  # the paper corpus's mean segment
TRANSCRIPT_READER_VERSION = 2  # 2: speakers, TextGrid tier choice, text cleaning


@dataclass
class SegmentSettings:
    strategy: str = "auto"
    target_words: int = 17
    max_seconds: float = 15.0
    window: float = 10.0  # seconds, strategy "fixed"
    asr: str = DEFAULT_ASR
    min_seconds: float = 1.0  # a recording shorter than this is reported as too short, never transcribed
    tier: list[str] | None = None  # TextGrid tiers to read (None: each speaker's word tier); "a,b" is split
    speakers: list[str] | None = None  # whose speech is modelled (None: everyone's); names compared without case
    beam_size: int = BEAM_SIZE  # ASR beam width (1 = greedy); decoding is at temperature 0 whatever the beam
    diarize: str | None = None  # diarizer (True = the default) for documents whose transcript names no speaker
    num_speakers: int = NUM_SPEAKERS  # diarization: at most this many voices per recording
    channels: list[str] | None = None  # one speaker per channel, left first (None: the channels are averaged)

    def __post_init__(self):
        self.tier = _name_list(self.tier)
        self.speakers = _name_list(self.speakers)
        self.channels = _channel_names(self.channels)
        self.diarize = DEFAULT_DIARIZER if self.diarize is True else (self.diarize or None)
        if self.diarize is not None and self.diarize not in DIARIZERS:
            raise HilbertError(f"--diarize: unknown diarizer {self.diarize!r}; choose one of {', '.join(DIARIZERS)}.")
        if isinstance(self.num_speakers, bool) or not isinstance(self.num_speakers, int) or self.num_speakers < 1:
            raise HilbertError(f"--num-speakers: must be a whole number of at least 1, got {self.num_speakers!r}.")
        if self.num_speakers != NUM_SPEAKERS and self.diarize is None:
            raise HilbertError("--num-speakers: only diarization uses it; add --diarize, or leave --num-speakers out.")
        if self.strategy not in STRATEGIES:
            raise HilbertError(f"--strategy: unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}.")
        check_beam(self.beam_size)
        if self.target_words < 1:
            raise HilbertError(f"--target-words: must be at least 1, got {self.target_words}.")
        if not self.max_seconds > 0:
            raise HilbertError(f"--max-seconds: must be more than 0, got {self.max_seconds}.")
        if not self.window > 0:
            raise HilbertError(f"--window: must be more than 0 seconds, got {self.window}.")
        if not 0 <= self.min_seconds < float("inf"):
            raise HilbertError(f"--min-seconds: must be 0 or more seconds, got {self.min_seconds}.")

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentSettings":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _split_names(names) -> list[str]:
    """The names in "a,b" or ["a", "b"], stripped (an empty one stays, as "")."""
    parts = names.split(",") if isinstance(names, str) else [p for x in names for p in str(x).split(",")]
    return [p.strip() for p in parts]


def _name_list(names) -> list[str] | None:
    """A list of names (tiers, speakers) from "a,b", ["a", "b"] or None; None when no name is left."""
    if names is None:
        return None
    return [p for p in _split_names(names) if p] or None


def _channel_names(names) -> list[str] | None:
    """The channel names of --channels, checked: one non-empty name per channel, no name twice (without case)."""
    if names is None:
        return None
    out = _split_names(names)
    given = names if isinstance(names, str) else ",".join(map(str, names))
    if not all(out):
        raise HilbertError(f"--channels: an empty channel name in {given!r}; give one name per channel, left first, "
                           "e.g. --channels interviewer,participant.")
    seen = set()
    for n in out:
        if n.casefold() in seen:
            raise HilbertError(f"--channels: {n!r} is given twice (names are compared without case); give each "
                               "channel its own name, left first, e.g. --channels interviewer,participant.")
        seen.add(n.casefold())
    return out


@dataclass
class Progress:
    doc_id: str
    doc_index: int  # 0-based position in the corpus
    n_docs: int
    fraction: float  # of this document done, 0..1


@dataclass
class DocStats:
    doc_id: str
    n_segments: int
    n_words: int
    seconds: float  # summed segment durations
    duration: float  # of the recording
    source: str
    status: str  # "segmented" or "resumed"
    asr: str  # "ran", "cached" or "none"
    strategy: str  # the strategy used (cues falls back to auto without a timed transcript)
    speech: dict = field(default_factory=dict)  # speaker ("" = unnamed) -> seconds of speech, before --speakers
    participant: str | None = None  # `--speakers participant` on a diarized document: the speaker it picked
    diarized: bool = False  # its speakers came from diarization (speaker1, speaker2, ... named per document)
    mono: bool = False  # --channels was given but the recording is mono: segmented as one channel


@dataclass
class SegmentResult:
    workspace: str
    documents: list[DocStats]
    problems: list[str]  # one line per document left out: these make the command fail
    warnings: list[str]  # worth a look, nothing left out
    tasks: list[str]
    settings: dict

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    @property
    def mono(self) -> list[str]:
        """Documents segmented as one channel although --channels was given (mono recordings)."""
        return [d.doc_id for d in self.documents if d.mono]

    @property
    def n_segments(self) -> int:
        return sum(d.n_segments for d in self.documents)

    @property
    def speech(self) -> dict[str, float]:
        """Speaker ("" = unnamed) -> seconds of speech over the corpus, before --speakers chose whose is kept."""
        out: dict[str, float] = {}
        for d in self.documents:
            for k, v in d.speech.items():
                out[k] = out.get(k, 0.0) + v
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    @property
    def mean_words(self) -> float:
        return sum(d.n_words for d in self.documents) / max(self.n_segments, 1)

    @property
    def mean_seconds(self) -> float:
        return sum(d.seconds for d in self.documents) / max(self.n_segments, 1)


class _Transcriber:
    """ASR through the transcript cache. The spec (and that its model is on this machine) is
    checked at once; the weights load on first use."""

    def __init__(self, spec: str, allow_download: bool, engine=None, device: Optional[torch.device] = None,
                 threads: Optional[int] = None, beam_size: int = BEAM_SIZE):
        self.engine = engine if engine is not None else load_asr(spec, allow_download, device=device, threads=threads,
                                                                 beam_size=beam_size)

    def words(self, audio, sha, cache_dir, progress, channel: int | None = None):
        """(words, cached) of `audio` (channel `channel` of the recording, None = averaged); cache_dir None: no cache."""
        return transcribe_cached(self.engine, audio, sha, cache_dir, progress, channel=channel)


def _timed_cues(transcript, duration: float, name: str):
    cues = []
    for c in transcript.cues:
        if c.end > duration + CUE_TOLERANCE:
            raise HilbertError(
                f"{name}: cue {c.text[:30]!r} at {c.start:.2f}-{c.end:.2f} s runs past the end of the audio "
                f"({duration:.2f} s); check that the transcript belongs to this recording."
            )
        if c.start < duration:
            cues.append(replace(c, end=min(c.end, duration)))
    return cues


def _spans(strategy: str, settings: SegmentSettings, words, speakers, cue_ends, cues, duration: float):
    """(start, end, text, speaker) segments by the strategy, never across a change of speaker."""
    if strategy == "cues":
        return cutting.cue_spans_with_speaker(cues)
    if strategy == "fixed":
        return cutting.fixed_spans_by_speaker(words, speakers, settings.window, duration)
    return cutting.auto_spans_by_speaker(words, speakers, settings.target_words, settings.max_seconds, cue_ends)


def _document_channels(names: list[str] | None, info: AudioInfo, doc: Document):
    """The channel names that apply to this recording: --channels when it has that many channels; None (its
    channels averaged, as without --channels) for a mono recording (SegmentResult.mono lists those, and the
    summary names them in one line); a problem otherwise."""
    if names is None or info.channels == len(names):
        return names
    if info.channels == 1:
        return None
    raise HilbertError(f"{doc.audio.name}: has {info.channels} channels but --channels names {len(names)} "
                       f"({','.join(names)}); give one name per channel, left first, or segment this recording "
                       "in a corpus of its own.")


def _asr_words(doc: Document, names: list[str] | None, info: AudioInfo, asr: _Transcriber, cache_dir, sha: str,
               progress: Callable[[float], None]):
    """(words, speakers, asr state): of each named channel transcribed on its own (each cached on its own) and
    merged by turns, or of the channels averaged (names None). One channel's audio is held at a time."""
    channels = list(range(info.channels)) if names and info.channels > 1 else [None]
    heard, cached = [], []
    for i, channel in enumerate(channels):
        audio = load_audio(doc.audio, channel=channel)
        words, was_cached = asr.words(audio, sha, cache_dir, lambda f, i=i: progress((i + f) / len(channels)), channel)
        del audio  # before the next channel is read
        heard.append(words)
        cached.append(was_cached)
    state = "cached" if all(cached) else "ran"
    if not names:
        return heard[0], [None] * len(heard[0]), state
    if len(channels) == 1:  # a mono recording with one name
        return heard[0], [names[0]] * len(heard[0]), state
    words, speakers = cutting.merge_channels(heard, names)
    return words, speakers, state


def _speakers_by_time(words, heard, heard_speakers) -> list:
    """The speaker of the heard word nearest each of `words` (by their middles)."""
    order = sorted(range(len(heard)), key=lambda i: heard[i].start + heard[i].end)
    mids = [(heard[i].start + heard[i].end) / 2 for i in order]
    out = []
    for w in words:
        m = (w.start + w.end) / 2
        j = bisect.bisect_left(mids, m)
        near = min((k for k in (j - 1, j) if 0 <= k < len(mids)), key=lambda k: abs(mids[k] - m), default=None)
        out.append(None if near is None else heard_speakers[order[near]])
    return out


def _segment_one(doc: Document, settings: SegmentSettings, asr: _Transcriber, cache_dir, sha: str,
                 progress: Callable[[float], None], diarizer=None):
    """-> (SegmentedDoc, warnings, asr state). Raises HilbertError for a problem with this document.
    `diarizer` (diarize.load_diarizer) is needed when settings.diarize is set.

    With --channels, each channel of the recording is transcribed on its own and its words carry the channel's
    name as speaker. A timed transcript wins over channels (its cues and speakers are used, no ASR); a plain
    transcript's words are aligned to the channels' merged words and keep the transcript's speakers when it names
    them, else take the channel of the heard word nearest each. A segment whose speaker names a channel records
    that channel, and `embed` takes its audio from that channel alone."""
    info = audio_info(doc.audio)
    duration = info.duration
    if duration < settings.min_seconds:
        raise HilbertError(
            f"{doc.audio.name}: too short ({duration:.2f} s, under the {settings.min_seconds:g} s minimum) to hold "
            "speech worth segmenting; replace it with the full recording, remove it, or lower --min-seconds."
        )
    transcript = read_transcript(doc.transcript, tier=settings.tier) if doc.transcript else None
    warnings, asr_state, cues = list(transcript.warnings) if transcript else [], "none", None
    names = _document_channels(settings.channels, info, doc)
    if transcript is not None and transcript.timed:
        cues = _timed_cues(transcript, duration, doc.transcript.name)
        words, cue_ends = cutting.cue_words(cues)
        speakers = cutting.cue_word_speakers(cues)
        source = "transcript"
    else:
        words, speakers, asr_state = _asr_words(doc, names, info, asr, cache_dir, sha, progress)
        cue_ends = set()
        if transcript is not None:
            heard, heard_speakers = words, speakers
            if names:  # the channels' words in time order, as the transcript runs
                order = sorted(range(len(words)), key=lambda i: (words[i].start, words[i].end))
                heard, heard_speakers = [words[i] for i in order], [speakers[i] for i in order]
            aligned = align_words(transcript.words, heard, duration)
            if aligned.match_rate < LOW_MATCH or aligned.gaps:
                where = ", ".join(f"{g.n_words} words at {_clock(g.start)}-{_clock(g.end)}" for g in aligned.gaps[:MAX_GAPS_SHOWN])
                more = f" and {len(aligned.gaps) - MAX_GAPS_SHOWN} more" if len(aligned.gaps) > MAX_GAPS_SHOWN else ""
                warnings.append(
                    f"{doc.transcript.name}: {aligned.match_rate:.0%} of its words were heard in {doc.audio.name}"
                    + (f"; not heard (times interpolated): {where}{more}" if where else "")
                    + ("; check that the transcript belongs to this recording." if aligned.match_rate < LOW_MATCH
                       else "; check the audio there.")
                )
            words, source = aligned.words, "transcript+asr-timing"
            if len(transcript.word_speakers) == len(words) and (any(transcript.word_speakers) or not names):
                speakers = transcript.word_speakers  # one aligned word per transcript word
            else:
                speakers = _speakers_by_time(words, heard, heard_speakers)
        else:
            source = "asr"
    if not words:
        raise HilbertError(f"{doc.audio.name}: no speech found in {duration:.1f} s of audio; check the recording and its transcript.")
    diarized = False
    if settings.diarize and not any(speakers):  # a transcript that names its speakers is never diarized
        turns = diarize_cached(diarizer, load_audio(doc.audio), sha, cache_dir, settings.num_speakers)
        if turns:
            speakers, diarized = speakers_of(turns, [(w.start, w.end) for w in words]), True
            if cues is not None:
                cues = [replace(c, speaker=sp) for c, sp in zip(cues, speakers_of(turns, [(c.start, c.end) for c in cues]))]
        else:
            warnings.append(f"{doc.audio.name}: diarization found no speech, so its words have no speaker.")

    strategy = "auto" if settings.strategy == "cues" and cues is None else settings.strategy
    spans = _spans(strategy, settings, words, speakers, cue_ends, cues, duration)
    speech: dict[str, float] = {}
    for s, e, _, speaker in spans:
        speech[speaker or ""] = round(speech.get(speaker or "", 0.0) + min(e, duration) - s, 3)
    spans, participant = _chosen_speakers(spans, settings, doc, warnings, speech if diarized else None)
    channel_of = {n.casefold(): k for k, n in enumerate(names)} if names and info.channels > 1 else {}
    segments = [Segment(doc.doc_id, i, round(s, 3), round(min(e, duration), 3), text, source, speaker,
                        channel_of.get((speaker or "").casefold()))
                for i, (s, e, text, speaker) in enumerate(spans)]
    doc_settings = dict(asdict(settings), strategy_used=strategy, **_transcript_key(doc), diarized=diarized,
                        participant=participant, mono=bool(settings.channels) and info.channels == 1)
    seg_doc = SegmentedDoc(doc.doc_id, str(Path(doc.audio).resolve()), sha, round(duration, 3), segments, doc_settings,
                           speech)
    progress(1.0)
    return seg_doc, warnings, asr_state


def _chosen_speakers(spans, settings: SegmentSettings, doc: Document, warnings: list[str],
                     diarized_speech: dict[str, float] | None = None):
    """(the spans of the speakers chosen by --speakers (all when None), the speaker `participant` picked or None).
    A document whose transcript names no speaker keeps all of its speech (with a warning); one that names others
    but none chosen is a problem. On a diarized document (`diarized_speech`: its speech time per speaker) the
    reserved name `participant` picks the speaker with the most speech time (diarize.most_speech)."""
    speakers = settings.speakers
    if not speakers:
        return spans, None
    named = sorted({sp for *_, sp in spans if sp})
    if not named:
        hint = "" if settings.diarize else " (--diarize finds the speakers of such a recording)"
        warnings.append(f"{doc.doc_id}: its transcript names no speaker, so --speakers cannot choose{hint}; all of its "
                        "speech is kept.")
        return spans, None
    wanted, picked = {n.casefold() for n in speakers}, None
    if diarized_speech is not None and PARTICIPANT in wanted:
        picked = most_speech(diarized_speech)
        wanted = (wanted - {PARTICIPANT}) | {picked.casefold()}
    kept = [sp for sp in spans if sp[3] and sp[3].casefold() in wanted]
    if not kept:
        raise HilbertError(f"{doc.doc_id}: none of its speakers ({', '.join(named)}) is among --speakers "
                           f"{','.join(speakers)}; add one of them to --speakers, or fix the transcript's names.")
    return kept, picked


def _transcript_key(doc: Document) -> dict:
    """What a document's segments depend on besides the audio and settings: its transcript file and
    the version of the readers (a document segmented by older readers is read again)."""
    if doc.transcript is None:
        return {"transcript": None, "transcript_sha256": None}
    return {"transcript": doc.transcript.name, "transcript_sha256": file_sha256(doc.transcript),
            "transcript_reader": TRANSCRIPT_READER_VERSION}


def _stats(d: SegmentedDoc, status: str, asr: str) -> DocStats:
    return DocStats(d.doc_id, len(d.segments), sum(s.n_words for s in d.segments),
                    sum(s.end - s.start for s in d.segments), d.duration,
                    d.segments[0].source if d.segments else "-", status, asr,
                    d.settings.get("strategy_used", d.settings.get("strategy", "?")), dict(d.speech),
                    d.settings.get("participant"), bool(d.settings.get("diarized")), bool(d.settings.get("mono")))


def _resumable(ws: Workspace, doc: Document, sha: str, settings: SegmentSettings) -> SegmentedDoc | None:
    if not ws.segments_path(doc.doc_id).is_file():
        return None
    try:
        old = ws.load_doc(doc.doc_id)
    except HilbertError:
        return None  # damaged: redo it
    want = dict(asdict(settings), **_transcript_key(doc))
    del want["min_seconds"]  # it only refuses short recordings: a kept document needs only to be long enough
    default = asdict(SegmentSettings())  # a setting added after the document was segmented had its default then
    same = old.audio_sha256 == sha and all(old.settings.get(k, default.get(k)) == v for k, v in want.items())
    return old if same and old.duration >= settings.min_seconds else None


def _segmenter(settings: SegmentSettings, allow_download: bool, device, threads: Optional[int]):
    """A worker's state (engine.map_documents): the ASR model (weights loaded on first use) and the diarizer."""
    asr = _Transcriber(settings.asr, allow_download, device=device, threads=threads, beam_size=settings.beam_size)
    diarizer = load_diarizer(settings.diarize, device=resolve_device(device), threads=threads) if settings.diarize else None
    return asr, diarizer


def _segment_job(state, item, report, *, settings: SegmentSettings, cache_dir):
    """One document on a worker holding `state` (_segmenter): (SegmentedDoc, warnings, asr state)."""
    (asr, diarizer), (doc, sha) = state, item
    return _segment_one(doc, settings, asr, cache_dir, sha, report, diarizer)


def segment_corpus(corpus_dir: str | os.PathLike, workspace: Workspace, settings: SegmentSettings,
                   allow_download: bool = False, progress: Callable[[Progress], None] | None = None, *,
                   device: Optional[torch.device] = None, threads: Optional[int] = None,
                   replace: bool = False, engine=None) -> SegmentResult:
    """Segment every document of the corpus into the workspace, running ASR on `device` (None = auto) with
    `threads` CPU threads (None = device.default_threads), on `engine` (engine.make_engine; None = local): with
    Ray, the documents to do run on its workers, each holding the ASR model once; each result is written here
    as it arrives, and the ASR cache by the worker (the workspace on a filesystem every node shares).

    A workspace belongs to one corpus: segmenting another corpus into it raises HilbertError unless `replace`.
    A corpus that was moved (its old folder is gone, its documents are here) is the same corpus: documents
    whose audio is unchanged are kept and their paths follow the new folder."""
    device = resolve_device(device)
    corpus = read_corpus(corpus_dir)
    root, ws_root = corpus.root.resolve(), workspace.root.resolve()
    if ws_root == root or root in ws_root.parents:
        raise HilbertError(
            f"--workspace {workspace.root}: is inside the corpus folder {corpus.root}, which is never written to; "
            "choose a workspace outside it."
        )
    check_writable_dir(workspace.root, "--workspace")  # before any ASR: a workspace that cannot be written stops here
    if not replace:
        _check_same_corpus(workspace, root, corpus.documents)
    engine = engine if engine is not None else LocalEngine()
    problems, warnings = list(corpus.problems), []
    if not corpus.has_labels:
        warnings.append(f"{corpus.root}: no labels.csv, so the documents have no labels; add one before `hilbert train`.")
    n = len(corpus.documents)
    done: dict[int, tuple] = {}  # corpus position -> (DocStats, SegmentedDoc, warnings) or (None, None, problem)

    def report(k: int, f: float) -> None:
        if progress:
            progress(Progress(corpus.documents[k].doc_id, k, n, f))

    def failed(k: int, e: BaseException) -> None:
        if isinstance(e, OutputError):
            raise e  # the workspace cannot be written: every later document would fail the same way
        line = str(e) if isinstance(e, HilbertError) else describe_os_error(e, corpus.documents[k].audio, "cannot read it")
        done[k] = (None, None, line)  # e.g. the recording cannot be opened (permissions)

    todo = []  # (corpus position, document, its audio's sha256)
    for k, doc in enumerate(corpus.documents):
        report(k, 0.0)
        try:
            sha = file_sha256(doc.audio)
            seg_doc = _resumable(workspace, doc, sha, settings)
            if seg_doc is None:
                todo.append((k, doc, sha))
                continue
            here = str(Path(doc.audio).resolve())
            if seg_doc.audio_path != here:  # the corpus moved: same audio (by content), new path
                seg_doc.audio_path = here
                workspace.write_doc(seg_doc)
            done[k] = (_stats(seg_doc, "resumed", "none"), seg_doc, [])
            report(k, 1.0)
        except (HilbertError, OSError) as e:
            failed(k, e)

    on = engine.worker_device(device)
    threads = threads if threads is not None else engine.threads
    factory = functools.partial(_segmenter, settings, allow_download, on, threads)
    job = functools.partial(_segment_job, settings=settings, cache_dir=workspace.transcripts_dir)
    for i, result, error in engine.map_documents(factory, job, [(doc, sha) for _, doc, sha in todo],
                                                 progress=lambda i, f: report(todo[i][0], f)):
        k = todo[i][0]
        if error is not None:
            failed(k, error)
            continue
        seg_doc, doc_warnings, asr_state = result
        workspace.write_doc(seg_doc)  # as each document finishes: kept if the run stops later
        done[k] = (_stats(seg_doc, "segmented", asr_state), seg_doc, doc_warnings)

    stats, documents = [], {}
    for k, doc in enumerate(corpus.documents):  # in corpus order, whichever worker finished first
        doc_stats, seg_doc, notes = done[k]
        if doc_stats is None:
            problems.append(notes)
            continue
        warnings += notes
        stats.append(doc_stats)
        documents[doc.doc_id] = {"audio": seg_doc.audio_path, "audio_sha256": seg_doc.audio_sha256,
                                 "subject": doc.subject, "labels": doc.labels}
    fell_back = [d.doc_id for d in stats if d.strategy != settings.strategy]
    if fell_back:
        warnings.append(f"{len(fell_back)} document(s) have no timed transcript, so --strategy {settings.strategy} "
                        f"fell back to auto for them: {', '.join(fell_back)}.")
    workspace.write_manifest(Manifest(str(root), documents, corpus.tasks, asdict(settings)))
    return SegmentResult(str(workspace.root), stats, problems, warnings, corpus.tasks, asdict(settings))


def _check_same_corpus(workspace: Workspace, root: Path, documents) -> None:
    """Stop before any work when the workspace holds another corpus. The same folder is the same corpus; so is
    a folder that replaced a vanished one and holds at least half of its documents (a moved corpus)."""
    if not workspace.manifest_path.exists():
        return
    try:
        old = workspace.load_manifest()
    except HilbertError:
        return  # a damaged manifest is rewritten at the end
    old_root = Path(old.corpus_dir)
    if old_root == root or not old.documents:
        return
    shared = len(set(old.documents) & {d.doc_id for d in documents})
    if not old_root.exists() and shared * 2 >= len(old.documents):
        return
    raise HilbertError(
        f"--workspace {workspace.root}: holds the segments of another corpus ({old_root}, {len(old.documents)} "
        f"documents); segment {root} into another workspace (-w), or pass --replace to replace that corpus here.",
        param="--workspace")


def segment_recording(audio_path: str | os.PathLike, settings: dict, cache_dir: str | os.PathLike | None = None,
                      allow_download: bool = False, asr_engine=None, *, device: Optional[torch.device] = None,
                      threads: Optional[int] = None, diarizer=None) -> SegmentedDoc:
    """Segment ONE recording outside any corpus (for `predict`), with stored `settings`; a transcript
    with the same stem beside the audio (any supported format) is used, otherwise the audio is transcribed
    on `device` (None = auto). `asr_engine` (from asr.load_asr(settings["asr"], device=...)) lets many calls
    share one loaded ASR model; it brings its own device, and `device` and `threads` are then unused. `diarizer`
    (diarize.load_diarizer) likewise shares one diarizer when the settings ask for diarization."""
    audio_path = Path(audio_path)
    if not audio_path.is_file():
        raise HilbertError(f"{audio_path}: no such audio file.")
    beside = [p for p in audio_path.parent.iterdir()
              if p.stem == audio_path.stem and p.suffix.lower() in TRANSCRIPT_EXTENSIONS and p.is_file()]
    if len(beside) > 1:
        raise HilbertError(f"{audio_path}: several transcripts beside it ({', '.join(sorted(p.name for p in beside))}); keep one.")
    s = SegmentSettings.from_dict(settings)
    doc = Document(audio_path.stem, audio_path, beside[0] if beside else None)
    asr = _Transcriber(s.asr, allow_download, asr_engine, device=device, threads=threads, beam_size=s.beam_size)
    if s.diarize and diarizer is None:
        diarizer = load_diarizer(s.diarize, device=resolve_device(device), threads=threads)
    seg_doc, _, _ = _segment_one(doc, s, asr, cache_dir, file_sha256(audio_path), lambda f: None, diarizer)
    return seg_doc
