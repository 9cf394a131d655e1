"""`belamy report`: the HTML page of a real (tiny) run, of a run that has only started, and of hand-made logs."""

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

import belamy
from belamy.cli import main
from belamy.report import ReportError, read_log, write_report

TINY = {"model": "dcgan", "data": "digits", "options": {"latent_dim": 16, "g_width": 16, "d_width": 16},
        "batch_size": 32, "steps": 20, "log_every": 5, "sample_every": 10, "progress": False}


class Page(HTMLParser):
    """What a reader sees: images (decoded), tables (rows of cell texts), the status box's text, all text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict] = []
        self.tables: dict[str, list[tuple[str, list[str]]]] = {}
        self.tags: list[str] = []
        self.text: list[str] = []
        self.status: list[str] = []
        self._table = self._cell = None
        self._row: list[str] | None = None
        self._status_depth = 0
        self.feed(text)
        self.all_text = " ".join(self.text)
        self.status_text = " ".join(self.status)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            src = attrs["src"]
            assert src.startswith("data:image/png;base64,"), src[:40]
            image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            image.load()  # decodes, or raises
            self.images.append({**attrs, "image": image})
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("class") or "", [])
        elif tag == "tr":
            self._row = []
            self._table.append((attrs.get("class") or "", self._row))
        elif tag in ("td", "th"):
            self._cell = []
        if tag == "div" and (self._status_depth or attrs.get("id") == "status"):
            self._status_depth += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "div" and self._status_depth:
            self._status_depth -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._status_depth:
            self.status.append(data)

    def plots(self) -> list[str]:
        return [i["alt"] for i in self.images if "plot" in i["class"].split()]

    def grids(self) -> list[str]:
        return [i["alt"] for i in self.images if i["class"] == "sample"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A real 20-step run (log every 5 steps, a grid at step 10), trained once for the module (~2 s)."""
    out = tmp_path_factory.mktemp("runs")
    return belamy.train(out=str(out), name="r", **TINY).path


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def _append(run: Path, *records, raw: str = "") -> None:
    with open(run / "log.jsonl", "a") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
        f.write(raw)


def test_report_of_a_finished_run_with_evals_alerts_and_a_cut_line(tiny_run, tmp_path, capsys):
    run = _copy(tiny_run, tmp_path)
    alerts = [r for r in read_log(run / "log.jsonl").alerts]  # the engine's own health alerts, if any
    message = "collapse <script>alert('x')</script> & more"
    _append(run,
            {"step": 10, "event": "eval", "fid": 120.5, "kid": 0.125, "extractor": "classifier"},
            {"step": 20, "event": "eval", "fid": 80.25, "kid": 0.0625, "extractor": "classifier"},
            {"step": 15, "event": "alert", "alert": "mode_collapse", "message": message,
             "figures": {"diversity": 0.1}},
            {"step": 20, "event": "warning", "message": "skipped 1 unreadable file(s): <b>x.png</b>"},
            raw='{"step": 25, "loss_d": 1.3')  # a crash mid-write
    out = tmp_path / "elsewhere" / "page.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert not (run / "report.html").exists()
    text = out.read_text()
    page = Page(text)

    # every embedded image decodes; one plot per group of logged figures, one per metric; the sample grids
    figure_keys = {k for r in read_log(run / "log.jsonl").figures for k in r if k != "step"}
    assert {"loss_d", "loss_g", "d_real", "d_fake", "img_per_s", "lr_g", "lr_d"} <= figure_keys
    plots = page.plots()
    for title in ("Losses", "Discriminator outputs: mean D(x) and D(G(z))", "Speed", "Learning rates",
                  "fid over time", "kid over time"):
        assert plots.count(title) == 1, plots
    assert len(plots) == 6 + ("grad_norm_g" in figure_keys) + ("diversity" in figure_keys), plots
    assert page.grids() == ["final (samples.png)", "step 10"]
    assert all(i["image"].size[0] > 0 for i in page.images)

    # the alert, escaped: its <script> is text on the page, never a tag
    assert "script" not in page.tags
    assert "<script>" not in text
    assert len(page.tables["alerts"]) == 1 + len(alerts) + 1
    assert page.tables["alerts"][-1] == ("", ["15", "mode_collapse", message, "diversity=0.1"])
    assert "<b>x.png</b>" in page.all_text and "b" not in page.tags

    # the metrics table: both FIDs, the best (lowest) marked
    rows = page.tables["evals"]
    assert rows[0][1] == ["step", "fid", "kid", "extractor"]
    assert rows[1:] == [("", ["10", "120.5", "0.125", "classifier"]), ("best", ["20", "80.25", "0.0625", "classifier"])]

    # the status: finished, 20 of 20 steps, one alert, the latest metrics, the cut line counted
    status = page.status_text
    assert f"Finished - step 20 of 20; {len(alerts) + 1} alert(s)" in status
    assert "fid=80.25" in status
    assert "lines skipped" in status
    assert "skipped 1 malformed line(s) of log.jsonl: line" in page.all_text
    assert "cut short" in page.all_text
    assert ("model", "dcgan") in {tuple(r) for _, r in page.tables["config"]}


