"""Training health: the detectors fire on deliberately broken runs and stay quiet on a healthy one; recovery rolls
back to the last good checkpoint with lower learning rates."""

import json

import pytest

import belamy
from belamy.recipes import RECIPES
from belamy.recipes.dcgan import DCGAN
from belamy.train import TrainingDiverged
from belamy.train.health import HealthMonitor, HealthRules

from helpers import TINY_DCGAN

QUIET = {**TINY_DCGAN, "log_every": 5}


class _IgnoresLatents(DCGAN):
    """A broken generator input: every latent is zero, so G draws one image over and over (total collapse)."""

    name = "test-ignores-latents"

    def d_step(self, batch):
        batch.z = batch.z * 0
        return super().d_step(batch)


class _NaNBetweenCalls(DCGAN):
    """D's loss is NaN on D steps first..last (counted over the process's life): a transient blow-up."""

    name = "test-nan-once"
    first, last = 13, 15

    def d_step(self, batch):
        self.calls = getattr(self, "calls", 0) + 1
        losses = super().d_step(batch)
        if self.first <= self.calls <= self.last:
            losses["loss"] = losses["loss"] * float("nan")
        return losses


class _NaNForever(_NaNBetweenCalls):
    name = "test-nan-forever"
    first, last = 13, 10**9


@pytest.fixture(autouse=True, scope="module")
def _register():
    for cls in (_IgnoresLatents, _NaNBetweenCalls, _NaNForever):
        if cls.name not in RECIPES:
            RECIPES.register(cls.name)(cls)


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _alerts(run_dir):
    return [r for r in _records(run_dir) if r.get("event") == "alert"]


def test_a_healthy_run_logs_health_figures_and_raises_no_alert(tmp_path):
    run = belamy.train(**{**QUIET, "log_every": 10}, steps=150, out=str(tmp_path), name="r")
    figures = [r for r in _records(run.path) if "loss_d" in r]
    for key in ("grad_norm_g", "grad_norm_d", "diversity", "d_real", "d_fake"):
        assert all(r[key] > 0 for r in figures), key
    assert figures[-1]["diversity"] > figures[0]["diversity"]  # G's samples spread out as it learns
    assert _alerts(run.path) == []


def test_collapse_is_detected(tmp_path):
    run = belamy.train(**{**QUIET, "model": "test-ignores-latents"}, steps=40, recover="none", out=str(tmp_path),
                       name="r")
    alerts = _alerts(run.path)
    assert [a["alert"] for a in alerts] == ["mode_collapse"]
    assert alerts[0]["step"] == 15  # warm-up (4 steps), then 3 intervals of 5 steps below the floor
    assert alerts[0]["figures"]["diversity"] < 0.05


def test_an_overpowering_discriminator_is_detected(tmp_path):
    # The saturating 2014 loss, a fast D and a G that barely moves: D(fake) -> 0 and G's gradient vanishes.
    run = belamy.train(**QUIET, steps=60, loss="minimax", lr_g=1e-6, lr_d=1e-2, recover="none", out=str(tmp_path),
                       name="r")
    alerts = _alerts(run.path)
    assert "d_overpowering" in [a["alert"] for a in alerts], alerts
    figures = next(a for a in alerts if a["alert"] == "d_overpowering")["figures"]
    assert figures["d_fake"] < 0.05 and figures["grad_norm_g"] < 0.1 * figures["peak_grad_norm_g"]


def test_rules_need_patience_and_rearm():
    monitor = HealthMonitor(HealthRules(patience=2), probability_output=True)
    fired = [monitor.check({"step": s, "diversity": d}) for s, d in enumerate([0.8, 0.3, 0.3, 0.3, 0.9, 0.3, 0.3], start=1)]
    assert [i for i, alerts in enumerate(fired) if alerts] == [2, 6]


def test_recovery_rolls_back_and_lowers_the_learning_rates(tmp_path):
    run = belamy.train(**{**QUIET, "model": "test-nan-once"}, steps=30, ckpt_every=5, out=str(tmp_path), name="r")
    assert run.step == 30
    records = _records(run.path)
    recovery = [r for r in records if r.get("event") == "recovery"]
    assert len(recovery) == 1 and "rolled back to step-0000010" in recovery[0]["message"]
    assert "x0.5" in recovery[0]["message"]
    assert [r["lr_d"] for r in records if "lr_d" in r][-1] == pytest.approx(0.5 * 2e-4)
    state = json.loads((run.path / "checkpoints" / "step-0000030" / "state.json").read_text())
    assert (state["lr_scale"], state["recoveries"]) == (0.5, 1)  # a resumed run keeps the lowered rates


def test_recovery_gives_up_after_max_recoveries(tmp_path):
    with pytest.raises(TrainingDiverged, match="non-finite.*step-0000010"):
        belamy.train(**{**QUIET, "model": "test-nan-forever"}, steps=40, ckpt_every=5, max_recoveries=2,
                     out=str(tmp_path), name="r")
    events = [r.get("event") for r in _records(tmp_path / "r")]
    assert events.count("recovery") == 3 and events[-1] == "error"  # 2 roll-backs, "no recovery left", the stop


def test_recovery_on_alerts_is_opt_in(tmp_path):
    run = belamy.train(**{**QUIET, "model": "test-ignores-latents"}, steps=30, ckpt_every=5, recover="alerts",
                       max_recoveries=1, out=str(tmp_path), name="r")
    recovery = [r for r in _records(run.path) if r.get("event") == "recovery"]
    assert "mode collapse" in recovery[0]["message"] and "rolled back" in recovery[0]["message"]
