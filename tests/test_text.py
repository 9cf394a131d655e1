"""belamy.text: tokenizer rules, encoder padding invariance, contrastive pretraining that learns, save/load, and the
sentence-transformers wrapper on a tiny randomly initialised local model."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import save_file

from belamy.data.shapes import SHAPES_SEED, render_scenes
from belamy.text import PAD_ID, UNK_ID, ImageEncoder, SentenceTransformerEncoder, TextEncoder, TextEncoderError, \
    Tokenizer, load_text_encoder, pretrain_text_encoder, save_text_encoder
from belamy.text.pretrain import CONFIG_FILE, WEIGHTS_FILE

from helpers import tiny_sentence_transformer


# ---- Tokenizer ----

def test_words_lower_case_punctuation_and_hyphens():
    tok = Tokenizer([])
    assert tok.words("A Red STAR, in the upper-left corner!") == ["a", "red", "star", "in", "the", "upper", "left",
                                                                  "corner"]
    assert tok.words("two shapes: a  box; a disk.") == ["two", "shapes", "a", "box", "a", "disk"]
    assert tok.words("  ...  ") == []


def test_ids_by_frequency_then_alphabetical_and_deterministic():
    captions = ["a red star", "a blue star", "a red box", "Zebra"]
    tok = Tokenizer.build(captions)
    # counts: a 3, red 2, star 2, blue 1, box 1, zebra 1
    assert tok.vocabulary == ("a", "red", "star", "blue", "box", "zebra")
    assert len(tok) == 8  # + <pad>, <unk>
    assert tok.encode("a red star", 10) == [2, 3, 4]
    assert Tokenizer.build(list(reversed(captions))).vocabulary == tok.vocabulary
    assert Tokenizer.build(captions, min_count=2).vocabulary == ("a", "red", "star")
    assert Tokenizer.build(captions, max_size=2).vocabulary == ("a", "red")


def test_unknown_and_nearest_words():
    tok = Tokenizer.build(["a red circle", "a purple square", "a green triangle"])
    assert tok.encode("a Magenta circel", 10) == [tok.encode("a", 1)[0], UNK_ID, UNK_ID]
    assert tok.unknown_words("a magenta circel and a magenta box") == ["magenta", "circel", "and", "box"]
    assert tok.unknown_words("A RED circle.") == []
    assert tok.nearest_words("circel") == ["circle"]
    assert tok.nearest_words("Purpel")[0] == "purple"
    assert tok.nearest_words("xyzzy") == []
    assert tok.decode(tok.encode("a red blob", 10)) == "a red <unk>"


def test_padding_and_truncation():
    tok = Tokenizer.build(["one two three four five"])
    assert tok.encode("one two three four five", 3) == tok.encode("one two three", 10)
    batch = tok.encode_batch(["one two", "one two three four five", ""], max_length=4)
    assert batch.dtype == torch.int64 and batch.shape == (3, 4)  # L = min(max_length, longest)
    assert batch[0, 2:].tolist() == [PAD_ID, PAD_ID] and batch[2].tolist() == [PAD_ID] * 4
    assert tok.encode_batch(["one", "two"], max_length=10).shape == (2, 1)
    assert tok.encode_batch([""], max_length=10).shape == (1, 1)  # never a zero-length tensor


def test_json_round_trip_and_validation():
    tok = Tokenizer.build(["a red circle on blue", "a blue square"])
    again = Tokenizer.from_json(json.loads(json.dumps(tok.to_json())))
    assert again.vocabulary == tok.vocabulary and again.encode("a blue box", 5) == tok.encode("a blue box", 5)
    with pytest.raises(ValueError, match="single lower-case words"):
        Tokenizer(["red", "upper-left"])
    with pytest.raises(ValueError, match="duplicate"):
        Tokenizer(["red", "red"])
    with pytest.raises(ValueError, match="vocabulary"):
        Tokenizer.from_json({"words": []})


# ---- Encoders ----

def test_text_encoder_shapes_and_padding_invariance():
    torch.manual_seed(0)
    tok = Tokenizer.build(["a small red circle in the upper left", "a blue box"])
    enc = TextEncoder(len(tok), embed_dim=16, hidden_dim=8).eval()
    assert enc.dim == 16 and TextEncoder(**enc.config()).config() == enc.config()
    batch = tok.encode_batch(["a blue box", "a small red circle in the upper left"], max_length=24)
    words, sentence = enc(batch)
    assert words.shape == (2, 8, 16) and sentence.shape == (2, 16)
    assert torch.all(words[0, 3:] == 0)  # no features at padding
    alone_words, alone = enc(tok.encode_batch(["a blue box"], max_length=24))
    torch.testing.assert_close(sentence[0], alone[0], atol=1e-6, rtol=1e-5)  # padding changes nothing
    torch.testing.assert_close(words[0, :3], alone_words[0], atol=1e-6, rtol=1e-5)
    extra = torch.cat([batch, torch.zeros(2, 5, dtype=torch.int64)], dim=1)  # more padding, same embeddings
    torch.testing.assert_close(enc(extra)[1], sentence, atol=1e-6, rtol=1e-5)


def test_text_encoder_length_zero_is_safe():
    enc = TextEncoder(10, embed_dim=8, hidden_dim=4)
    words, sentence = enc(torch.zeros(3, 5, dtype=torch.int64))
    assert words.shape == (3, 5, 8) and sentence.shape == (3, 8) and torch.isfinite(sentence).all()
    sentence.sum().backward()  # trains through it too


def test_image_encoder_any_size_and_channels():
    for channels, size in ((3, 32), (1, 28), (3, 8), (4, 65)):
        out = ImageEncoder(12, channels, width=4)(torch.randn(2, channels, size, size))
        assert out.shape == (2, 12)


# ---- Pretraining ----

@pytest.fixture(scope="module")
def scenes():
    return render_scenes(1500, 32, SHAPES_SEED, "train")  # a prefix of the `shapes` set (seeded, same everywhere)


@pytest.fixture(scope="module")
def pretrained(scenes):
    return pretrain_text_encoder(scenes, steps=150, batch_size=64, seed=1, lr=3e-3, embed_dim=64, hidden_dim=64)


def test_pretraining_learns_retrieval(scenes, pretrained):
    f = pretrained.figures
    # Measured (1,500 scenes, 150 steps, lr 3e-3, seeds 1 and 0): image->text 0.070 and 0.059, text->image 0.066
    # and 0.094 among 256 held-out pairs (300 steps: 0.082-0.117, 0.10-0.16); chance 1/256 = 0.0039. Require 10x.
    assert f["chance_recall_at_1"] == pytest.approx(1 / 256)
    assert f["image_to_text_recall_at_1"] > 10 * f["chance_recall_at_1"], f
    assert f["text_to_image_recall_at_1"] > 10 * f["chance_recall_at_1"], f
    assert f["train_images"] == 1200 and f["steps"] == 150
    untrained = pretrain_text_encoder(scenes, steps=0, seed=1, embed_dim=64, hidden_dim=64).figures
    assert untrained["image_to_text_recall_at_1"] < 5 * untrained["chance_recall_at_1"], untrained
    assert untrained["text_to_image_recall_at_1"] < 5 * untrained["chance_recall_at_1"], untrained


def test_pretraining_is_seeded(scenes):
    a, b = (pretrain_text_encoder(scenes, steps=2, batch_size=8, seed=3, embed_dim=8, hidden_dim=8)
            for _ in range(2))
    assert a.tokenizer.vocabulary == b.tokenizer.vocabulary
    for (name, x), y in zip(a.encoder.state_dict().items(), b.encoder.state_dict().values()):
        assert torch.equal(x, y), name


def test_save_load_round_trip(tmp_path, pretrained):
    save_text_encoder(tmp_path, pretrained)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temporary files left
    tokenizer, encoder, meta = load_text_encoder(tmp_path)
    assert tokenizer.vocabulary == pretrained.tokenizer.vocabulary and not encoder.training
    assert meta["max_length"] == pretrained.max_length and meta["figures"] == pretrained.figures
    texts = ["a big red star in the upper left", "a blue box on a white background", "a zorblax"]
    tokens = tokenizer.encode_batch(texts, meta["max_length"])
    with torch.no_grad():
        for x, y in zip(encoder(tokens), pretrained.encoder(tokens)):
            assert torch.equal(x, y)


def test_load_errors_name_the_file(tmp_path, pretrained):
    with pytest.raises(TextEncoderError, match=CONFIG_FILE):
        load_text_encoder(tmp_path / "nowhere")
    save_text_encoder(tmp_path, pretrained)
    (tmp_path / WEIGHTS_FILE).rename(tmp_path / "elsewhere.safetensors")
    with pytest.raises(TextEncoderError, match=f"{WEIGHTS_FILE} not found"):
        load_text_encoder(tmp_path)
    save_file({"embed.weight": torch.zeros(3, 3)}, str(tmp_path / WEIGHTS_FILE))  # weights of another net
    with pytest.raises(TextEncoderError, match=f"{WEIGHTS_FILE} does not fit"):
        load_text_encoder(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(TextEncoderError, match=WEIGHTS_FILE):
        load_text_encoder(tmp_path)
    meta = json.loads((tmp_path / CONFIG_FILE).read_text())
    meta["encoder"]["vocab_size"] += 1
    (tmp_path / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(TextEncoderError, match=f"{CONFIG_FILE} is not a valid.*token ids"):
        load_text_encoder(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{broken")
    with pytest.raises(TextEncoderError, match=CONFIG_FILE):
        load_text_encoder(tmp_path)


# ---- sentence-transformers ----

def test_sentence_transformer_needs_a_local_folder(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        SentenceTransformerEncoder(tmp_path / "file.txt")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install sentence-transformers"):
        SentenceTransformerEncoder(tmp_path)


def test_sentence_transformer_encoder_on_a_tiny_local_model(tmp_path):
    path = tiny_sentence_transformer(tmp_path)
    enc = SentenceTransformerEncoder(path)
    texts = ["a red circle on the left", "a blue square", "a star on a red background"]
    out = enc.encode_texts(texts)
    assert enc.dim == 32 and out.shape == (3, 32) and out.dtype == torch.float32 and not out.requires_grad
    assert torch.equal(enc.encode_texts(texts), out)  # deterministic: eval mode, no dropout
    torch.testing.assert_close(enc.encode_texts(texts[1:2])[0], out[1], atol=1e-5, rtol=1e-4)  # batch-independent
    assert not enc.train().training and not any(p.requires_grad for p in enc.parameters())
    again = SentenceTransformerEncoder(path)
    torch.testing.assert_close(again.encode_texts(texts), out)
