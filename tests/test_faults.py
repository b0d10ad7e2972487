"""Fault injection through the CLI: every bad input and every refused write gets one line that names the
file or path, never a traceback; whatever was finished before the fault (segmented documents, grid cells,
the model, the other predictions) is still there; every JSON written is strict JSON.

Write failures are provoked without root-proof permissions: a file where a folder must be, a folder
where a file must be, and os.replace raising ENOSPC (a full disk) in-process. No ASR runs (timed
transcripts) and no encoder runs (embeddings are stand-ins), so the module takes seconds."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from hilbert_cli import atomic
from hilbert_cli.cli import app
from hilbert_cli.features import embed
from hilbert_cli.learn.checkpoint import load_checkpoint, save_checkpoint
from hilbert_cli.learn.config import load_config
from hilbert_cli.learn.data import synthetic_embeddings
from hilbert_cli.learn.train import fit
from hilbert_cli.workspace import Manifest, Workspace

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

RATE = 16000
DA, DT = 16, 12
FAST = {"model.d": 16, "model.heads": 2, "model.d_z": 16, "train.epochs": 2, "train.batch_size": 8,
        "train.val_fraction": 0.0}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HILBERT_WORKSPACE", raising=False)


# --- helpers ------------------------------------------------------------------------------------

def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback
        traceback.print_exception(*res.exc_info)
    return res


def error_lines(res) -> list[str]:
    return [line for line in res.output.splitlines() if line.startswith(("error:", "problem:"))]


def assert_one_line_failure(res, *names):
    """Exit 1, no traceback, and exactly one error line, which names every one of `names`."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit)), res.output
    lines = error_lines(res)
    assert len(lines) == 1, res.output
    for name in names:
        assert str(name) in " ".join(res.output.split()), res.output  # rich may wrap a long line
    return lines[0]


def strict_load(path_or_text):
    """json.loads that refuses NaN and Infinity (what jq and every other strict parser do)."""
    text = path_or_text.read_text() if hasattr(path_or_text, "read_text") else path_or_text

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def recording(path, seconds=3.0, cues=((0.2, 1.2, "hello there"), (1.4, 2.6, "fine thanks."))):
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE)
    if cues is not None:
        path.with_suffix(".json").write_text(json.dumps([{"start": s, "end": e, "text": x} for s, e, x in cues]))
    return path


def full_disk(monkeypatch, when):
    """os.replace raises ENOSPC for every target for which `when(path)` is true: the disk fills up there.
    Returns `free()`, which makes room again."""
    real, full = os.replace, [True]

    def replace(src, dst, *a, **kw):
        if full and when(str(dst)):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **kw)
    monkeypatch.setattr(atomic.os, "replace", replace)
    return lambda: full.clear()


# --- segment --------------------------------------------------------------------------------------

@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for name in ("A", "B"):
        recording(root / f"{name}.wav")
    (root / "labels.csv").write_text("id,t\nA,x\nB,y\n")
    return root


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_segment_workspace_that_is_a_file(corpus, tmp_path, where):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    ws = blocker if where == "file" else blocker / "ws"
    res = cli("segment", corpus, "-w", ws)
    line = assert_one_line_failure(res, blocker)
    assert "--workspace" in line and "not a folder" in line
    assert blocker.read_text() == "a file, not a folder"


