"""`text2img`: text-to-image generation after DF-GAN (Tao et al. 2022) and GAN-INT-CLS (Reed et al. 2016).

A caption becomes a sentence embedding (belamy.text: a bidirectional GRU pretrained against the images with a
contrastive matching loss, the role AttnGAN's DAMSM encoder plays, then frozen or fine-tuned; or a frozen pretrained
sentence-transformers model from a local folder); G fuses it into every up-block through text-conditioned affine
transforms, after StackGAN's conditioning augmentation; D judges an image with a caption, and is trained
matching-aware (Reed et al. 2016): a real image with a mismatched caption counts as fake. D's objective is DF-GAN's
hinge form, real - (fake + mismatched) / 2, optionally with its matching-aware gradient penalty (MA-GP, eq. 3:
k * E[||grad of D(x, e) wrt (x, e)||^p] on real, matching pairs, k = 2 and p = 6 in DF-GAN; here off unless
gp_weight > 0, as it helped no run on shapes), which smooths D around the real image-text manifold. Both also
play XMC-GAN's sentence contrastive game (Zhang et al. 2021, eq. 4): D learns to tell which of the batch's captions
each real image shows, and G to make each fake show its own caption to D. On shapes (32 px, 800 steps of 64) this made
the background follow its caption 92% of the time, against 55% without it.

Three changes make G follow the smaller parts of a caption (shape, position), measured on shapes (32 px, 3,000 steps
of 32, shapes:test; README): (1) the sentence embeddings are whitened over the training captions (damped ZCA),
since the raw ones spend most of their variance on colours and little on shape or position, and a KL-regularised
conditioning augmentation then drowns those directions in its noise (object position 15% -> 70% with (2));
(2) the mismatched caption of GAN-INT-CLS is a hard negative, one of the training captions nearest to the image's
own (it shares the background, and differs in shape, position or colour: a random one differs in the background
and teaches D nothing finer); (3) D also matches the max of its features over space with the caption (a
projection term, Miyato & Koyama 2018), so that what an object is counts wherever it is (colour 50% -> 71%).
D also plays the real/fake game on every ~10x10-pixel patch (PatchGAN, Isola et al. 2017): a dense local signal
that makes G's objects crisper and their colours purer (object colour 88% -> 91% after 10,000 steps).
D also learns which words of the vocabulary a real image's caption holds, an auxiliary classifier whose classes
are the caption's words (AC-GAN, Odena et al. 2017, multi-label), and G to make its own caption's words readable:
G places objects where the caption says (position 75% -> 81%). And a second word head on D judges realism per word,
real scenes that show a word against G's fakes of captions that name it, so that G must draw each word as real
scenes show it (shape 75% -> 82% at 10,000 steps; README).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from belamy.data.base import DataError, DataInfo, ImageSet
from belamy.losses import contrastive_loss
from belamy.nets.dfgan import DiscriminatorReading, TextConditionedDiscriminator, TextConditionedGenerator
from belamy.recipes.base import RECIPES, Batch, Recipe, RecipeDefaults
from belamy.text import SentenceTransformerTokens, TextEncoder, Tokenizer, is_sentence_transformer
from belamy.text.tokenizer import SPECIALS
from belamy.train.distributed import gather_rows


WHITENING_EPS = 0.1  # damping of text whitening, in units of the mean variance


@dataclass
class Text2ImgOptions:
    text_encoder: str = ""  # "": pretrain one on the training captions (cached in BELAMY_HOME); a folder written by
    # `belamy text-encoder` (its vocabulary must be the data's); "scratch": an untrained encoder (trained with G
    # under finetune_text, else frozen at random: for tests)
    sentence_transformer: str = ""  # instead of the GRU: a folder written by SentenceTransformer.save, a frozen
    # pretrained encoder read from there whenever the model is loaded (pip install belamy[text]; never downloaded)
    finetune_text: bool = False  # train the encoder further with G (it is frozen otherwise)
    encoder_steps: int = 600  # contrastive pretraining steps when text_encoder is ""
    embed_dim: int = 128  # encoder word embeddings
    hidden_dim: int = 128  # GRU units per direction: the sentence embedding has 2 * hidden_dim
    max_length: int = 24  # caption tokens kept (longer captions are cut)
    latent_dim: int = 100
    cond_dim: int = 128  # conditioning augmentation output
    g_width: int = 16  # 32 (DF-GAN's 32 px setting) draws no better in a short run and is 2.4x slower on a CPU
    d_width: int = 16
    kl_weight: float = 0.0  # of the conditioning augmentation's KL term (StackGAN: 1.0). Its pull of the mean to 0
    # and the noise to 1 drowns what a caption says in small directions (shape, position): on shapes, 0.1 gave
    # object colour 38% and position 53% after 3,000 steps where 0 gave 50% and 70%; 1.0 did not follow captions
    whiten_text: bool = True  # whiten sentence embeddings (damped ZCA over the training captions) for G and D: the
    # raw ones spend 27% of their variance on the background and 1.5% on the shape
    contrastive_weight: float = 1.0  # of XMC-GAN's sentence contrastive loss in D and G (0: DF-GAN's losses only)
    gp_weight: float = 0.0  # MA-GP's k (DF-GAN uses 2): off by default, as it made no run on shapes better and
    # costs a second backward pass through D (1.4x slower on a CPU)
    gp_power: float = 6.0  # MA-GP's p (DF-GAN)
    hard_negatives: int = 16  # mismatched captions: one of the k training captions of other images nearest to the
    # image's own (0, or a fine-tuned encoder: the next image's caption of the batch, as GAN-INT-CLS)
    hard_contrastive: bool = True  # also add those captions as wrong answers to D's contrastive term
    pooled_match: bool = True  # D also matches the max of its 4x4 map over space (what is there, wherever it is)
    # with the caption, as a projection term (Miyato & Koyama 2018) and in the contrastive embedding
    word_weight: float = 2.0  # of the caption-words terms: D learns which words the caption of a real image holds
    # (multi-label, over the vocabulary), G to make those of its own caption readable from its fake: it places
    # objects where the caption says. On shapes (10,000 steps, two seeds, with word_critic 0.15) 1 -> 2 moved object
    # position 77%/79% -> 81%/81% for 2-3 points of colour and 4 of shape; without the critic 0 -> 0.5 moved it
    # 75% -> 81%; 0 turns the head off
    patch_weight: float = 1.0  # of D's patch realism terms (PatchGAN, Isola et al. 2017), the hinge game played
    # again on each ~10x10-pixel patch of D's first down-block, for D and G. On shapes (10,000 steps) object colour
    # 87.6% -> 91.4% (G draws crisper, purer objects); 0 turns the head off
    word_critic: float = 0.15  # of the per-word realism terms: a second word head on D, a realism logit per word of
    # the vocabulary, played as the logistic game on the words of each caption (real images showing them against
    # G's fakes of the same captions), so that G must draw a "star" that D cannot tell from real stars. On shapes
    # (10,000 steps, two seeds) 0.15 moved shape 75%/74% -> 87%/86% with word_weight 1 and cost position
    # (77%/79%), which the words head at weight 2 wins back: 82%/82% shape, 81%/81% position (README, "What moved
    # it"); 0.5 drew shapes as well but lost 15-19 points of position
    word_pairs: int = 0  # also adjacent word pairs, hashed into this many classes: words alone cannot say which
    # colour is the object's ("a red circle on blue" and "a blue circle on red" hold the same words), pairs can.
    # 1024 (with word_weight 1 and lr decay): position 88%, but colour 76% and shape 55% after 10,000 steps


class TextToImageGenerator(nn.Module):
    """G(z, caption tokens) -> images: the text encoder and the synthesis network as one exported model."""

    def __init__(self, encoder: TextEncoder, synthesis: TextConditionedGenerator, finetune: bool) -> None:
        super().__init__()
        self.encoder, self.synthesis, self.finetune = encoder, synthesis, finetune
        encoder.requires_grad_(finetune)  # a frozen encoder gets no gradient (the engine keeps it so)
        self.latent_dim = synthesis.latent_dim
        # A fixed affine map of the encoder's sentence embedding, (e - mean) @ whitening: the identity unless the
        # recipe whitens it from the training captions (option whiten_text); saved with the model.
        self.register_buffer("text_mean", torch.zeros(encoder.dim))
        self.register_buffer("text_whitening", torch.eye(encoder.dim))
        self._register_load_state_dict_pre_hook(self._identity_if_missing)

    def _identity_if_missing(self, state: dict, prefix: str, *args: Any) -> None:
        """Models saved before the map existed load with the identity."""
        state.setdefault(prefix + "text_mean", torch.zeros_like(self.text_mean))
        state.setdefault(prefix + "text_whitening", torch.eye(len(self.text_mean)))

    def encode(self, tokens: Tensor) -> Tensor:
        """Sentence embeddings [B, D] of token ids [B, L]; no gradient reaches a frozen encoder."""
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            sentence = self.encoder(tokens)[1]
        return (sentence - self.text_mean) @ self.text_whitening

    @torch.no_grad()
    def whiten(self, sentences: Tensor, eps: float) -> None:
        """Set the map to ZCA whitening (Bell & Sejnowski 1997) of the raw sentence embeddings [M, D] of the
        training captions, damped: directions of variance v are scaled by 1 / sqrt(v + eps * mean variance)."""
        x = sentences.double()
        variance, axes = torch.linalg.eigh(torch.cov(x.T))
        scale = (variance.clamp_min(0) + eps * variance.clamp_min(0).mean()).rsqrt()
        self.text_mean.copy_(x.mean(0))
        self.text_whitening.copy_(axes @ torch.diag(scale) @ axes.T)

    def forward(self, z: Tensor, tokens: Tensor, noise: Tensor | None = None, return_all: bool = False,
                sentence: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Images [B, C, H, W]; with return_all, (images, KL of the augmentation [B], sentence embeddings).
        `sentence`: encode(tokens) when the caller has it already (a frozen encoder's, looked up), else None."""
        if sentence is None:
            sentence = self.encode(tokens)
        images, kl = self.synthesis(z, sentence, noise)
        return (images, kl, sentence) if return_all else images


