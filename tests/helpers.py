"""Small shared pieces of the tests."""

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

# A DCGAN small enough to train in seconds on scikit-learn's 8x8 digits.
TINY_DCGAN = {"model": "dcgan", "data": "digits", "options": {"latent_dim": 16, "g_width": 16, "d_width": 16},
              "batch_size": 32, "sample_every": 0, "log_every": 10, "progress": False}


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli(*args: str) -> SimpleNamespace:
    """`belamy ARGS` in this process (no second torch import per call), with its exit status and output."""
    from belamy.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def tiny_sentence_transformer(folder):
    """A randomly initialised 2-layer BERT (hidden 32) with a word-level WordPiece vocabulary, mean-pooled."""
    st = pytest.importorskip("sentence_transformers")
    transformers = pytest.importorskip("transformers")
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer
    bert = folder / "bert"
    bert.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "blue", "circle", "square", "star", "on",
             "the", "left", "right", "background"]
    (bert / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizer(str(bert / "vocab.txt")).save_pretrained(str(bert))
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=32)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(str(bert))
    model = st.SentenceTransformer(modules=[Transformer(str(bert)), Pooling(32, "mean")], device="cpu")
    model.save(str(folder / "model"))
    return folder / "model"
