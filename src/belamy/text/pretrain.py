"""Contrastive image-text pretraining of a TextEncoder, and saving/loading it as safetensors + JSON.

AttnGAN (Xu et al. 2018) pretrains its text encoder with DAMSM, matching captions to images, before any GAN training,
then freezes it. Here the matching loss is CLIP's symmetric InfoNCE (Radford et al. 2021): in a batch of B image-caption
pairs, each image must pick its own caption among the B (cross-entropy over cosine similarities times a learned scale
exp(t), t initialised to log(1/0.07) and clamped to log(100) as in CLIP), and each caption its own image. Retrieval
recall@1 on held-out pairs tells whether the encoder learned to tell captions apart by what they say.

A saved text encoder is a folder holding
  text_encoder.safetensors  the TextEncoder's weights (the image encoder is not kept: it serves only pretraining)
  text_encoder.json         tokenizer vocabulary, encoder config, max_length and the pretraining figures
written atomically, JSON last: a folder with the JSON has complete weights.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from belamy.data.base import ImageSet
from belamy.losses import MAX_LOGIT_SCALE, contrastive_loss
from belamy.text.encoder import ImageEncoder, TextEncoder
from belamy.text.tokenizer import Tokenizer
from belamy.train.checkpoint import save_file_atomic, write_json_atomic

CONFIG_FILE = "text_encoder.json"
WEIGHTS_FILE = "text_encoder.safetensors"
FORMAT = "belamy-text-encoder"
FORMAT_VERSION = 1
HELDOUT_FRACTION = 5  # one scene in this many is held out of pretraining, to measure retrieval
RETRIEVAL_PAIRS = 256  # held-out image-caption pairs ranked against each other (chance recall@1 = 1/256)
INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature 0.07


class TextEncoderError(RuntimeError):
    pass


@dataclass
class PretrainedText:
    tokenizer: Tokenizer
    encoder: TextEncoder  # in eval mode
    image_encoder: ImageEncoder  # in eval mode; not saved by save_text_encoder
    figures: dict[str, float] = field(default_factory=dict)  # retrieval recall, loss, timing (pretrain_text_encoder)
    max_length: int = 24  # captions are cut to this many words


def _to_float(images: Tensor) -> Tensor:
    return images.float() / 127.5 - 1  # uint8 [0, 255] -> [-1, 1]


@torch.no_grad()
def retrieval_recall(tokenizer: Tokenizer, encoder: TextEncoder, image_encoder: ImageEncoder, images: Tensor,
                     captions: list[str], max_length: int = 24) -> dict[str, float]:
    """Recall@1 of N image-caption pairs (images uint8 [N, C, H, W], captions[i] describes images[i]) ranked by cosine
    similarity: image->text (is image i's nearest caption caption i?) and text->image. Chance is 1/N."""
    assert images.shape[0] == len(captions) > 0, (images.shape, len(captions))
    was_training = encoder.training, image_encoder.training
    encoder.eval(), image_encoder.eval()
    device = next(encoder.parameters()).device
    _, text = encoder(tokenizer.encode_batch(captions, max_length).to(device))
    similarity = F.normalize(image_encoder(_to_float(images.to(device))), dim=1) @ F.normalize(text, dim=1).T
    encoder.train(was_training[0]), image_encoder.train(was_training[1])
    truth = torch.arange(len(captions), device=device)
    return {"image_to_text_recall_at_1": (similarity.argmax(dim=1) == truth).float().mean().item(),
            "text_to_image_recall_at_1": (similarity.argmax(dim=0) == truth).float().mean().item(),
            "chance_recall_at_1": 1 / len(captions)}


def pretrain_text_encoder(
    data: ImageSet,  # a captioned set (data.captions: one or more captions per image)
    steps: int = 500,  # optimizer steps
    batch_size: int = 64,  # image-caption pairs per step: each image's negatives are the other captions
    seed: int = 0,  # seeds the held-out split, the initial weights and the batches
    lr: float = 1e-3,  # Adam learning rate
    embed_dim: int = 128,  # TextEncoder word embedding size
    hidden_dim: int = 128,  # TextEncoder GRU state per direction (features are 2x)
    max_length: int = 24,  # captions cut to this many words
    tokenizer: Tokenizer | None = None,  # None: built from the training captions
    progress: bool = False,  # show a progress bar
    device: str | torch.device = "cpu",  # where to train (the returned encoders stay there)
) -> PretrainedText:
    """Train a TextEncoder and an ImageEncoder together on image-caption pairs, each step one random caption of each
    of `batch_size` random images; one scene in HELDOUT_FRACTION is held out and measures retrieval at the end.

    figures: image_to_text_recall_at_1, text_to_image_recall_at_1, chance_recall_at_1 (among up to RETRIEVAL_PAIRS
    held-out pairs, each image with its first caption), final_loss (mean of the last 50 steps), temperature, steps,
    train_images, seconds."""
    from tqdm import tqdm

    if data.captions is None:
        raise ValueError(f"{data.info.name} has no captions: text pretraining needs a captioned set (e.g. shapes)")
    if len(data) < 2 * HELDOUT_FRACTION or steps < 0:
        raise ValueError(f"need at least {2 * HELDOUT_FRACTION} images and steps >= 0 (got {len(data)}, {steps})")
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    heldout, train = order[: len(data) // HELDOUT_FRACTION], order[len(data) // HELDOUT_FRACTION:]
    if tokenizer is None:
        tokenizer = Tokenizer.build(c for i in train.tolist() for c in data.captions[i])
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, leaving the caller's RNG as it was
        torch.manual_seed(seed)
        encoder = TextEncoder(len(tokenizer), embed_dim, hidden_dim).to(device)
        image_encoder = ImageEncoder(encoder.dim, data.info.shape[0]).to(device)
    logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE, device=device))
    optimizer = torch.optim.Adam([*encoder.parameters(), *image_encoder.parameters(), logit_scale], lr=lr)
    batch_size = min(batch_size, len(train))
    losses: list[Tensor] = []
    for _ in tqdm(range(steps), disable=not progress, desc="text pretraining", dynamic_ncols=True):
        # (1) A batch: random training images, and one random caption of each.
        index = train[torch.randint(len(train), (batch_size,), generator=generator)].tolist()
        pick = torch.randint(1 << 30, (batch_size,), generator=generator).tolist()
        captions = [data.captions[i][p % len(data.captions[i])] for i, p in zip(index, pick)]
        # (2) Both directions of InfoNCE over the batch's B x B similarities.
        _, text = encoder(tokenizer.encode_batch(captions, max_length).to(device))
        loss = contrastive_loss(image_encoder(_to_float(data.images[index].to(device))), text, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())  # read once at the end: no host sync per step
    encoder.eval(), image_encoder.eval()
    pairs = heldout[:RETRIEVAL_PAIRS].tolist()
    figures = retrieval_recall(tokenizer, encoder, image_encoder, data.images[pairs],
                               [data.captions[i][0] for i in pairs], max_length)
    final_loss = torch.stack(losses[-50:]).mean().item() if losses else 0.0
    figures.update(final_loss=final_loss, steps=steps, train_images=len(train),
                   temperature=math.exp(-min(logit_scale.item(), MAX_LOGIT_SCALE)),
                   seconds=time.perf_counter() - start)
    return PretrainedText(tokenizer, encoder, image_encoder, figures, max_length)


