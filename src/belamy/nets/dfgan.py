"""Text-conditioned generator and discriminator after DF-GAN (Tao et al. 2022, "DF-GAN: A Simple and Effective
Baseline for Text-to-Image Synthesis"), with StackGAN's conditioning augmentation (Zhang et al. 2017).

G: z -> 4x4 features -> up-blocks, each fusing the sentence embedding into the image features through stacked
text-conditioned affine transforms (DF-GAN's "deep text-image fusion" blocks: per-channel scale and shift predicted
from the text, Fig. 3) -> RGB. D: down-blocks -> 4x4 features, concatenated with the sentence embedding replicated
over space -> one logit (DF-GAN's one-way output), so D judges both realism and image-text match. D also projects
its 4x4 features and the sentence into one space, for XMC-GAN's sentence contrastive loss (Zhang et al. 2021, "Cross-
Modal Contrastive Learning for Text-to-Image Generation"): there D must tell which of the batch's captions an image
shows, a denser signal than one real/fake logit. With `pooled`, both the logit and that projection also read the max
of the 4x4 map over space, as a projection discriminator's inner product with the text (Miyato & Koyama 2018): the
flattened map has separate weights per cell, so an object's shape would have to be learned at every place anew.
With `words`, a linear head on the same features predicts which words (or hashed word pairs) the caption holds;
with a word critic, a second one gives a realism logit per word (is this a real image showing that word?).
With `patches`, D also judges the realism of each ~10x10-pixel patch from its first down-block's map (a PatchGAN
head, Isola et al. 2017): a dense, local signal about edges and colours that one logit per image carries weakly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from belamy.nets.layers import split_resolution


class TextAffine(nn.Module):
    """x * (1 + gamma(e)) + beta(e), per channel: the text-conditioned affine transform of DF-GAN (eq. 1), with the
    scale as a residual around 1 so that the block starts as the identity."""

    def __init__(self, channels: int, text_dim: int) -> None:
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(text_dim, channels), nn.ReLU(), nn.Linear(channels, channels))
        self.beta = nn.Sequential(nn.Linear(text_dim, channels), nn.ReLU(), nn.Linear(channels, channels))
        for mlp in (self.gamma, self.beta):
            nn.init.zeros_(mlp[-1].weight)
            nn.init.zeros_(mlp[-1].bias)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        return x * (1 + self.gamma(e)[:, :, None, None]) + self.beta(e)[:, :, None, None]


class FusionBlock(nn.Module):
    """Upsample x2, then twice (conv, normalize, text affine, LeakyReLU), with a 1x1 shortcut (DF-GAN's UPBlock).

    Unlike DF-GAN, each affine transform modulates normalized features (per-sample layer norm, as AdaIN does with
    style): without it the signal fades through the unnormalized stack and G learns far too slowly for a short run;
    per sample, so no batch statistics are needed at inference."""

    def __init__(self, in_ch: int, out_ch: int, text_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.norm1, self.fuse1 = nn.GroupNorm(1, out_ch, affine=False), TextAffine(out_ch, text_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.norm2, self.fuse2 = nn.GroupNorm(1, out_ch, affine=False), TextAffine(out_ch, text_dim)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        # The 1x1 shortcut runs before the upsampling, where it is 4x cheaper: the two commute exactly
        shortcut = F.interpolate(self.shortcut(x), scale_factor=2.0, mode="nearest")  # [B, out, 2h, 2w]
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # [B, in, 2h, 2w]
        h = F.leaky_relu(self.fuse1(self.norm1(self.conv1(x)), e), 0.2)
        h = F.leaky_relu(self.fuse2(self.norm2(self.conv2(h)), e), 0.2)
        return shortcut + h


class ConditioningAugmentation(nn.Module):
    """StackGAN's conditioning augmentation: c ~ N(mu(e), diag(sigma(e)^2)), which smooths the text manifold for
    the few captions per image; its KL divergence to N(0, I) regularizes G (Zhang et al. 2017, eq. 3-4)."""

    def __init__(self, text_dim: int, cond_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(text_dim, 2 * cond_dim)

    def forward(self, e: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        """(c [B, cond_dim], KL per sample [B]); noise None: c = mu (deterministic, for inference)."""
        mu, log_var = self.fc(e).chunk(2, dim=1)
        log_var = log_var.clamp(-10, 10)
        kl = 0.5 * (mu.square() + log_var.exp() - 1 - log_var).sum(1)
        c = mu if noise is None else mu + (0.5 * log_var).exp() * noise
        return c, kl


class TextConditionedGenerator(nn.Module):
    """G(z, sentence embedding) -> image [B, C, H, W] in [-1, 1]."""

    def __init__(
        self,
        shape: tuple[int, int, int],  # output (C, H, W)
        text_dim: int,  # size of the sentence embedding
        latent_dim: int = 100,  # size of z
        width: int = 32,  # channels at the finest level; x2 per coarser level up to 8 * width
        cond_dim: int = 128,  # size of the augmented condition c
    ) -> None:
        super().__init__()
        channels, resolution, _ = shape
        self.latent_dim, self.text_dim = latent_dim, text_dim
        base, levels = split_resolution(resolution)
        chs = [width * min(2 ** (levels - i), 8) for i in range(levels + 1)]  # coarse -> fine
        self.base = base
        self.augment = ConditioningAugmentation(text_dim, cond_dim)
        # [z, c] -> [B, chs[0], base, base]: the condition also enters G's input, as in GAN-INT-CLS and StackGAN;
        # the fusion blocks alone pass the text on too weakly for G to follow it in a short run
        self.stem = nn.Linear(latent_dim + cond_dim, chs[0] * base * base)
        self.stem_norm = nn.GroupNorm(1, chs[0], affine=False)
        self.blocks = nn.ModuleList([FusionBlock(chs[i], chs[i + 1], cond_dim) for i in range(levels)])
        self.to_image = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(chs[-1], channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: Tensor, sentence: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(images [B, C, H, W], KL of the conditioning augmentation [B]). `noise` [B, cond_dim]: the
        augmentation's draw (None at inference: the mean condition)."""
        c, kl = self.augment(sentence, noise)
        x = self.stem(torch.cat([z, c], dim=1)).view(z.shape[0], -1, self.base, self.base)
        x = F.leaky_relu(self.stem_norm(x), 0.2)
        for block in self.blocks:
            x = block(x, c)
        return self.to_image(x), kl


class DownBlock(nn.Module):
    """DF-GAN's D block: conv 4x4 stride 2, LeakyReLU, conv 3x3, LeakyReLU, plus a learned-scale residual path.

    DF-GAN starts the scale at 0, so its D first sees only average-pooled colours and learns textures as the scale
    grows, over hundreds of epochs; a short run never gets there (G learns colourful noise that averages right).
    Here the scale starts at 1: D judges textures from the first step."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                                  nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False), nn.LeakyReLU(0.2))
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        # DF-GAN pools after the 1x1 shortcut; pooling first is the same map (both linear, the pool's weights sum
        # to 1) at a quarter of the cost
        return self.shortcut(F.avg_pool2d(x, 2)) + self.gamma * self.body(x)


@dataclass
class DiscriminatorReading:
    """What one pass of `TextConditionedDiscriminator` read of a batch of images [B, C, H, W]."""

    logits: list[Tensor]  # [B] for each batch of sentence embeddings it judged the images with
    patches: Tensor | None = None  # realism logits of the patches [B, 1, H/2, W/2], with a patch head
    image_match: Tensor | None = None  # the images in the contrastive space [B, match_dim], when asked
    text_match: list[Tensor] = field(default_factory=list)  # each batch of sentences to match, in that space
    logit_scale: Tensor | None = None  # the contrastive temperature's log inverse, with image_match
    words: Tensor | None = None  # logits [B, vocabulary] that each word is in the image's caption, when asked
    word_realism: Tensor | None = None  # logits [B, vocabulary] that the image is a real one showing each word


class TextConditionedDiscriminator(nn.Module):
    """D(image, sentence embeddings) -> logits, and what else a recipe's phase reads, in one forward (`forward`):
    under DDP a phase must call the wrapper, which exposes nothing but the forward."""

    def __init__(
        self,
        shape: tuple[int, int, int],  # input (C, H, W)
        text_dim: int,  # size of the sentence embedding
        width: int = 32,  # channels after the first conv; x2 per level up to 8 * width
        match_dim: int = 128,  # size of the space where image and sentence are compared (contrastive loss; 0: none)
        pooled: bool = False,  # also compare the max over the 4x4 map (what is there, wherever it is) with the text
        words: int = 0,  # vocabulary size: a head that tells which words an image's caption holds (0: none)
        patches: bool = False,  # also one realism logit per patch of the first down-block's map (PatchGAN)
        word_critic: int = 0,  # vocabulary size: a head that gives a realism logit per word (0: none)
    ) -> None:
        super().__init__()
        channels, resolution, _ = shape
        base, levels = split_resolution(resolution)
        chs = [width * min(2 ** i, 8) for i in range(levels + 1)]
        self.stem = nn.Conv2d(channels, chs[0], 3, 1, 1)
        self.blocks = nn.Sequential(*[DownBlock(chs[i], chs[i + 1]) for i in range(levels)])  # -> [B, ., base, base]
        self.joint = nn.Sequential(nn.Conv2d(chs[-1] + text_dim, 2 * width, 3, 1, 1, bias=False), nn.LeakyReLU(0.2),
                                   nn.Conv2d(2 * width, 1, base, 1, 0, bias=False))  # -> [B, 1, 1, 1]
        # Heads exist only when a loss reads them: under DDP a parameter without a gradient stalls the reduction.
        # (Registered in this order: a checkpoint's optimizer state follows the order of the parameters.)
        if match_dim:  # the whole 4x4 map, not its average: where the object is is part of what a caption says
            self.image_match = nn.Linear(chs[-1] * base * base, match_dim)
            self.text_match = nn.Linear(text_dim, match_dim)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))  # XMC-GAN's temperature 0.1
        self.pooled = pooled
        if pooled:
            if match_dim:
                self.pooled_match = nn.Linear(chs[-1], match_dim)
            self.project = nn.Linear(text_dim, chs[-1])  # projection discriminator (Miyato & Koyama 2018)
        self.patch_logits = nn.Conv2d(chs[1], 1, 1) if patches else None
        # The word heads read where (the map) and what (its max over space).
        if words:
            self.word_logits = nn.Linear(chs[-1] * (base * base + 1), words)
        if word_critic:
            self.word_critic = nn.Linear(chs[-1] * (base * base + 1), word_critic)

    def forward(self, x: Tensor, judge: tuple[Tensor, ...] = (), match: tuple[Tensor, ...] = (),
                words: bool = False, word_realism: bool = False) -> DiscriminatorReading:
        """Read images x: their logits with each batch of sentence embeddings [B, text_dim] in `judge` (realism
        and match), their patch logits (with a patch head), with `match` their embedding and those of each batch
        of sentences in it in the contrastive space, with `words` their word logits, with `word_realism` their
        word critic's logits."""
        h = self.blocks[0](self.stem(x))
        patches = None if self.patch_logits is None else self.patch_logits(h)
        h = self.blocks[1:](h)
        reading = DiscriminatorReading([self.judge(h, sentence) for sentence in judge], patches)
        if match:
            embedded = self.image_match(h.flatten(1))  # [B, match_dim]
            reading.image_match = embedded + self.pooled_match(h.amax(dim=(2, 3))) if self.pooled else embedded
            reading.text_match = [self.text_match(sentence) for sentence in match]
            reading.logit_scale = self.logit_scale
        if words or word_realism:
            where_and_what = torch.cat([h.flatten(1), h.amax(dim=(2, 3))], dim=1)
            reading.words = self.word_logits(where_and_what) if words else None
            reading.word_realism = self.word_critic(where_and_what) if word_realism else None
        return reading

    def features(self, x: Tensor) -> Tensor:
        """images [B, C, H, W] -> D's features [B, C', base, base], which `judge` reads."""
        return self.blocks(self.stem(x))

    def judge(self, h: Tensor, sentence: Tensor) -> Tensor:
        """Logits [B] of features [B, C', base, base] with a sentence embedding [B, text_dim] each."""
        # The first joint conv reads [h, the sentence replicated over space]. Its text part is computed without
        # the replication: each output cell adds the taps of the kernel that fall inside the map, and which taps
        # do depends on the row and the column apart, so it is rows @ (taps' text response) @ columns^T.
        conv, c = self.joint[0], h.shape[1]
        taps = torch.einsum("bt,otkl->bokl", sentence, conv.weight[:, c:])  # [B, out, 3, 3]
        rows = self._inside(h.shape[2], h.device, taps.dtype)  # [H, 3]
        cols = self._inside(h.shape[3], h.device, taps.dtype)  # [W, 3]
        x = F.conv2d(h, conv.weight[:, :c], padding=1) + rows @ taps @ cols.T
        logits = self.joint[2](self.joint[1](x)).flatten()
        if self.pooled:
            logits = logits + (h.amax(dim=(2, 3)) * self.project(sentence)).sum(1)
        return logits

    @staticmethod
    def _inside(size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """[size, 3]: whether tap k of a 3x3 kernel with padding 1 reads inside the map at position i."""
        position = torch.arange(size, device=device)[:, None] + torch.arange(3, device=device)[None] - 1
        return ((position >= 0) & (position < size)).to(dtype)
