"""Tiny randomly initialised models, saved the way a user's real checkpoints are, so the tests run the
real by-path loading code (transformers, sentence-transformers, openai-whisper) in seconds."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from hilbert_cli.corpus.audio import SAMPLE_RATE, file_sha256
from hilbert_cli.workspace import Manifest, Segment, SegmentedDoc, Workspace

WORDS = "the a and of to in is was it that i you he she we they said yes no well so very good bad day night".split()


def _seed():
    import torch

    torch.manual_seed(0)


# the wav2vec2 family's tiny sizes: 2 layers of width 16 over a 7-layer conv front end of width 8
_TINY_W2V = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=32)


def _w2v_family_dir(path: Path, config_cls, model_cls, return_attention_mask: bool, **config) -> Path:
    """Save a tiny wav2vec2-family model and its feature extractor, as a real checkpoint folder is."""
    from transformers import Wav2Vec2FeatureExtractor

    _seed()
    model_cls(config_cls(**_TINY_W2V, **config)).save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
                             return_attention_mask=return_attention_mask).save_pretrained(path)
    return path


def hubert_dir(root: Path) -> Path:
    """2-layer HuBERT, feature extractor without attention mask (like hubert-large-ls960-ft)."""
    from transformers import HubertConfig, HubertModel

    return _w2v_family_dir(root / "tiny-hubert", HubertConfig, HubertModel, return_attention_mask=False)


def wav2vec2_dir(root: Path) -> Path:
    """2-layer stable-layer-norm wav2vec2 whose feature extractor asks for an attention mask (like -lv60-self)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    return _w2v_family_dir(root / "tiny-wav2vec2", Wav2Vec2Config, Wav2Vec2Model, return_attention_mask=True,
                           feat_extract_norm="layer", do_stable_layer_norm=True)


def hf_whisper_dir(root: Path) -> Path:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    _seed()
    cfg = WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=2, decoder_layers=1,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                        max_source_positions=1500, max_target_positions=32, vocab_size=100,
                        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    path = root / "tiny-hf-whisper"
    WhisperModel(cfg).save_pretrained(path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(path)
    return path


def openai_whisper_file(root: Path) -> Path:
    import torch
    from whisper.model import ModelDimensions, Whisper

    _seed()
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=16, n_audio_head=2, n_audio_layer=2,
                           n_vocab=100, n_text_ctx=16, n_text_state=16, n_text_head=2, n_text_layer=1)
    path = root / "tiny-whisper.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


def sentence_dir(root: Path) -> Path:
    """A 2-layer BERT with a word-level vocabulary and mean pooling, saved as a sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    _seed()
    hf = root / "tiny-bert-hf"
    hf.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (hf / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab_file=str(hf / "vocab.txt")).save_pretrained(hf)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(hf)
    word = Transformer(str(hf), max_seq_length=64)
    path = root / "tiny-sbert"
    width = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    SentenceTransformer(modules=[word, Pooling(width(), "mean")]).save(str(path))
    return path


def _byte_level_alphabet() -> list[str]:
    """The 256 characters byte-level BPE (GPT-2, RoBERTa) writes bytes as, so any text tokenises."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), ord("\u00ff") + 1)]
    extra = [b for b in range(256) if b not in bs]
    return [chr(b) for b in bs] + [chr(256 + i) for i in range(len(extra))]


def clap_dir(root: Path) -> Path:
    """A tiny ClapModel (2-layer RoBERTa text tower, 2-stage HTSAT audio tower, 8-d projections) saved with a
    ClapFeatureExtractor and a byte-level RoBERTa tokenizer, as laion/clap-htsat-unfused is. Its clips are 2 s
    (16 mel bands) instead of 10 s (64), so chunking shows on short audio."""
    import json

    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        RobertaTokenizer,
    )

    _seed()
    path = root / "tiny-clap"
    path.mkdir(parents=True)
    vocab = ["<s>", "<pad>", "</s>", "<unk>", *_byte_level_alphabet(), "<mask>"]
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n")  # no merges: one token per byte
    RobertaTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=64).save_pretrained(path)
    ClapFeatureExtractor(feature_size=16, max_length_s=2, truncation="rand_trunc").save_pretrained(path)
    text = {"vocab_size": len(vocab), "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 32, "max_position_embeddings": 66}
    audio = {"spec_size": 64, "num_mel_bins": 16, "window_size": 4, "depths": [1, 1], "num_attention_heads": [1, 2],
             "patch_embeds_hidden_size": 8, "hidden_size": 16}
    cfg = ClapConfig(text_config=text, audio_config=audio, projection_dim=8)
    ClapModel(cfg).save_pretrained(path)
    return path


def make_workspace(root: Path, durations=(40.0, 12.0), seg_len=5.0, gap=1.0) -> Workspace:
    """A workspace with one document per duration: noisy tones as audio, segments every seg_len+gap s."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace(root / "ws")
    docs = {}
    for k, dur in enumerate(durations):
        doc_id = f"P{k:03d}"
        t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
        wav = 0.1 * np.sin(2 * np.pi * (150 + 40 * k) * t) + 0.02 * rng.standard_normal(t.size)
        path = root / f"{doc_id}.wav"
        sf.write(path, wav.astype(np.float32), SAMPLE_RATE)
        segs, start, i = [], 0.0, 0
        while start + 0.5 < dur:
            text = " ".join(rng.choice(WORDS, size=8))
            segs.append(Segment(doc_id, i, start, min(dur, start + seg_len), text, "transcript"))
            start, i = start + seg_len + gap, i + 1
        sha = file_sha256(path)
        ws.write_doc(SegmentedDoc(doc_id, str(path.resolve()), sha, dur, segs))
        docs[doc_id] = {"audio": str(path.resolve()), "audio_sha256": sha, "subject": None, "labels": {}}
    ws.write_manifest(Manifest(str(root), docs, [], {}))
    return ws
