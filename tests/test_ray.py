"""--engine ray: the same embeddings (bit for bit) and the same AUC report as the local engine, results kept in the
workspace's caches (a local run afterwards computes nothing), a killed worker retried with no document lost, a
document's own error as its one line, and the message when the extra is not installed.

One Ray for the module (2 CPUs, started once); skipped without the `ray` extra, except the missing-extra test."""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tiny_models as tm
from hilbert_cli.cli import app
from hilbert_cli.engine import RAY_MISSING, LocalEngine, make_engine
from hilbert_cli.errors import HilbertError
from hilbert_cli.features import embed, encoders
from hilbert_cli.features.embed import embed_corpus
from hilbert_cli.learn.config import load_config

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    ray = pytest.importorskip("ray")
    # the workers import hilbert_cli from this checkout, as the driver does
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this module's job functions, by value
    yield ray
    ray.shutdown()


def test_without_the_extra_ray_engine_names_the_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when it is not installed
    with pytest.raises(HilbertError) as e:
        make_engine("ray")
    assert str(e.value) == RAY_MISSING
    ws = tm.make_workspace(tmp_path, durations=(3.0,))
    res = CliRunner().invoke(app, ["embed", "--engine", "ray", "-w", str(ws.root)])
    assert res.exit_code == 1 and "pip install 'hilbert-cli[ray]'" in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    # Ray's options without --engine ray, and an unknown engine: one line each, before any work
    res = CliRunner().invoke(app, ["embed", "--workers", "2", "-w", str(ws.root)])
    assert res.exit_code == 1 and "--workers: only the Ray engine uses it" in res.output
    res = CliRunner().invoke(app, ["embed", "--engine", "spark", "-w", str(ws.root)])
    assert res.exit_code == 1 and "unknown engine 'spark'" in res.output
    assert not ws.embeddings_dir.exists() or not any(ws.embeddings_dir.rglob("*.npz"))


def _vectors(ws) -> dict:
    out = {}
    for f in sorted(ws.embeddings_dir.rglob("*.npz")):
        with np.load(f) as z:
            out[str(f.relative_to(ws.embeddings_dir))] = (z["vectors"].copy(), str(z["meta"]))
    return out


def test_embed_on_ray_is_bit_identical_and_a_local_run_then_finds_everything_cached(ray_local, tmp_path, monkeypatch):
    models = tmp_path / "models"
    hubert, sbert = str(tm.hubert_dir(models)), str(tm.sentence_dir(models))
    durations = (9.0, 6.0, 4.0)
    local_ws = tm.make_workspace(tmp_path / "local", durations=durations)
    ray_ws = tm.make_workspace(tmp_path / "ray", durations=durations)  # the same recordings and segments
    # torch's CPU kernels split their sums by thread, so bits match at the same thread count: the workers' is
    # --cpus-per-worker (1 here), the local run's torch's own setting, held at 1 for the comparison
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = embed_corpus(local_ws, hubert, sbert)
    finally:
        torch.set_num_threads(threads)
    with make_engine("ray", workers=2) as engine:
        done = []
        r = embed_corpus(ray_ws, hubert, sbert, engine=engine, progress=lambda *a: done.append(a))
    assert (r.docs, r.audio_computed, r.text_computed) == (3, 3, 3)
    assert (r.audio_dim, r.text_dim) == (local.audio_dim, local.text_dim) == (16, 16)
    assert ("audio", 3, 3) in done and r.audio_seconds == pytest.approx(local.audio_seconds)
    a, b = _vectors(local_ws), _vectors(ray_ws)
    assert sorted(a) == sorted(b) and len(a) == 6  # the same cache files, by content address
    for name in a:
        assert a[name][1] == b[name][1] and a[name][0].tobytes() == b[name][0].tobytes(), name  # bit for bit

    built = []  # a local run afterwards: everything cached, no model loaded
    monkeypatch.setattr(encoders, "load_encoder", lambda *a, **k: built.append(a) or pytest.fail("a model was loaded"))
    again = embed_corpus(ray_ws, hubert, sbert)
    assert (again.audio_computed, again.text_computed, again.audio_cached, again.text_cached) == (0, 0, 3, 3)
    assert built == []


