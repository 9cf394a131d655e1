"""Text and image encoders for text-to-image conditioning.

TextEncoder is AttnGAN's (Xu et al. 2018): a bidirectional GRU (the paper uses an LSTM; a GRU has fewer weights and
trains as well on short captions) over word embeddings, giving word features (for word-level attention) and a
sentence feature (for the sentence-level condition). ImageEncoder is a small CNN that maps an image to the same space,
used only to pretrain the text encoder contrastively (the role of DAMSM's image encoder; see belamy.text.pretrain).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from belamy.text.tokenizer import PAD_ID


class TextEncoder(nn.Module):
    def __init__(
        self,
        vocab_size: int,  # number of token ids, specials included (len(tokenizer))
        embed_dim: int = 128,  # size of a word embedding
        hidden_dim: int = 128,  # GRU state size per direction; features are 2 * hidden_dim
        dropout: float = 0.0,  # dropout on the word embeddings, in training only
    ) -> None:
        super().__init__()
        self.vocab_size, self.embed_dim, self.hidden_dim, self.dropout = vocab_size, embed_dim, hidden_dim, dropout
        self.dim = 2 * hidden_dim  # size of word and sentence features
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.GRU(embed_dim, hidden_dim, batch_first=True, bidirectional=True)

    def config(self) -> dict:
        return {"vocab_size": self.vocab_size, "embed_dim": self.embed_dim, "hidden_dim": self.hidden_dim,
                "dropout": self.dropout}

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """tokens [B, L] int64, right-padded with PAD_ID -> (words [B, L, dim], zero at padding; sentence [B, dim],
        the final states of both directions over each caption's true length). An all-padding caption counts as
        length 1 (it reads one PAD, whose embedding is zero)."""
        assert tokens.dim() == 2 and tokens.dtype == torch.int64, (tokens.shape, tokens.dtype)
        if torch.onnx.is_in_onnx_export():  # packed sequences do not export
            return self.forward_unrolled(tokens)
        batch, length = tokens.shape
        lengths = (tokens != PAD_ID).sum(dim=1).clamp(min=1).cpu()  # pack_padded_sequence wants them on the CPU
        x = self.drop(self.embed(tokens))  # [B, L, E]
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h = self.rnn(packed)  # h [2, B, H]: forward's state after the last true word, backward's after the first
        words, _ = pad_packed_sequence(out, batch_first=True, total_length=length)  # [B, L, 2H]
        sentence = torch.cat([h[0], h[1]], dim=1)  # [B, 2H]
        return words, sentence

    def forward_unrolled(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """forward() with the GRU written out step by step and masked instead of packed: the same numbers (up to
        float rounding), in plain tensor ops that ONNX export handles. Each direction updates its state only on a
        caption's true words, so the backward one starts at the last true word, as with packing."""
        lengths = (tokens != PAD_ID).sum(dim=1, keepdim=True).clamp(min=1)  # [B, 1]
        x = self.embed(tokens)
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        directions = []
        for suffix, order in (("", range(tokens.shape[1])), ("_reverse", reversed(range(tokens.shape[1])))):
            w_ih, w_hh = getattr(self.rnn, f"weight_ih_l0{suffix}"), getattr(self.rnn, f"weight_hh_l0{suffix}")
            b_ih, b_hh = getattr(self.rnn, f"bias_ih_l0{suffix}"), getattr(self.rnn, f"bias_hh_l0{suffix}")
            h = x.new_zeros(x.shape[0], self.hidden_dim)
            outputs: list[Tensor] = [h] * tokens.shape[1]
            for t in order:
                # PyTorch's GRU: r, z, n gates (nn.GRU's documentation)
                gi, gh = F.linear(x[:, t], w_ih, b_ih).chunk(3, 1), F.linear(h, w_hh, b_hh).chunk(3, 1)
                r, z = torch.sigmoid(gi[0] + gh[0]), torch.sigmoid(gi[1] + gh[1])
                n = torch.tanh(gi[2] + r * gh[2])
                valid = steps[t] < lengths  # [B, 1]
                h = torch.where(valid, (1 - z) * n + z * h, h)
                outputs[t] = torch.where(valid, h, torch.zeros_like(h))
            directions.append((torch.stack(outputs, dim=1), h))
        words = torch.cat([directions[0][0], directions[1][0]], dim=2)
        return words, torch.cat([directions[0][1], directions[1][1]], dim=1)


class ImageEncoder(nn.Module):
    def __init__(
        self,
        dim: int,  # output feature size (the text encoder's dim)
        channels: int = 3,  # input image channels
        width: int = 32,  # channels of the first conv; doubled at each of the later ones
        depth: int = 3,  # stride-2 convs before the global pool
    ) -> None:
        super().__init__()
        self.dim, self.channels, self.width, self.depth = dim, channels, width, depth
        layers: list[nn.Module] = []
        ch = channels
        for i in range(depth):
            layers += [nn.Conv2d(ch, width * 2 ** i, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            ch = width * 2 ** i
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(ch, dim)

    def config(self) -> dict:
        return {"dim": self.dim, "channels": self.channels, "width": self.width, "depth": self.depth}

    def forward(self, images: Tensor) -> Tensor:
        """images [B, C, H, W] in [-1, 1], any H and W -> features [B, dim]."""
        assert images.dim() == 4 and images.shape[1] == self.channels, images.shape
        return self.out(self.convs(images).mean(dim=(2, 3)))  # global average pool