def test_segment_full_disk_keeps_finished_documents(corpus, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    free = full_disk(monkeypatch, lambda dst: dst.endswith(os.path.join("segments", "B.json")))
    res = cli("segment", corpus, "-w", ws)
    assert "disk is full" in assert_one_line_failure(res, "B.json")
    assert (ws / "segments" / "A.json").is_file() and not list((ws / "segments").glob(".*tmp"))
    free()
    again = cli("segment", corpus, "-w", ws)
    assert again.exit_code == 0, again.output
    assert "1 document(s) already segmented" in again.output


def test_segment_unreadable_recording_is_its_own_problem(corpus, tmp_path, monkeypatch):
    import hilbert_cli.corpus.segment as segment_mod

    real = segment_mod.file_sha256

    def sha(path):
        if str(path).endswith("B.wav"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(segment_mod, "file_sha256", sha)
    res = cli("segment", corpus, "-w", tmp_path / "ws")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    problems = [line for line in error_lines(res) if line.startswith("problem:")]
    assert len(problems) == 1 and "B.wav: cannot read it: permission denied" in problems[0]
    assert sorted(Workspace(tmp_path / "ws").load_manifest().documents) == ["A"]


def test_segment_inputs_as_researchers_save_them(tmp_path):
    """labels.csv in UTF-16 with ';', an NFD file name, near-miss ids, a broken link, an empty file, a NaN cue
    and a too-short recording: each its own line, naming its file; the good documents are segmented."""
    root = tmp_path / "corpus"
    root.mkdir()
    cafe_nfd = unicodedata.normalize("NFD", "café")
    for name in ("GOOD", cafe_nfd, "007", "X01"):
        recording(root / f"{name}.wav")
    (root / "LINK.wav").symlink_to(root / "gone-for-good.wav")
    (root / "EMPTY.wav").write_bytes(b"")
    recording(root / "NANCUE.wav", cues=None)
    (root / "NANCUE.json").write_text('[{"start": 0.2, "end": NaN, "text": "hello there"}]')
    recording(root / "SHORT.wav", seconds=0.4, cues=((0.0, 0.3, "hi"),))
    labels = ("id;t\nGOOD;a\n café ;b\n7;a\nx01;b\nLINK;a\nEMPTY;b\nNANCUE;a\nSHORT;b\n")
    (root / "labels.csv").write_bytes(labels.encode("utf-16"))  # with a BOM, as Excel's "Unicode text"

    res = cli("segment", root, "-w", tmp_path / "ws")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    problems = [line for line in error_lines(res) if line.startswith("problem:")]
    text = " ".join(res.output.split())

    def one(needle, *also):
        hits = [p for p in problems if needle in p]
        assert len(hits) == 1, (needle, problems)
        for a in also:
            assert a in " ".join(" ".join(problems).split()), (a, problems)

    one("LINK.wav: broken link", "gone-for-good.wav")
    one("EMPTY.wav: empty file (0 bytes)")
    one("NANCUE.json: cue 1", "not a finite number")
    one("SHORT.wav: too short (0.40 s", "--min-seconds")
    one("007.wav: no row with id '007'", "did you mean '7'?")
    one("X01.wav: no row with id 'X01'", "did you mean 'x01'?")
    assert "did you mean '007'?" in text and "did you mean 'X01'?" in text  # and the label rows' side
    assert "café" not in " ".join(problems)  # NFC on both sides, spaces trimmed: a match
    manifest = Workspace(tmp_path / "ws").load_manifest()
    assert sorted(manifest.documents) == sorted(["GOOD", "café"])
    assert manifest.task_labels("t") == {"GOOD": "a", "café": "b"}

    lower = cli("segment", root, "-w", tmp_path / "ws", "--min-seconds", "0.2")  # the option lowers the minimum
    assert not any("SHORT" in p for p in error_lines(lower)), lower.output


def test_labels_csv_utf8_with_and_without_bom_and_commas(tmp_path):
    from hilbert_cli.corpus.reading import read_corpus

    for n, data in enumerate([b"\xef\xbb\xbfid,t\nA,x\n", b"id,t\r\nA,x\r\n", "id;t\nA;x\n".encode("utf-16")]):
        root = tmp_path / f"c{n}"
        root.mkdir()
        recording(root / "A.wav", cues=None)
        (root / "labels.csv").write_bytes(data)
        c = read_corpus(root)
        assert c.problems == [] and c.tasks == ["t"] and c.documents[0].labels == {"t": "x"}, n


# --- embed and train ------------------------------------------------------------------------------

@pytest.fixture
def labelled(tmp_path, monkeypatch):
    """A labelled workspace whose embeddings come from a stand-in (planted signal, no encoder)."""
    A, T, y = synthetic_embeddings(16, 2, segments=(2, 4), d_audio=DA, d_text=DT, signal=1.0, seed=3)
    ws = Workspace(tmp_path / "ws")
    docs = {f"P{i:02d}": {"audio": f"P{i:02d}.wav", "audio_sha256": "0", "subject": f"S{i}",
                          "labels": {"dx": ["no", "yes"][int(y[i])]}} for i in range(16)}
    ws.write_manifest(Manifest(str(tmp_path), docs, ["dx"], {}))
    vectors = {d: (A[i], T[i]) for i, d in enumerate(docs)}
    monkeypatch.setattr(embed, "document_embeddings", lambda workspace, doc_ids, *a, **kw: {d: vectors[d] for d in doc_ids})
    monkeypatch.setattr(embed, "backbone_fingerprint", lambda name, allow_download=False: f"fp-{name}")
    return ws


def test_embed_workspace_under_a_file(tmp_path):
    blocker = tmp_path / "ws.zip"
    blocker.write_bytes(b"PK")
    line = assert_one_line_failure(cli("embed", "-w", blocker / "ws"), blocker)
    assert "not a folder" in line


@pytest.mark.parametrize("bad", ["folder", "under-file"])
def test_train_output_that_cannot_be_written_stops_before_training(labelled, tmp_path, monkeypatch, bad):
    trained = []
    monkeypatch.setattr("hilbert_cli.learn.train.fit", lambda *a, **kw: trained.append(1))
    if bad == "folder":
        out = tmp_path / "model.pt"
        out.mkdir()
        expect = "is a folder"
    else:
        (tmp_path / "results").write_text("a file")
        out = tmp_path / "results" / "model.pt"
        expect = "not a folder"
    line = assert_one_line_failure(cli("train", "--task", "dx", "-o", out, "-w", labelled.root), out)
    assert "-o" in line and expect in line and trained == []


def test_train_writes_the_model_before_its_plot(labelled, tmp_path):
    out = tmp_path / "m.pt"
    (tmp_path / "m.losses.png").mkdir()  # the plot's place is taken by a folder: its write fails, last
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  d: 16\n  heads: 2\n  d_z: 16\ntrain:\n  epochs: 2\n  val_fraction: 0.0\n")
    res = cli("train", "--task", "dx", "--config", cfg, "-o", out, "-w", labelled.root)
    line = assert_one_line_failure(res, "m.losses.png", f"model itself was written to {out}")
    assert "is a folder" in line
    model, meta = load_checkpoint(out)
    assert meta["task"] == "dx" and (tmp_path / "m.losses.csv").is_file() and (tmp_path / "m.config.yaml").is_file()


# --- evaluate -------------------------------------------------------------------------------------

def evaluate_args(ws, name="r"):
    return ["evaluate", "--task", "dx", "--config", "transfer,text-only", "--folds", "3", "--jobs", "1",
            "--name", name, "-w", ws.root]


def test_evaluate_full_disk_at_the_report_keeps_every_cell(labelled, monkeypatch):
    free = full_disk(monkeypatch, lambda dst: dst.endswith(("metrics.json", "report.md")))
    res = cli(*evaluate_args(labelled))
    line = assert_one_line_failure(res, "metrics.json")
    assert "disk is full" in line and "2 finished cell(s) are kept" in line
    cells = labelled.runs_dir / ".cells"
    assert len(list(cells.glob("*.json"))) == 2
    free()
    again = cli(*evaluate_args(labelled))
    assert again.exit_code == 0, again.output
    assert "0 cell(s) trained, 2 kept" in again.output
    strict_load(labelled.runs_dir / "r" / "metrics.json")  # strict JSON: no NaN, no Infinity
    for cell in cells.glob("*.json"):
        strict_load(cell)


def test_evaluate_full_disk_mid_grid_loses_no_finished_cell(labelled, monkeypatch):
    stored = []

    def when(dst):
        if os.sep + ".cells" + os.sep in dst:
            stored.append(dst)
            return len(stored) == 2  # the second cell's write finds the disk full
        return False
    free = full_disk(monkeypatch, when)
    assert "disk is full" in assert_one_line_failure(cli(*evaluate_args(labelled)), ".cells")
    assert len(list((labelled.runs_dir / ".cells").glob("*.json"))) == 1
    free()
    again = cli(*evaluate_args(labelled))
    assert again.exit_code == 0 and "1 cell(s) trained, 1 kept" in again.output, again.output


def test_evaluate_name_that_is_a_file(labelled):
    labelled.runs_dir.mkdir(parents=True)
    (labelled.runs_dir / "r").write_text("not a run folder")
    line = assert_one_line_failure(cli(*evaluate_args(labelled)), labelled.runs_dir / "r")
    assert "--name" in line and "not a folder" in line


def test_an_operating_system_error_nobody_expected_is_one_line(labelled, monkeypatch):
    def refuse(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.manifest_path))
    monkeypatch.setattr(Workspace, "load_manifest", refuse)
    line = assert_one_line_failure(cli(*evaluate_args(labelled)), labelled.manifest_path)
    assert "permission denied" in line


# --- predict --------------------------------------------------------------------------------------

@pytest.fixture
def model(tmp_path, monkeypatch):
    """(model.pt, folder of new recordings with timed transcripts): the encoders are stand-ins."""
    A, T, y = synthetic_embeddings(12, 2, segments=(2, 4), d_audio=DA, d_text=DT, seed=7)
    c = load_config(None, {"configuration": "hilbert", **FAST})
    path = save_checkpoint(tmp_path / "m.pt", fit(c, A, T, y, 2).model, config=c, task="dx", label_names=["no", "yes"],
                           audio="whisper-tiny", text="minilm", d_audio=DA, d_text=DT, segmentation={},
                           fingerprints={"audio": "fa", "text": "ft"})
    monkeypatch.setattr("hilbert_cli.predict.check_backbones", lambda *a, **kw: [])

    def embed_documents(docs, *a, **kw):
        rng = np.random.default_rng(0)
        return {d.doc_id: (rng.normal(size=(len(d.segments), DA)).astype(np.float32),
                           rng.normal(size=(len(d.segments), DT)).astype(np.float32)) for d in docs}
    monkeypatch.setattr(embed, "embed_documents", embed_documents)
    new = tmp_path / "new"
    new.mkdir()
    for name in ("N1", "N2"):
        recording(new / f"{name}.wav")
    return path, new


def test_predict_json_to_standard_output(model, tmp_path):
    path, new = model
    res = cli("predict", path, new, "--json", "-", "-w", tmp_path / "ws")
    assert res.exit_code == 0, res.output
    records = strict_load(res.stdout)  # standard output is the JSON and nothing else
    assert [r["file"].rsplit("/", 1)[-1] for r in records] == ["N1.wav", "N2.wav"]
    assert "p(yes)" in res.stderr  # the table went to standard error


def test_predict_bad_input_files_fail_alone(model, tmp_path):
    path, new = model
    (new / "EMPTY.wav").write_bytes(b"")
    (new / "LINK.wav").symlink_to(tmp_path / "nowhere.wav")
    out = tmp_path / "p.json"
    res = cli("predict", path, new, "--json", out, "-w", tmp_path / "ws")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    problems = [line for line in error_lines(res) if line.startswith("problem:")]
    assert len(problems) == 2 and "2 of 4 file(s)" in res.output
    assert any("EMPTY.wav: empty file" in p for p in problems) and any("LINK.wav: broken link" in p for p in problems)
    records = {r["file"].rsplit("/", 1)[-1]: r for r in strict_load(out)}
    assert records["N1.wav"]["label"] in ("no", "yes") and records["N2.wav"]["error"] is None
    assert records["EMPTY.wav"]["label"] is None and "empty file" in records["EMPTY.wav"]["error"]


def test_predict_output_that_is_a_folder_stops_before_predicting(model, tmp_path):
    path, new = model
    (tmp_path / "p.json").mkdir()
    line = assert_one_line_failure(cli("predict", path, new, "--json", tmp_path / "p.json", "-w", tmp_path / "ws"),
                                   tmp_path / "p.json")
    assert "--json" in line and "is a folder" in line


def test_predict_full_disk_for_one_output_still_writes_the_other(model, tmp_path, monkeypatch):
    path, new = model
    out, explain = tmp_path / "p.json", tmp_path / "seg.csv"
    full_disk(monkeypatch, lambda dst: dst == str(out))
    res = cli("predict", path, new, "--json", out, "--explain", explain, "-w", tmp_path / "ws")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    problems = [line for line in error_lines(res) if line.startswith("problem:")]
    assert len(problems) == 1 and "disk is full" in problems[0] and str(out) in " ".join(res.output.split())
    assert not out.exists() and explain.read_text().startswith("file,index")
    assert "N1.wav" in res.output  # the predictions were shown


def test_predict_nan_probabilities_are_an_error_never_nan_in_json(model, tmp_path, monkeypatch):
    import hilbert_cli.learn.train as train_mod

    path, new = model
    real = train_mod.explain

    def nan_explain(*a, **kw):
        outs = real(*a, **kw)
        outs[0]["proba"] = np.full_like(outs[0]["proba"], np.nan)
        outs[0]["occlusion"] = np.full_like(outs[0]["occlusion"], np.inf)
        return outs
    monkeypatch.setattr(train_mod, "explain", nan_explain)
    out = tmp_path / "p.json"
    res = cli("predict", path, new, "--json", out, "-w", tmp_path / "ws")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    records = strict_load(out)  # no NaN or Infinity constant anywhere
    assert records[0]["label"] is None and "not numbers" in records[0]["error"]
    assert records[1]["error"] is None


def test_strict_json_maps_non_finite_numbers_to_null(tmp_path):
    path = atomic.atomic_write_json(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")],
                                                          "c": np.float32("-inf"), "d": np.array([0.5, np.nan])})
    assert strict_load(path) == {"a": None, "b": [1.0, None], "c": None, "d": [0.5, None]}


