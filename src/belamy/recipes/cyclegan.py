"""`cyclegan` (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks").

Two generators, G: A -> B and F: B -> A (code names a_to_b, b_to_a), and two PatchGAN discriminators, D_Y on domain
B and D_X on domain A (code names d_b, d_a), trained with the least-squares loss (section 4). G also minimizes the
cycle-consistency loss lambda (|F(G(a)) - a| + |G(F(b)) - b|), lambda = 10 (eq. 2-3), and the identity loss
0.5 lambda (|G(b) - b| + |F(a) - a|) (section 5.2, after Taigman et al. 2017), which keeps colours and whatever
needs no change. D learns from a history of 50 earlier fakes rather than only the newest (Shrivastava et al. 2017),
and the learning rates hold for the first half of the run, then decay linearly to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from belamy.data.base import DataInfo
from belamy.nets import PatchDiscriminator, ResNetTranslator
from belamy.recipes.base import RECIPES, Batch, Recipe, RecipeDefaults
from belamy.recipes.pix2pix import patch_layers


@dataclass
class CycleGANOptions:
    cycle_weight: float = 10.0  # lambda of eq. 3
    identity_weight: float = 0.5  # the identity loss's weight, as a fraction of cycle_weight (0: none)
    pool_size: int = 50  # earlier fakes D learns from (0: only the newest)
    width: int = 64  # generator channels (ngf)
    blocks: int = 0  # residual blocks per generator; 0: 9 from 256 px, 6 below (the paper)
    downsampling: int = 2  # stride-2 levels per generator
    d_width: int = 64
    d_layers: int = 0  # PatchGAN layers; 0: by resolution (see pix2pix)


class CycleGenerators(nn.Module):
    """Both generators as one network (one optimizer, one EMA, one export): G(a) by default, F(b) with reverse."""

    latent_dim = 0

    def __init__(self, a_to_b: nn.Module, b_to_a: nn.Module) -> None:
        super().__init__()
        self.a_to_b, self.b_to_a = a_to_b, b_to_a
        self.size_multiple = a_to_b.size_multiple

    def forward(self, z: Tensor, condition: Tensor, reverse: bool = False) -> Tensor:
        return (self.b_to_a if reverse else self.a_to_b)(z, condition)


class HistoryPool(nn.Module):
    """The last `size` fakes D was shown (Shrivastava et al. 2017), kept as buffers so checkpoints resume it."""

    def __init__(self, size: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, fakes: Tensor, u: Tensor) -> Tensor:
        """The images D judges, one per fake, with uniform draws u [B, 2]: while the pool fills, each fake goes in
        and is returned; then with probability 1/2 a fake is returned as is, otherwise it replaces a random stored
        one, which is returned instead (the reference implementation's ImagePool)."""
        if self.size == 0:
            return fakes
        out = fakes.clone()
        for i in range(fakes.shape[0]):  # sequential: the pool changes as the batch goes in
            n = int(self.count)
            if n < self.size:
                self.images[n] = fakes[i]
                self.count += 1
            elif u[i, 0] < 0.5:
                j = int(u[i, 1] * self.size)
                out[i] = self.images[j]
                self.images[j] = fakes[i]
        return out


class CycleDiscriminators(nn.Module):
    """D_X (d_a, on domain A) and D_Y (d_b, on domain B), with their history pools."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module, pool_size: int, shape_a: tuple[int, ...],
                 shape_b: tuple[int, ...]) -> None:
        super().__init__()
        self.d_a, self.d_b = d_a, d_b
        self.pool_a, self.pool_b = HistoryPool(pool_size, shape_a), HistoryPool(pool_size, shape_b)

    def forward(self, x: Tensor, domain: str) -> Tensor:
        return self.d_a(x) if domain == "A" else self.d_b(x)


def _bare(net: nn.Module) -> nn.Module:
    return getattr(net, "module", net)  # the module inside a DDP wrapper


@RECIPES.register("cyclegan")
class CycleGAN(Recipe):
    """Unpaired translation A <-> B: ResNet generators, PatchGAN Ds, LSGAN, cycle 10, identity 0.5 (Zhu et al.)."""

    name = "cyclegan"
    Options = CycleGANOptions
    needs_images = True
    task = "translate"
    pairing = ("unpaired", "paired")  # paired data trains it too (the pairing is not used)
    defaults = RecipeDefaults(loss="lsgan", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), batch_size=8,
                              lr_decay="hold-linear")

    @staticmethod
    def _shapes(data: DataInfo) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return data.input_shape or data.shape, data.shape

    @classmethod
    def build_generator(cls, options: CycleGANOptions, data: DataInfo) -> nn.Module:
        (ca, r, _), (cb, _, _) = cls._shapes(data)
        blocks = options.blocks or (9 if r >= 256 else 6)
        return CycleGenerators(ResNetTranslator(ca, cb, options.width, options.downsampling, blocks),
                               ResNetTranslator(cb, ca, options.width, options.downsampling, blocks))

    @classmethod
    def build_discriminator(cls, options: CycleGANOptions, data: DataInfo) -> nn.Module:
        shape_a, shape_b = cls._shapes(data)
        layers = patch_layers(options.d_layers, shape_b[1])
        return CycleDiscriminators(PatchDiscriminator(shape_a[0], options.d_width, layers),
                                   PatchDiscriminator(shape_b[0], options.d_width, layers),
                                   options.pool_size, shape_a, shape_b)

    def _fakes(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(G(a), F(b)) of this batch, made once (the D step keeps the graph for the G step)."""
        if "fake_b" not in batch.made:
            batch.made["fake_b"] = self.G(batch.z, batch.inputs)
            batch.made["fake_a"] = self.G(batch.z, batch.real, reverse=True)
        return batch.made["fake_b"], batch.made["fake_a"]

    def d_step(self, batch: Batch) -> dict[str, Tensor]:
        real_a, real_b = batch.inputs, batch.real
        with torch.set_grad_enabled(batch.keep_fake):
            fake_b, fake_a = self._fakes(batch)
        if not batch.keep_fake:
            batch.made.clear()
        pools = _bare(self.D)
        fake_b = pools.pool_b.query(fake_b.detach(), batch.rand(2))
        fake_a = pools.pool_a.query(fake_a.detach(), batch.rand(2))
        real_b_logits, fake_b_logits = self.D(real_b, "B").float(), self.D(fake_b, "B").float()
        real_a_logits, fake_a_logits = self.D(real_a, "A").float(), self.D(fake_a, "A").float()
        loss_b = self.loss.d(real_b_logits, fake_b_logits)  # D_Y
        loss_a = self.loss.d(real_a_logits, fake_a_logits)  # D_X
        return {"loss": loss_a + loss_b, "d_loss_a": loss_a.detach(), "d_loss_b": loss_b.detach(),
                "d_real": self.loss.d_output(torch.cat([real_a_logits.flatten(), real_b_logits.flatten()])).mean(),
                "d_fake": self.loss.d_output(torch.cat([fake_a_logits.flatten(), fake_b_logits.flatten()])).mean()}

    def g_step(self, batch: Batch) -> dict[str, Tensor]:
        o = self.options
        real_a, real_b = batch.inputs, batch.real
        fake_b, fake_a = self._fakes(batch)
        adversarial = self.loss.g(self.D(fake_b, "B").float()) + self.loss.g(self.D(fake_a, "A").float())
        cycle = (self.G(batch.z, fake_b, reverse=True) - real_a).abs().mean() \
            + (self.G(batch.z, fake_a) - real_b).abs().mean()  # F(G(a)) ~ a, G(F(b)) ~ b
        terms = {"cycle": o.cycle_weight * cycle}
        if o.identity_weight and real_a.shape[1] == real_b.shape[1]:
            identity = (self.G(batch.z, real_b) - real_b).abs().mean() \
                + (self.G(batch.z, real_a, reverse=True) - real_a).abs().mean()  # G(b) ~ b, F(a) ~ a
            terms["identity"] = o.identity_weight * o.cycle_weight * identity
        return {"loss": adversarial + sum(terms.values()), "g_adversarial": adversarial, **terms}

    @torch.no_grad()
    def preview(self, G: nn.Module, batch: Batch) -> tuple[Tensor, int | None]:
        """Per example: a, G(a), F(G(a)), b, F(b), G(F(b)); two examples to a row."""
        a, b = batch.inputs[:8], batch.real[:8]
        z = batch.z[:8]
        fake_b, fake_a = G(z, a), G(z, b, reverse=True)
        rows = [a, fake_b, G(z, fake_b, reverse=True)]
        back = [b, fake_a, G(z, fake_a)]
        if a.shape[1] != b.shape[1]:  # show both domains with the same channels
            rows = [x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x for x in rows]
            back = [x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x for x in back]
        return torch.stack(rows + back, dim=1).flatten(0, 1).float(), 12
