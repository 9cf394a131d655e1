"""Watching a run: small, documented rules over the figures of each logging interval.

The engine logs, per interval: losses, D(real) and D(fake), the gradient norms of G and D, and the diversity of
G's samples (the mean pairwise distance of a batch of fakes over that of a batch of reals, in pixel space or in
the space of 2-D points). A rule that holds for `patience` consecutive intervals after the warm-up raises an
alert once; it re-arms when the condition clears. Non-finite values are not a rule here: the engine stops (or,
with recovery, rolls back) at the first one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class HealthRules:
    patience: int = 3  # consecutive log intervals a condition must hold before it is an alert
    warmup_fraction: float = 0.1  # no alerts in the first 10% of the steps: an untrained G is not collapsed
    # Mode collapse suspected: the spread of G's samples (relative to the reals') falls below half of its peak so
    # far, or below 5% of the reals' outright: a collapsing G draws near-copies. An untrained G starts with a low
    # spread that grows as it learns (~0.15-0.3 for a DCGAN), so the rule watches for a drop, not a level.
    collapse_drop: float = 0.5
    collapse_floor: float = 0.05
    # Discriminator overpowering (probability-output losses): D(fake) stays near 0 while G's gradient vanishes
    # relative to its peak so far (Arjovsky & Bottou 2017, "Towards principled methods...", the saturating case).
    overpowered_d_fake: float = 0.05
    vanishing_grad_fraction: float = 0.1


@dataclass(frozen=True)
class Alert:
    kind: str  # "mode_collapse" | "d_overpowering"
    message: str
    figures: dict[str, float]


@dataclass
class HealthMonitor:
    rules: HealthRules
    probability_output: bool  # D(x) is a probability (logistic losses); the overpowering rule needs that
    warmup_steps: int = 0
    _streaks: dict[str, int] = field(default_factory=dict, init=False)
    _peak_grad_g: float = field(default=0.0, init=False)
    _peak_diversity: float = field(default=0.0, init=False)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps, so that a resumed or rolled-back run judges as the uninterrupted one did."""
        return {"streaks": dict(self._streaks), "peak_grad_g": self._peak_grad_g,
                "peak_diversity": self._peak_diversity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._streaks = {k: int(v) for k, v in state.get("streaks", {}).items()}
        self._peak_grad_g = float(state.get("peak_grad_g", 0.0))
        self._peak_diversity = float(state.get("peak_diversity", 0.0))

    def check(self, record: dict[str, Any]) -> list[Alert]:
        """The alerts that the interval `record` (a log record) completes."""
        if "grad_norm_g" in record:
            self._peak_grad_g = max(self._peak_grad_g, record["grad_norm_g"])
        diversity = record.get("diversity")
        if diversity is not None:
            self._peak_diversity = max(self._peak_diversity, diversity)
        if record["step"] <= self.warmup_steps:
            return []
        alerts = []
        if diversity is not None:
            limit = max(self.rules.collapse_floor, self.rules.collapse_drop * self._peak_diversity)
            if self._holds("mode_collapse", diversity < limit):
                alerts.append(Alert("mode_collapse", f"mode collapse suspected: G's samples are {diversity:.3g}x "
                                    f"as spread as real data, under {limit:.3g} (peak {self._peak_diversity:.3g}) "
                                    f"for {self.rules.patience} intervals",
                                    {"diversity": diversity, "peak_diversity": self._peak_diversity}))
        if self.probability_output and "d_fake" in record and "grad_norm_g" in record:
            d_fake, grad = record["d_fake"], record["grad_norm_g"]
            vanishing = grad < self.rules.vanishing_grad_fraction * self._peak_grad_g
            if self._holds("d_overpowering", d_fake < self.rules.overpowered_d_fake and vanishing):
                alerts.append(Alert("d_overpowering", f"discriminator overpowering: D(fake) = {d_fake:.3g} and G's "
                                    f"gradient norm {grad:.3g} is under {self.rules.vanishing_grad_fraction:.0%} of "
                                    f"its peak {self._peak_grad_g:.3g} for {self.rules.patience} intervals; try a "
                                    f"lower --lr-d, the nonsaturating loss or spectral norm",
                                    {"d_fake": d_fake, "grad_norm_g": grad, "peak_grad_norm_g": self._peak_grad_g}))
        return alerts

    def _holds(self, rule: str, condition: bool) -> bool:
        """Count consecutive intervals; True exactly when the streak reaches `patience`."""
        self._streaks[rule] = self._streaks.get(rule, 0) + 1 if condition else 0
        return self._streaks[rule] == self.rules.patience


def sample_diversity(fake: Tensor, real: Tensor, n: int = 64) -> Tensor | None:
    """Mean pairwise L2 distance of up to `n` fakes over that of up to `n` reals (a device tensor: no host sync);
    None when either side has fewer than 2 rows (a tiny per-process batch)."""
    if fake.shape[0] < 2 or real.shape[0] < 2:
        return None
    fake = fake.detach()[:n].flatten(1).float()
    real = real.detach()[:n].flatten(1).float()
    return torch.pdist(fake).mean() / torch.pdist(real).mean().clamp_min(1e-12)


def gradient_norm(parameters) -> Tensor:
    """The global L2 norm of the parameters' gradients (as clip_grad_norm_ computes it, without clipping)."""
    parameters = list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), device=parameters[0].device if parameters else None)
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: one fused (foreach) pass over the gradients
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