# --- workers die with their parent ----------------------------------------------------------------------
_PARENT_SCRIPT = r'''
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
from hilbert_cli.features import embed
from hilbert_cli.evaluation.grid import evaluate
from hilbert_cli.learn.config import load_config
from hilbert_cli.workspace import Manifest, Workspace

def fake(ws, doc_ids, audio, text, **kw):
    rng = np.random.default_rng(0)
    return {d: (rng.normal(size=(20, 8)).astype(np.float32), rng.normal(size=(20, 8)).astype(np.float32)) for d in doc_ids}

if __name__ == "__main__":  # the workers are spawned: they import this file and must not run it
    embed.document_embeddings = fake
    ws = Workspace(sys.argv[1])
    docs = {f"d{i:02d}": {"audio": f"/x/d{i}.wav", "audio_sha256": "0", "subject": f"s{i}",
                          "labels": {"a": str(i % 2), "b": str(i % 3)}} for i in range(40)}
    ws.write_manifest(Manifest("/x", docs, ["a", "b"], {}))
    cfg = load_config(None, {"model.d": 16, "model.heads": 2, "train.epochs": 100000, "train.patience": 100000})
    evaluate(ws, "a,b", "hilbert", "a1", "t1", k=3, config=cfg, run_name="killed", jobs=2)  # runs far longer than the test
'''


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_evaluate_leaves_no_worker_behind(tmp_path, sig):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT_SCRIPT)
    repo = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ws"), repo],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:  # the two pool workers (plus the resource tracker)
            time.sleep(0.5)
            workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
            assert proc.poll() is None, "the evaluate process ended before its workers started"
        assert len(workers) >= 2, "evaluate --jobs 2 started no workers"
        everyone = _children(proc.pid)
        time.sleep(2.0)
        assert proc.poll() is None and all(_alive(p) for p in workers), "the workers are not training"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in everyone):
            time.sleep(0.25)
        assert not [p for p in everyone if _alive(p)], "processes outlived the killed evaluate"
    finally:
        if proc.poll() is None:
            proc.kill()


