"""`--eval-every`: metrics during training, logged, with the best generator kept as a model folder."""

import json

import belamy

from helpers import TINY_DCGAN


def _evals(run_dir):
    return [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if r.get("event") == "eval"]


def test_eval_every_logs_metrics_and_keeps_the_best_generator(tmp_path):
    run = belamy.train(**TINY_DCGAN, steps=60, eval_every=20, eval_n=500, eval_metrics="fid,classes",
                       out=str(tmp_path), name="r")
    evals = _evals(run.path)
    assert [e["step"] for e in evals] == [20, 40, 60]
    assert all(e["extractor"] == "classifier" and e["extractor_accuracy"] > 0.9 for e in evals)
    assert evals[-1]["fid"] < evals[0]["fid"]  # learning shows in the metric
    assert all(1 <= e["classes_covered"] <= 10 and e["class_kl"] >= 0 for e in evals)
    best = json.loads((run.path / "best" / "config.json").read_text())
    assert best["fid"] == min(e["fid"] for e in evals)
    assert best["step"] == min(evals, key=lambda e: e["fid"])["step"]
    assert belamy.load(run.path / "best").sample(4, seed=0).shape == (4, 1, 8, 8)


def test_conditional_runs_report_class_accuracy_and_points_report_modes(tmp_path):
    run = belamy.train(**{**TINY_DCGAN, "model": "cgan"}, steps=20, eval_every=20, eval_n=200,
                       eval_metrics="classes", out=str(tmp_path), name="c")
    (record,) = _evals(run.path)
    assert 0.0 <= record["class_accuracy"] <= 1.0  # does class k give k's? (trained far longer in test_recipes)
    ring = belamy.train(model="gan", data="ring8", steps=40, log_every=20, eval_every=20, eval_n=500,
                        out=str(tmp_path), name="g", progress=False)
    assert [set(e) >= {"modes_covered", "high_quality", "kl_uniform"} for e in _evals(ring.path)] == [True, True]


def test_the_best_generator_survives_a_resume(tmp_path):
    part = belamy.train(**TINY_DCGAN, steps=40, eval_every=20, eval_n=300, ckpt_every=20, out=str(tmp_path),
                        name="r")
    first = json.loads((part.path / "best" / "config.json").read_text())["fid"]
    run = belamy.train(resume=part.path, steps=80, progress=False)
    evals = _evals(run.path)
    assert [e["step"] for e in evals] == [20, 40, 60, 80]
    best = json.loads((run.path / "best" / "config.json").read_text())
    assert best["fid"] == min(e["fid"] for e in evals) <= first
    state = json.loads(sorted((run.path / "checkpoints").iterdir())[-1].joinpath("state.json").read_text())
    assert state["best_fid"] == best["fid"] and "streaks" in state["health"]
