"""A frozen sentence-transformers model (Reimers & Gurevych 2019) as a text encoder, loaded from a local folder only.

belamy never downloads weights: save a model with `SentenceTransformer(...).save(folder)` on a machine that can fetch
it, copy the folder, and pass its path. The optional dependency: pip install sentence-transformers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

INSTALL_HINT = "pip install sentence-transformers"


class SentenceTransformerEncoder(nn.Module):
    def __init__(
        self,
        path: str | Path,  # a local folder written by SentenceTransformer.save (never a hub model name)
        device: str = "cpu",  # where the model runs; encode_texts returns tensors there
        batch_size: int = 64,  # texts encoded at once
    ) -> None:
        super().__init__()
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder: SentenceTransformerEncoder loads a model saved "
                                    f"locally (SentenceTransformer.save); it never downloads one")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError(f"SentenceTransformerEncoder needs sentence-transformers: {INSTALL_HINT} ({e})") \
                from None
        self.path, self.device_name, self.batch_size = str(folder), device, batch_size
        self.model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        self.model.requires_grad_(False)
        self.model.eval()
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
        self.dim: int = int(get_dim())

    def config(self) -> dict:
        return {"path": self.path, "device": self.device_name, "batch_size": self.batch_size}

    def train(self, mode: bool = True) -> SentenceTransformerEncoder:
        return super().train(False)  # frozen: always in eval mode (no dropout)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> Tensor:
        """texts -> sentence embeddings [B, dim] float32, on `device`, without gradients."""
        out = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_tensor=True,
                                show_progress_bar=False, device=self.device_name)
        return out.float().reshape(len(texts), self.dim)

    def forward(self, texts: list[str]) -> Tensor:
        return self.encode_texts(texts)


def is_sentence_transformer(path: str | Path) -> bool:
    """Whether `path` is a folder written by SentenceTransformer.save (it lists its modules in modules.json)."""
    return bool(path) and (Path(path).expanduser() / "modules.json").is_file()


class SentenceTransformerTokens(nn.Module):
    """A frozen sentence-transformers model behind belamy's token interface, so that a text-to-image generator takes
    the same inputs whichever encoder it has: token ids [B, L] -> the words they stand for (belamy's tokenizer:
    lower case, punctuation dropped) -> (None, sentence embeddings [B, dim]).

    The model is kept outside the module tree: its weights (22M for all-MiniLM-L6-v2) stay in its own folder, not in
    every checkpoint, and an EMA copy of the generator shares it. Embeddings are cached per text: a training set's
    captions are encoded once."""

    def __init__(self, path: str | Path, vocabulary: list[str] | tuple[str, ...], cache_size: int = 200_000) -> None:
        super().__init__()
        from belamy.text.tokenizer import Tokenizer

        self.tokenizer = Tokenizer(vocabulary)
        self._encoder = [SentenceTransformerEncoder(path)]  # a list: not a submodule (see above)
        self.path, self.dim, self.cache_size = self._encoder[0].path, self._encoder[0].dim, cache_size
        self._cache: dict[str, Tensor] = {}

    def __deepcopy__(self, memo: dict) -> SentenceTransformerTokens:
        import copy

        return copy.copy(self)  # no weights of its own: copies share the frozen model and its cache

    def forward(self, tokens: Tensor) -> tuple[None, Tensor]:
        texts = [self.tokenizer.decode(row) for row in tokens.tolist()]
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            encoder = self._encoder[0]
            if encoder.device_name != str(tokens.device):  # follow the generator to its device
                encoder.model.to(tokens.device)
                encoder.device_name = str(tokens.device)
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            self._cache.update(zip(missing, encoder.encode_texts(missing).cpu()))
        return None, torch.stack([self._cache[t] for t in texts]).to(tokens.device)