# --- one command per workspace --------------------------------------------------------------------------
def test_a_busy_workspace_stops_a_second_command_with_one_line(tmp_path):
    ws = Workspace(tmp_path / "ws")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
                               "from hilbert_cli.workspace import Workspace\n"
                               "with Workspace(sys.argv[2]).lock('segment corpus'):\n print('held', flush=True); time.sleep(60)",
                               str(Path(__file__).resolve().parents[1]), str(ws.root)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = CliRunner().invoke(app, ["embed", "-w", str(ws.root)])
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 1 and len(lines) == 1 and "Traceback" not in r.output
        assert "busy" in lines[0] and "segment corpus" in lines[0] and f"pid {holder.pid}" in lines[0]
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is gone with it, and the next command takes the workspace over
    with ws.lock("embed"):
        assert f"pid {os.getpid()}" in (ws.root / ".lock").read_text()


def test_a_multi_line_library_error_is_one_line(tmp_path, monkeypatch):
    """Network libraries raise messages over several lines (`--allow-download` with no network): one line."""
    from hilbert_cli.corpus import segment as segment_mod
    from hilbert_cli.errors import HilbertError

    def offline(*a, **k):
        raise HilbertError("--asr faster-whisper:small: could not download it (HTTPSConnectionPool(host='x'):\n"
                           "  Max retries exceeded\n  (Caused by NameResolutionError)); check the network.")

    monkeypatch.setattr(segment_mod, "segment_corpus", offline)
    (tmp_path / "c").mkdir()
    r = CliRunner().invoke(app, ["segment", str(tmp_path / "c"), "-w", str(tmp_path / "ws"), "--allow-download"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "Max retries exceeded (Caused by" in lines[0]