@RECIPES.register("text2img")
class Text2Img(Recipe):
    """Text-to-image: pretrained text encoder, DF-GAN fusion G, matching-aware D with MA-GP (Tao et al. 2022)."""

    name = "text2img"
    Options = Text2ImgOptions
    needs_images = True
    uses_text = True
    task = "text"
    # DF-GAN's hinge loss and Adam(beta1 = 0, beta2 = 0.9), but not its lr (1e-4 for G, 4e-4 for D): G is what
    # learns slowly, and at 1e-3 for both, shapes (32 px) gets its backgrounds right by step 200 instead of ~600
    # and its object colours as right after 800 steps as after 3,000 at 2e-4 (README, text-to-image)
    defaults = RecipeDefaults(loss="hinge", lr_g=1e-3, lr_d=1e-3, betas=(0.0, 0.9), batch_size=32)
    # runs made before D had these heads resume without them
    introduced = {"patch_weight": 0.0, "word_weight": 0.0, "word_critic": 0.0}

    @classmethod
    def check_data(cls, options: Text2ImgOptions, data: DataInfo) -> None:
        super().check_data(options, data)
        if not data.captioned or not data.vocabulary:
            raise ValueError(f"recipe 'text2img' needs captioned images (e.g. shapes, or a folder with "
                             f"metadata.jsonl, captions.csv or a .txt per image); {data.name!r} has no captions")

    @classmethod
    def tokenizer(cls, data: DataInfo) -> Tokenizer:
        return Tokenizer(data.vocabulary)

    @classmethod
    def build_generator(cls, options: Text2ImgOptions, data: DataInfo) -> nn.Module:
        encoder = cls._text_encoder(options, data)
        synthesis = TextConditionedGenerator(data.shape, encoder.dim, options.latent_dim, options.g_width,
                                             options.cond_dim)
        return TextToImageGenerator(encoder, synthesis, options.finetune_text)

    @classmethod
    def build_discriminator(cls, options: Text2ImgOptions, data: DataInfo) -> nn.Module:
        text_dim = cls._text_encoder(options, data).dim if options.sentence_transformer else 2 * options.hidden_dim
        if options.word_weight < 0 or options.word_pairs < 0:
            raise ValueError(f"options word_weight and word_pairs must be >= 0, got {options.word_weight} and "
                             f"{options.word_pairs}")
        if options.patch_weight < 0:
            raise ValueError(f"option patch_weight must be >= 0, got {options.patch_weight}")
        if options.word_critic < 0:
            raise ValueError(f"option word_critic must be >= 0, got {options.word_critic}")
        vocabulary = len(cls.tokenizer(data))
        words = vocabulary + options.word_pairs if options.word_weight > 0 else 0
        match_dim = 128 if options.contrastive_weight > 0 else 0
        return TextConditionedDiscriminator(data.shape, text_dim, options.d_width, match_dim=match_dim,
                                            pooled=options.pooled_match, words=words, patches=options.patch_weight > 0,
                                            word_critic=vocabulary if options.word_critic > 0 else 0)

    @classmethod
    def _text_encoder(cls, options: Text2ImgOptions, data: DataInfo) -> nn.Module:
        path = options.sentence_transformer
        if not path:
            return TextEncoder(len(cls.tokenizer(data)), options.embed_dim, options.hidden_dim)
        if options.finetune_text:
            raise ValueError("option sentence_transformer: belamy keeps a sentence-transformers encoder frozen, "
                             "leave finetune_text off")
        if not is_sentence_transformer(path):
            raise FileNotFoundError(f"option sentence_transformer: {path} is not a folder written by "
                                    f"SentenceTransformer.save (no modules.json); a model trained with it reads it "
                                    f"from there")
        return SentenceTransformerTokens(path, data.vocabulary)

    # --- the text encoder ------------------------------------------------------------------------------------------

    def prepare(self, source: Any) -> None:
        """Load the pretrained text encoder into G (a given folder, or one pretrained on these captions, cached);
        then embed every training caption once, to whiten the embeddings (whiten_text) and, while the encoder stays
        frozen, as a bank held in memory ([captions, D] twice): a batch looks its captions' embeddings up instead of
        running the encoder (6% of a step on a CPU), and the bank is the pool of hard negatives."""
        o = self.options
        if o.text_encoder != "scratch" and not o.sentence_transformer:  # else untrained, or loaded with G
            self._load_text_encoder(Path(o.text_encoder) if o.text_encoder else self._pretrained_on(source))
        frozen = not o.finetune_text
        if not (o.whiten_text or frozen):
            return
        sentences, image, first = self._embed_captions(source)  # with the identity map: G is new
        if o.whiten_text:
            self.G.whiten(sentences, WHITENING_EPS)
            sentences = (sentences - self.G.text_mean) @ self.G.text_whitening
        if frozen:  # buffers follow the recipe to its device; not persistent: a checkpoint does not carry them
            self.register_buffer("caption_bank", sentences.float(), persistent=False)
            self.register_buffer("caption_unit", F.normalize(sentences.float(), dim=1), persistent=False)
            self.register_buffer("caption_image", image, persistent=False)
            self.register_buffer("caption_first", first, persistent=False)
            # each caption's hard negatives, found the first time a batch holds it (-1: not yet)
            nearest = torch.full((len(image), max(o.hard_negatives, 0)), -1, dtype=torch.long, device=image.device)
            self.register_buffer("caption_nearest", nearest, persistent=False)

    def _load_text_encoder(self, folder: Path) -> None:
        from belamy.text import load_text_encoder

        o = self.options
        tokenizer, encoder, _ = load_text_encoder(folder)
        if tuple(tokenizer.vocabulary) != tuple(self.data.vocabulary):
            raise DataError(f"text encoder {folder} was trained with another vocabulary ({len(tokenizer)} words) "
                            f"than the captions of {self.data.name} ({len(self.data.vocabulary) + 2}): pretrain it "
                            f"on this data (belamy text-encoder --data ...)")
        try:
            self.G.encoder.load_state_dict(encoder.state_dict())
        except RuntimeError as e:
            raise DataError(f"text encoder {folder} does not fit options embed_dim={o.embed_dim}, "
                            f"hidden_dim={o.hidden_dim}: {str(e).splitlines()[0]}") from None

    @torch.no_grad()
    def _embed_captions(self, data: ImageSet) -> tuple[Tensor, Tensor, Tensor]:
        """(sentence embeddings of every training caption [M, D], the row of its image [M], the row of each image's
        first caption [N]): image n's caption k is row first[n] + k."""
        tokens, counts = self.caption_tokens(data.captions)
        has = torch.arange(tokens.shape[1])[None] < counts[:, None]  # [N, K]: which slots hold a caption
        flat = tokens[has]
        device, training = next(self.G.parameters()).device, self.G.encoder.training
        self.G.encoder.eval()
        bank = torch.cat([self.G.encode(flat[i:i + 1024].to(device)) for i in range(0, len(flat), 1024)])
        self.G.encoder.train(training)
        first = counts.cumsum(0) - counts
        return bank, has.nonzero()[:, 0].to(device), first.to(device)

    def _pretrained_on(self, data: ImageSet) -> Path:
        """A text encoder pretrained on `data` with these options, from BELAMY_HOME/text_encoders (trained once)."""
        from belamy.metrics.cache import home_dir
        from belamy.metrics.classifier import data_sha256
        from belamy.text import pretrain_text_encoder, save_text_encoder

        o = self.options
        settings = {"steps": o.encoder_steps, "embed_dim": o.embed_dim, "hidden_dim": o.hidden_dim,
                    "max_length": o.max_length, "seed": 0}
        key = hashlib.sha256(json.dumps([data_sha256(data), data.captions, settings]).encode()).hexdigest()[:16]
        folder = home_dir("text_encoders") / f"{data.info.name}-{key}"
        if not (folder / "text_encoder.json").is_file():
            pretrained = pretrain_text_encoder(data, steps=o.encoder_steps, embed_dim=o.embed_dim,
                                               hidden_dim=o.hidden_dim, max_length=o.max_length,
                                               tokenizer=self.tokenizer(self.data),
                                               device=next(self.G.parameters()).device)  # where G trains
            save_text_encoder(folder, pretrained)
        return folder

    def caption_tokens(self, captions: list[list[str]]) -> tuple[Tensor, Tensor]:
        tokenizer, length = self.tokenizer(self.data), self.options.max_length
        k = max(len(c) for c in captions)
        tokens = torch.zeros(len(captions), k, length, dtype=torch.long)
        for i, texts in enumerate(captions):
            for j, text in enumerate(texts):
                ids = tokenizer.encode(text, length)
                tokens[i, j, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return tokens, torch.tensor([len(c) for c in captions])

    # --- phases ------------------------------------------------------------------------------------------------------

    def d_step(self, batch: Batch) -> dict[str, Tensor]:
        assert batch.text is not None, "text2img needs captioned data"
        noise = batch.randn(self.options.cond_dim)
        with torch.set_grad_enabled(batch.keep_fake):
            fake, kl, sentence = self.G(batch.z, batch.text, noise, return_all=True, sentence=self._looked_up(batch))
        if batch.keep_fake:  # the G step reuses this forward
            batch.fake, batch.made["kl"], batch.made["sentence"] = fake, kl, sentence
        sentence = sentence.detach()
        # MA-GP needs D's gradient wrt the real image and its caption, so both enter D as leaves that need it.
        o, penalize = self.options, self.options.gp_weight > 0
        real = batch.real.detach().requires_grad_(penalize)
        text = sentence.clone().requires_grad_(penalize)
        wrong = self._mismatched(sentence, batch)  # another image's caption
        contrast = (sentence, wrong) if o.hard_contrastive and o.hard_negatives > 0 else (sentence,)
        # Each D call goes through D's forward (the DDP wrapper exposes nothing else): the real images are read
        # once, and judged with their own captions and with mismatched ones.
        critic = o.word_critic > 0
        real_read = self.D(real, judge=(text, wrong), match=contrast if o.contrastive_weight > 0 else (),
                           words=o.word_weight > 0, word_realism=critic)
        fake_read = self.D(fake.detach(), judge=(sentence,), word_realism=critic)
        real_logits, mismatched_logits = (logits.float() for logits in real_read.logits)
        fake_logits = fake_read.logits[0].float()
        # DF-GAN: real - (fake + mismatched) / 2, written as the mean of the two games D plays
        adversarial = 0.5 * (self.loss.d(real_logits, fake_logits) + self.loss.d(real_logits, mismatched_logits))
        terms = {"d_adversarial": adversarial}
        if real_read.patches is not None:  # the same game, played by every patch (on matched pairs: it reads no text)
            terms["d_patches"] = o.patch_weight * self.loss.d(real_read.patches.float(), fake_read.patches.float())
        if penalize:
            grad_image, grad_text = torch.autograd.grad(real_logits.sum(), (real, text), create_graph=True)
            norm = torch.cat([grad_image.flatten(1), grad_text.flatten(1)], dim=1).float().norm(dim=1)
            terms["ma_gp"] = o.gp_weight * norm.pow(o.gp_power).mean()
        if o.contrastive_weight > 0:  # XMC-GAN: which of the batch's captions does each real image show?
            terms["contrastive"] = o.contrastive_weight * self._contrastive(real_read)
        if o.word_weight > 0:
            terms["words"] = o.word_weight * self._words(real_read.words, batch.text)
        if critic:  # each word of the caption: a real image showing it against a fake of the same caption
            # the logistic game (Goodfellow et al. 2014), per word: -log D(x, w) - log(1 - D(G(z), w))
            terms["word_critic"] = o.word_critic * self._over_caption_words(
                F.softplus(-real_read.word_realism.float()) + F.softplus(fake_read.word_realism.float()), batch.text)
        return {"loss": sum(terms.values()), **{k: v.detach() for k, v in terms.items()},
                "d_real": self.loss.d_output(real_logits.detach()).mean(),
                "d_fake": self.loss.d_output(fake_logits.detach()).mean(),
                "d_mismatched": self.loss.d_output(mismatched_logits.detach()).mean()}

    def g_step(self, batch: Batch) -> dict[str, Tensor]:
        if batch.fake is not None:
            fake, kl, sentence = batch.fake, batch.made["kl"], batch.made["sentence"]
        else:
            fake, kl, sentence = self.G(batch.z, batch.text, batch.randn(self.options.cond_dim), return_all=True,
                                        sentence=self._looked_up(batch))
        o = self.options
        read = self.D(fake, judge=(sentence,), match=(sentence.detach(),) if o.contrastive_weight > 0 else (),
                      words=o.word_weight > 0, word_realism=o.word_critic > 0)
        terms = {"g_adversarial": self.loss.g(read.logits[0].float()), "kl": o.kl_weight * kl.float().mean()}
        if read.patches is not None:
            terms["g_patches"] = o.patch_weight * self.loss.g(read.patches.float())
        if o.contrastive_weight > 0:  # XMC-GAN: each fake must show its own caption to D's eyes
            terms["g_contrastive"] = o.contrastive_weight * self._contrastive(read)
        if o.word_weight > 0:
            terms["g_words"] = o.word_weight * self._words(read.words, batch.text)
        if o.word_critic > 0:
            terms["g_word_critic"] = o.word_critic * self._over_caption_words(  # non-saturating: -log D(G(z), w)
                F.softplus(-read.word_realism.float()), batch.text)
        return {"loss": sum(terms.values()), **{k: v.detach() for k, v in terms.items()}}

    def _mismatched(self, sentence: Tensor, batch: Batch) -> Tensor:
        """A caption that the real image does not show, for each of the batch [B, D]. With hard_negatives = k (the
        default): one of the k training captions of other images nearest to the image's own caption, so D must
        read what separates close captions (a shape, a position), not only the background colour that tells most
        random pairs apart. Otherwise the next image's (GAN-INT-CLS)."""
        k = self.options.hard_negatives
        if k <= 0 or batch.index is None or not hasattr(self, "caption_bank"):
            return sentence.roll(1, dims=0)
        if batch.caption is not None and sentence.device.type == "cpu":  # each bank caption searched once per run
            rows = self._caption_rows(batch)  # (on a GPU the search is cheap, and this would make the host wait)
            todo = rows[self.caption_nearest[rows, 0] < 0].unique()
            if len(todo):
                self.caption_nearest[todo] = self._nearest(self.caption_unit[todo], self.caption_image[todo])
            nearest = self.caption_nearest[rows]
        else:
            nearest = self._nearest(F.normalize(sentence.float(), dim=1), batch.index)
        pick = (batch.rand(1) * k).long().clamp_max(k - 1)  # [B, 1]
        return self.caption_bank[nearest.gather(1, pick)[:, 0]].to(sentence.dtype)

    def _nearest(self, unit: Tensor, image: Tensor) -> Tensor:
        """The hard_negatives bank captions [B, k] nearest to unit sentence embeddings [B, D], other than those of
        their own images [B]."""
        similarity = unit @ self.caption_unit.T  # [B, M]
        similarity.masked_fill_(self.caption_image[None] == image[:, None], -2.0)  # never its own image's
        return similarity.topk(self.options.hard_negatives, dim=1).indices

    def _caption_rows(self, batch: Batch) -> Tensor:
        return self.caption_first[batch.index] + batch.caption

    def _looked_up(self, batch: Batch) -> Tensor | None:
        """The (whitened) sentence embeddings of the batch's captions from the bank of a frozen encoder, the same
        as G.encode(batch.text); None where there is no bank (a fine-tuned encoder) or the batch's captions are not
        the bank's."""
        if batch.caption is None or batch.index is None or not hasattr(self, "caption_bank"):
            return None
        return self.caption_bank[self._caption_rows(batch)]

    def _contrastive(self, read: DiscriminatorReading) -> Tensor:
        """XMC-GAN's sentence contrastive loss (Zhang et al. 2021, eq. 4) between D's embeddings of the images and
        of their captions (read.text_match[0]; further ones: captions no image shows, more wrong answers), over the
        global batch: under DDP each rank gathers the others' rows (gather_rows), as one process would see them.
        Symmetric InfoNCE; with one image the batch has nothing to contrast."""
        own, *extra = read.text_match
        width = own.shape[1]
        # one collective for all of them: [b, (1 + 1 + extra) * match_dim]
        rows = gather_rows(torch.cat([read.image_match, own, *extra], dim=1))
        if rows.shape[0] < 2:
            return rows.new_zeros(())
        image, text, *more = rows.split(width, dim=1)
        return contrastive_loss(image, text, read.logit_scale, torch.cat(more) if more else None)

    def _words(self, logits: Tensor, tokens: Tensor) -> Tensor:
        """Multi-label cross-entropy of D's word logits [B, vocabulary (+ pairs)] of images against the words of
        their captions (token ids [B, L]), summed over the vocabulary: an auxiliary classifier (AC-GAN, Odena et al.
        2017) whose classes are the caption's words, so that a shape word counts as much as a background colour."""
        logits = logits.float()
        vocabulary = logits.shape[1] - self.options.word_pairs
        present = self._caption_words(logits, tokens).float()
        if self.options.word_pairs:
            first, second = tokens[:, :-1], tokens[:, 1:]
            pair = vocabulary + (first * vocabulary + second) % self.options.word_pairs
            known = ((first >= len(SPECIALS)) & (second >= len(SPECIALS))).float()
            present.scatter_reduce_(1, pair, known, reduce="amax")
        return F.binary_cross_entropy_with_logits(logits, present, reduction="none").sum(1).mean()

    @staticmethod
    def _caption_words(logits: Tensor, tokens: Tensor) -> Tensor:
        """Which classes of word logits [B, classes] are words of each caption (token ids [B, L]): bool [B, classes];
        padding and unknown words say nothing about the image."""
        present = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device).scatter_(1, tokens, True)
        present[:, :len(SPECIALS)] = False
        return present

    def _over_caption_words(self, losses: Tensor, tokens: Tensor) -> Tensor:
        """Per-word losses [B, classes] summed over each caption's words and averaged over the batch, as the words
        term weighs them (a mask, not boolean indexing: no host sync on a GPU)."""
        return (losses * self._caption_words(losses, tokens)).sum(1).mean()

    @torch.no_grad()
    def preview(self, G: nn.Module, batch: Batch) -> tuple[Tensor, int | None]:
        """A row of 8 samples per fixed caption (samples/captions.txt lists them)."""
        return G(batch.z, batch.text).float(), 8


def interpolate_embeddings(a: Tensor, b: Tensor, steps: int) -> Tensor:
    """GAN-INT (Reed et al. 2016): points on the line between two sentence embeddings [D] -> [steps, D]."""
    t = torch.linspace(0, 1, steps, device=a.device)[:, None]
    return torch.lerp(a[None], b[None], t)


__all__ = ["Text2Img", "Text2ImgOptions", "TextToImageGenerator", "interpolate_embeddings"]