def save_text_encoder(folder: str | Path, pretrained: PretrainedText) -> Path:
    """Write text_encoder.safetensors, then text_encoder.json, each atomically; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: t.detach().contiguous().cpu() for k, t in pretrained.encoder.state_dict().items()}
    save_file_atomic(state, folder / WEIGHTS_FILE)
    write_json_atomic(folder / CONFIG_FILE, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "tokenizer": pretrained.tokenizer.to_json(),
        "encoder": pretrained.encoder.config(), "max_length": pretrained.max_length, "figures": pretrained.figures})
    return folder


def load_text_encoder(folder: str | Path) -> tuple[Tokenizer, TextEncoder, dict]:
    """A folder written by save_text_encoder -> (tokenizer, encoder in eval mode, the JSON: max_length, figures, ...).
    Raises TextEncoderError naming the file at fault."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file():
        raise TextEncoderError(f"{config_path} not found: {folder} is not a saved text encoder (it needs "
                               f"{CONFIG_FILE} and {WEIGHTS_FILE}, as save_text_encoder writes)")
    try:
        meta = json.loads(config_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, not {FORMAT!r}")
        tokenizer = Tokenizer.from_json(meta["tokenizer"])
        encoder = TextEncoder(**meta["encoder"])
        if encoder.vocab_size != len(tokenizer):
            raise ValueError(f"the encoder has {encoder.vocab_size} token ids, the tokenizer {len(tokenizer)}")
    except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise TextEncoderError(f"{config_path} is not a valid text encoder config: {type(e).__name__}: {e}") from None
    if not weights_path.is_file():
        raise TextEncoderError(f"{weights_path} not found (the weights of the encoder {config_path} describes)")
    try:
        encoder.load_state_dict(load_file(str(weights_path)))
    except (OSError, SafetensorError, RuntimeError) as e:
        raise TextEncoderError(f"{weights_path} does not fit the encoder described in {config_path}: {e}") from None
    return tokenizer, encoder.eval(), meta
