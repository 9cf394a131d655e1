"""Adversarial losses and regularizers: small pure functions of the discriminator's logits.

Conventions: `real_logits` = D(x), `fake_logits` = D(G(z)); every function returns a scalar to *minimize*, so the
discriminator's maximization of the value function is written as the minimization of its negative.
`softplus(-t) = -log(sigmoid(t))` and `softplus(t) = -log(1 - sigmoid(t))` are the numerically stable forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from belamy.registry import Registry

# --- Goodfellow et al. 2014, "Generative Adversarial Nets": min_G max_D E[log D(x)] + E[log(1 - D(G(z)))] -------


def d_logistic(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D's side of the 2014 minimax game (shared by the minimax and non-saturating GANs, Goodfellow et al. 2014)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # -log D(x) - log(1 - D(G(z)))


def g_minimax(fake_logits: Tensor) -> Tensor:
    """G minimizes log(1 - D(G(z))): the saturating form of Goodfellow et al. 2014, eq. 1.

    Its gradient vanishes when D confidently rejects fakes early in training; kept for study and comparison."""
    return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(t)) = -softplus(t)


def g_nonsaturating(fake_logits: Tensor) -> Tensor:
    """G maximizes log D(G(z)) instead: the non-saturating heuristic of Goodfellow et al. 2014, section 3."""
    return F.softplus(-fake_logits).mean()  # -log sigmoid(t)


# --- Mao et al. 2017, "Least Squares Generative Adversarial Networks" (a=0, b=c=1, eq. 2) ---------------------


def d_least_squares(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """LSGAN discriminator: 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2] (Mao et al. 2017)."""
    return 0.5 * ((real_logits - 1).square().mean() + fake_logits.square().mean())


def g_least_squares(fake_logits: Tensor) -> Tensor:
    """LSGAN generator: 1/2 E[(D(G(z)) - 1)^2] (Mao et al. 2017)."""
    return 0.5 * (fake_logits - 1).square().mean()


# --- Lim & Ye 2017 "Geometric GAN"; Miyato et al. 2018 (SNGAN) -----------------------------------------------------


def d_hinge(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge discriminator: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: Tensor) -> Tensor:
    """Hinge generator: -E[D(G(z))] (Lim & Ye 2017)."""
    return -fake_logits.mean()


# --- Arjovsky et al. 2017, "Wasserstein GAN" --------------------------------------------------------------------


def d_wasserstein(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Critic: E[D(G(z))] - E[D(x)], the negative Kantorovich-Rubinstein estimate (Arjovsky et al. 2017).

    Only meaningful with a Lipschitz constraint: the gradient penalty below, or spectral norm."""
    return fake_logits.mean() - real_logits.mean()


def g_wasserstein(fake_logits: Tensor) -> Tensor:
    """Generator: -E[D(G(z))] (Arjovsky et al. 2017)."""
    return -fake_logits.mean()


# --- Regularizers -------------------------------------------------------------------------------------------------


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, alpha: Tensor,
                     target: float = 1.0) -> Tensor:
    """WGAN-GP: E[(||grad_x D(x_hat)||_2 - 1)^2] on x_hat = alpha x + (1 - alpha) G(z) (Gulrajani et al. 2017, eq. 3).

    `alpha` [B, 1, ...] ~ U[0, 1] is passed in so that the caller's seeded generator draws it (resumable runs).
    The caller multiplies by lambda (10 in the paper)."""
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).float().requires_grad_(True)
    with torch.autocast(x_hat.device.type, enabled=False):  # fp32: under bf16/fp16 the penalty loses its digits
        logits = critic(x_hat)
    grad = _input_gradient(logits, x_hat)
    return (grad.flatten(1).norm(2, dim=1) - target).square().mean()


MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps exp(logit_scale) at 100 for stability


def contrastive_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                     extra_text: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE (CLIP, Radford et al. 2021): image i's caption is text i among the B of the batch, and text
    i's image is image i. features [B, D] (any norm; compared by cosine similarity times exp(logit_scale)).
    extra_text [E, D]: further captions that no image shows, more wrong answers for each image to rule out.

    Used to pretrain belamy's text encoder, and by text2img's discriminator and generator as XMC-GAN's sentence
    contrastive loss (Zhang et al. 2021, eq. 4)."""
    assert image_features.shape == text_features.shape, (image_features.shape, text_features.shape)
    texts = text_features if extra_text is None else torch.cat([text_features, extra_text])
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * F.normalize(image_features.float(), dim=1) \
        @ F.normalize(texts.float(), dim=1).T  # [B images, B (+ E) texts]
    b = logits.shape[0]
    target = torch.arange(b, device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, :b].T, target)) / 2


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """R1: E[||grad_x D(x)||^2] on real data (Mescheder et al. 2018, eq. 9); the caller multiplies by gamma/2.

    `real` must have had requires_grad set before D was applied."""
    return _input_gradient(real_logits, real).flatten(1).square().sum(1).mean()


# --- Jolicoeur-Martineau 2019 "The relativistic discriminator"; used by ESRGAN (Wang et al. 2018) -------------------


def d_relativistic_average(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """RaGAN discriminator: real data should look more realistic than fake data on average, and fake data less
    realistic than real data: -log sigmoid(C(x) - E C(G(z))) - log(1 - sigmoid(C(G(z)) - E C(x))) (eq. 10 of
    Jolicoeur-Martineau 2019; ESRGAN eq. 1-2)."""
    return 0.5 * (F.softplus(-(real_logits - fake_logits.mean())).mean()
                  + F.softplus(fake_logits - real_logits.mean()).mean())


def g_relativistic_average(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """RaGAN generator: the symmetric form, which also draws gradient from the real data's logits (ESRGAN eq. 3);
    `real_logits` come from the current D and carry no gradient to it."""
    return 0.5 * (F.softplus(real_logits - fake_logits.mean()).mean()
                  + F.softplus(-(fake_logits - real_logits.mean())).mean())


def _input_gradient(logits: Tensor, inputs: Tensor) -> Tensor:
    # create_graph: the penalty itself is differentiated by D's optimizer step. Computed in float32 since a
    # bf16 gradient norm squared loses most of its digits.
    (grad,) = torch.autograd.grad(logits.float().sum(), inputs, create_graph=True)
    return grad.float()


# --- The named pairs that `--loss` selects -------------------------------------------------------------------------


@dataclass(frozen=True)
class AdversarialLoss:
    """A D loss and a G loss that belong together, plus how to read D's output as "D(x)" for the logs."""

    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]
    probability_output: bool  # True: D(x) = sigmoid(logit) is a probability; False: report raw scores

    def d_output(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits) if self.probability_output else logits


LOSSES: Registry[AdversarialLoss] = Registry("loss")
LOSSES.register("minimax", "Goodfellow et al. 2014, saturating G loss log(1 - D(G(z)))")(
    AdversarialLoss(d_logistic, g_minimax, True))
LOSSES.register("nonsaturating", "Goodfellow et al. 2014, non-saturating G loss -log D(G(z))")(
    AdversarialLoss(d_logistic, g_nonsaturating, True))
LOSSES.register("lsgan", "Mao et al. 2017, least squares")(AdversarialLoss(d_least_squares, g_least_squares, False))
LOSSES.register("hinge", "Lim & Ye 2017 / Miyato et al. 2018, hinge")(AdversarialLoss(d_hinge, g_hinge, False))
LOSSES.register("wasserstein", "Arjovsky et al. 2017, critic scores")(
    AdversarialLoss(d_wasserstein, g_wasserstein, False))
