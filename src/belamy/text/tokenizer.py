"""A word-level tokenizer built from training captions: the vocabulary of a text encoder (AttnGAN-style, Xu et al.
2018, whose captions are split into lower-case words the same way).

Rules: text is lower-cased and split into runs of letters and digits; punctuation is dropped and splits words
("upper-left" -> "upper", "left"; "don't" -> "don", "t"). Ids: 0 is PAD ("<pad>"), 1 is UNK ("<unk>", any word not in
the vocabulary), the words from 2 on. `Tokenizer.build` orders words by decreasing count, ties alphabetically, so the
same captions always give the same ids.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
SPECIALS = (PAD, UNK)
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script; everything else separates words


def split_words(text: str) -> list[str]:
    """"A red Star, upper-left." -> ["a", "red", "star", "upper", "left"]."""
    return _WORD.findall(text.lower())


class Tokenizer:
    def __init__(
        self,
        vocabulary: Sequence[str],  # the words only (no "<pad>"/"<unk>"), in id order: vocabulary[i] has id i + 2
    ) -> None:
        words = tuple(vocabulary)
        bad = [w for w in words if split_words(w) != [w]]
        if bad:
            raise ValueError(f"vocabulary entries must be single lower-case words (as Tokenizer.words splits "
                             f"them), not {bad[:5]}")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary has duplicate words: "
                             f"{sorted(w for w, c in Counter(words).items() if c > 1)[:5]}")
        self.vocabulary = words
        self._ids = {w: i + len(SPECIALS) for i, w in enumerate(words)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1, max_size: int | None = None) -> Tokenizer:
        """The words of `captions` seen at least `min_count` times, most frequent first (ties alphabetical), at most
        `max_size` of them (the specials not counted)."""
        counts = Counter(w for caption in captions for w in split_words(caption))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(words[:max_size] if max_size is not None else words)

    def __len__(self) -> int:
        """The number of ids, specials included: the vocab_size of an embedding table."""
        return len(self.vocabulary) + len(SPECIALS)

    def __repr__(self) -> str:
        return f"Tokenizer({len(self.vocabulary)} words)"

    def words(self, text: str) -> list[str]:
        return split_words(text)

    def encode(self, text: str, max_length: int) -> list[int]:
        """Ids of the first `max_length` words of `text` (UNK_ID for unknown words)."""
        return [self._ids.get(w, UNK_ID) for w in split_words(text)[:max_length]]

    def encode_batch(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """LongTensor [B, L] padded with PAD_ID on the right, L = min(max_length, longest text), at least 1 (an
        empty text is one PAD: the encoder reads it as length 1)."""
        encoded = [self.encode(t, max_length) for t in texts]
        tokens = torch.full((len(encoded), max(1, min(max_length, max(map(len, encoded), default=0)))), PAD_ID,
                            dtype=torch.int64)
        for row, ids in zip(tokens, encoded):
            row[: len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return tokens

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to words joined by spaces (padding dropped, unknown words as "<unk>")."""
        return " ".join(self.vocabulary[i - len(SPECIALS)] if i >= len(SPECIALS) else UNK
                        for i in map(int, ids) if i != PAD_ID)

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` that are not in the vocabulary, in order, each once."""
        return list(dict.fromkeys(w for w in split_words(text) if w not in self._ids))

    def nearest_words(self, word: str, n: int = 3) -> list[str]:
        """Up to `n` vocabulary words spelled like `word`, closest first (difflib's ratio >= 0.6): a suggestion for
        an unknown word."""
        return difflib.get_close_matches(word.lower(), self.vocabulary, n=n)

    def to_json(self) -> dict:
        return {"vocabulary": list(self.vocabulary)}

    @classmethod
    def from_json(cls, data: dict) -> Tokenizer:
        if not isinstance(data, dict) or not isinstance(data.get("vocabulary"), list):
            raise ValueError("a tokenizer's JSON is {\"vocabulary\": [words...]}")
        return cls(data["vocabulary"])