def test_report_of_a_run_that_has_only_started(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path)
    start = (run / "log.jsonl").read_text().splitlines()[0]
    assert json.loads(start)["event"] == "start"
    (run / "log.jsonl").write_text(start + "\n")
    shutil.rmtree(run / "samples")
    for name in ("samples.png", "model.safetensors"):
        (run / name).unlink()

    path = write_report(run)
    assert path == run / "report.html"
    assert [p.name for p in run.iterdir() if "report" in p.name] == ["report.html"]  # no temporary file left
    page = Page(path.read_text())
    assert page.images == []
    assert "Not finished" in page.status_text and "step 0 of 20" in page.status_text
    assert "No training figures logged yet" in page.all_text
    assert "No sample grids yet" in page.all_text
    assert "No alerts" in page.all_text


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    with pytest.raises(ReportError, match="not-a-run is not a run folder: no log.jsonl and no config.yaml"):
        write_report(empty)
    assert main(["report", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "belamy report: error:" in err and "missing is not a run folder" in err
    assert not (tmp_path / "missing").exists()


def test_report_of_a_resumed_run_with_an_error_and_odd_figures(tmp_path):
    """A hand-made log: a resume that re-runs logged steps, gradient norms, diversity, an unknown figure, a NaN,
    and an error; malformed lines anywhere are skipped."""
    run = tmp_path / "odd"
    run.mkdir()
    (run / "config.yaml").write_text("name: odd\nsteps: 40\nlog_every: 5\n")
    lines = [{"step": 0, "event": "start", "resumed": False}]
    lines += [{"step": s, "loss_d": 1.0, "loss_g": 0.7, "grad_norm_g": 0.5, "grad_norm_d": 2.0, "diversity": 0.9,
               "my_figure": s} for s in (5, 10, 15)]
    lines += [{"step": 10, "event": "start", "resumed": True}]
    lines += [{"step": s, "loss_d": 1.0, "loss_g": float("nan") if s == 20 else 0.6, "grad_norm_g": 0.0,
               "diversity": 0.1, "my_figure": s} for s in (15, 20)]
    lines += [{"step": 20, "event": "error", "message": "non-finite values (loss_g) between steps 15 and 20"}]
    text = "\n".join(json.dumps(r) for r in lines[:3]) + "\nnot json\n" + \
        "\n".join(json.dumps(r) for r in lines[3:]) + "\n"
    (run / "log.jsonl").write_text(text)
    (run / "samples").mkdir()
    for step in range(2, 42, 2):  # 20 grids over time: 12 are shown, the first and the last among them
        Image.new("L", (20, 20), step * 6).save(run / "samples" / f"step-{step:07d}.png")
    (run / "samples" / "step-0000041.png").write_bytes(b"\x89PNG damaged")
    Image.new("RGB", (1200, 900), "red").save(run / "samples.png")  # a large final grid is downscaled

    log = read_log(run / "log.jsonl")
    assert [r["step"] for r in log.figures] == [5, 10, 15, 20]  # the resumed run's step 15 replaces the first's
    assert log.replaced == 1 and log.skipped_lines == [4] and not log.last_line_cut
    assert log.last_turn == "error" and log.last_step == 20

    page = Page(write_report(run).read_text())
    assert page.plots() == ["Losses", "Gradient norms", "Diversity: fake / real mean pairwise distance",
                            "Other figures"]
    assert 'class="status bad"' in (run / "report.html").read_text()
    assert "Stopped by an error - step 20 of 40" in page.status_text
    assert "loss_g at step 20" in page.status_text  # the NaN
    assert "resumed at steps" in page.status_text
    assert "non-finite values (loss_g) between steps 15 and 20" in page.all_text
    assert "were run again after a resume" in page.all_text
    assert "line 4" in page.all_text and "cut short" not in page.all_text

    # 12 of the 21 grids, evenly spaced (steps 2, 6, 10, ..., 38, 41); the damaged one is left out with a note
    grids = page.grids()
    assert grids[0] == "final (samples.png)" and len(grids) == 1 + 11
    assert grids[1] == "step 2" and grids[-1] == "step 38"
    assert "samples/step-0000041.png could not be read" in page.all_text
    final = next(i for i in page.images if i["alt"] == "final (samples.png)")["image"]
    assert final.size == (512, 384)
    assert "12 of the 21 grids in samples/ are shown" in page.all_text