def test_evaluate_on_ray_writes_the_local_report(ray_local, tmp_path, monkeypatch):
    from test_evaluate import SMALL, _fake_embeddings, _workspace

    monkeypatch.setattr(embed, "document_embeddings", _fake_embeddings)  # the features: on the driver
    cfg = load_config(None, SMALL)
    local_ws, ray_ws = _workspace(tmp_path / "local", n=16), _workspace(tmp_path / "ray", n=16)
    local = evaluate_grid(local_ws, cfg, jobs=1)
    with make_engine("ray") as engine:
        with pytest.raises(HilbertError, match="--jobs: .* leave --jobs out"):
            evaluate_grid(ray_ws, cfg, jobs=2, engine=engine)
        remote = evaluate_grid(ray_ws, cfg, engine=engine)
    assert remote.n_trained == local.n_trained == 4
    m_local = json.loads((local.run_dir / "metrics.json").read_text())
    m_ray = json.loads((remote.run_dir / "metrics.json").read_text())
    assert m_ray == m_local  # every figure, to the last digit
    table = lambda r: (r.run_dir / "report.md").read_text().split("\n## ")[1]  # noqa: E731 (the AUC table)
    assert table(remote) == table(local)
    again = evaluate_grid(ray_ws, cfg, jobs=1)  # the cells Ray trained are kept: a local run trains none
    assert again.n_trained == 0 and again.n_cached == 4


def evaluate_grid(ws, cfg, **kw):
    from hilbert_cli.evaluation.grid import evaluate

    return evaluate(ws, "voice,words", "transfer,hilbert", "a1", "t1", k=3, config=cfg, run_name="r", **kw)


# --- faults: a worker killed mid-run, a document that fails for its own reason ----------------------------

def _pid_state():
    return os.getpid()


def _slow_job(state, item, report):
    if item == "bad":
        raise HilbertError("bad.wav: too short to hold speech; remove it.")
    time.sleep(0.4)
    return item, os.getpid()


def test_a_killed_worker_is_restarted_and_no_document_is_lost(ray_local):
    items = ["d0", "d1", "bad", "d3", "d4", "d5", "d6", "d7"]
    local = {i: (r, e and str(e)) for i, r, e in LocalEngine().map_documents(_pid_state, _slow_job, items)}
    with make_engine("ray", workers=2) as engine:
        got, killed = {}, None
        for i, result, error in engine.map_documents(_pid_state, _slow_job, items):
            got[i] = (result, error)
            if killed is None:  # the first document is back: kill a worker while it holds another
                killed = engine.worker_pids()[0]
                os.kill(killed, signal.SIGKILL)
    assert sorted(got) == list(range(len(items)))  # every document done, none twice
    assert [got[i][0][0] for i in got if items[i] != "bad"] == [items[i] for i in got if items[i] != "bad"]
    assert str(got[2][1]) == local[2][1] == "bad.wav: too short to hold speech; remove it."  # its own line, as locally
    assert got[2][0] is None and isinstance(got[2][1], HilbertError)
    pids_after = {got[i][0][1] for i in range(3, len(items)) if got[i][0] is not None}
    assert killed is not None and len(pids_after) >= 1


def _broken_state():
    raise HilbertError("backbone tiny: cannot load the model at /models/tiny (no weights); check the files.")


def test_a_model_that_cannot_load_on_the_workers_stops_the_run_with_its_line(ray_local):
    with make_engine("ray", workers=2) as engine, pytest.raises(HilbertError, match="^backbone tiny: cannot load"):
        list(engine.map_documents(_broken_state, _slow_job, ["d0", "d1", "d2"]))
