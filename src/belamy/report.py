"""`belamy report RUN`: one self-contained HTML page that shows at a glance whether a run is healthy.

The page is built from what the run folder already holds (log.jsonl, config.yaml, samples/, samples.png, and
metrics.json when `belamy eval` has been run): a status summary, alerts and errors, the training figures and the
evaluation metrics over time as plots (PNG made with matplotlib, embedded as base64), the sample grids over time,
the events, and the config. Nothing is fetched: the file can be mailed or attached to an issue.

A run may still be training or may have crashed, so the log is read leniently: a malformed line (the last one
is cut short when a process dies mid-write) is skipped and counted, never an error.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

MAX_GRIDS = 12  # sample grids over time embedded in the page (evenly spaced; the final grid comes on top)
MAX_SIDE = 512  # a larger grid is downscaled to this side: the page stays a few MB however big the samples
MIN_SHOWN = 256  # a smaller grid (8x8 digits) is shown enlarged, pixelated, so that a person can see it


class ReportError(ValueError):
    """The folder is not a run folder (no log.jsonl or config.yaml)."""


@dataclass(frozen=True)
class PlotGroup:
    """Interval figures drawn in one plot: the keys named, and those starting with one of the prefixes."""
    title: str
    ylabel: str
    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    log: bool = False  # log scale: gradient norms span orders of magnitude when D overpowers G
    reference: float | None = None  # a horizontal line where "healthy" is (diversity 1 = as spread as real data)

    def matches(self, key: str) -> bool:
        return key in self.names or key.startswith(self.prefixes)


PLOT_GROUPS: tuple[PlotGroup, ...] = (
    PlotGroup("Losses", "loss", names=("gp", "r1"), prefixes=("loss_",)),
    PlotGroup("Discriminator outputs: mean D(x) and D(G(z))", "D output", names=("d_real", "d_fake")),
    PlotGroup("Gradient norms", "norm (log scale)", prefixes=("grad_norm_",), log=True),
    PlotGroup("Diversity: fake / real mean pairwise distance", "ratio", names=("diversity",), reference=1.0),
    PlotGroup("Speed", "images / s", names=("img_per_s",)),
    PlotGroup("Learning rates", "learning rate", prefixes=("lr_",)),
    PlotGroup("Unreadable data files skipped (cumulative)", "files", names=("bad_files",)),
)
OTHER_GROUP = PlotGroup("Other figures", "value")


# --- reading the log -------------------------------------------------------------------------------------------

@dataclass
class RunLog:
    """The records of a log.jsonl, sorted by kind, in file order."""
    starts: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)  # interval records (no "event" key)
    evals: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # warning, error, stop, info, recovery, unknown
    ends: list[dict[str, Any]] = field(default_factory=list)
    last_step: int = 0  # the highest step since the last start: how far the current run got
    last_turn: str = ""  # the last of start, end, error, stop in file order: the run's state when it was written
    skipped_lines: list[int] = field(default_factory=list)  # 1-based numbers of malformed lines
    last_line_cut: bool = False  # the last line is malformed: a process died mid-write (or is writing now)
    replaced: int = 0  # interval/eval records superseded by a resume or a rollback that re-ran their steps


def read_log(path: str | Path) -> RunLog:
    """Parse a log.jsonl; malformed lines are skipped and counted, never an error."""
    log = RunLog()
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    current = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not _finite(record.get("step")):
            log.skipped_lines.append(number)
            log.last_line_cut = number == len(lines)
            continue
        log.last_line_cut = False
        event = record.get("event")
        if event is None:
            log.replaced += _append_replacing(log.figures, record)
        elif event == "start":
            log.starts.append(record)
            current = int(record["step"])
        elif event == "end":
            log.ends.append(record)
        elif event == "eval":
            log.replaced += _append_replacing(log.evals, record)
        elif event == "alert":
            log.alerts.append(record)
        else:
            log.messages.append(record)
        if event in ("start", "end", "error", "stop"):
            log.last_turn = event
        current = max(current, int(record["step"]))
        log.last_step = current
    return log


def _append_replacing(records: list[dict[str, Any]], record: dict[str, Any]) -> int:
    """Append `record`; a record for a step already passed means those steps were run again (resume, rollback):
    the new run's records replace the old ones from that step on. Returns how many were replaced."""
    n = 0
    while records and records[-1]["step"] >= record["step"]:
        records.pop()
        n += 1
    records.append(record)
    return n


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_keys(records: Iterable[dict[str, Any]], exclude: Sequence[str] = ("step",)) -> list[str]:
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in exclude and _is_number(value):
                keys[key] = None
    return list(keys)


def _finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


# --- the run folder --------------------------------------------------------------------------------------------

@dataclass
class SampleGrid:
    caption: str
    png: bytes  # (downscaled) PNG bytes
    size: tuple[int, int]  # of the embedded image


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a run folder: no such folder")
    missing = [name for name in ("log.jsonl", "config.yaml") if not (run_dir / name).is_file()]
    if missing:
        raise ReportError(f"{run_dir} is not a run folder: no {' and no '.join(missing)} "
                          f"(a run folder is made by `belamy train`)")


def _read_config(path: Path) -> tuple[dict[str, Any], str | None]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return {}, f"config.yaml could not be read: {e}"
    if not isinstance(data, dict):
        return {}, "config.yaml is not a mapping of fields"
    return data, None


def _read_metrics(path: Path) -> tuple[dict[str, Any], str | None]:
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {}, f"metrics.json could not be read: {e}"
    return (data, None) if isinstance(data, dict) else ({}, "metrics.json is not an object")


def _evenly_spaced(items: Sequence[Any], k: int) -> list[Any]:
    """Up to k items, the first and the last among them."""
    if len(items) <= k:
        return list(items)
    picks = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in picks]


def _sample_grids(run_dir: Path, notes: list[str]) -> list[SampleGrid]:
    """samples.png (final) first, then up to MAX_GRIDS of samples/step-*.png in step order."""
    over_time = []
    for path in (run_dir / "samples").glob("step-*.png"):
        m = re.fullmatch(r"step-(\d+)\.png", path.name)
        if m:
            over_time.append((int(m.group(1)), path))
    over_time.sort()
    chosen = [(f"step {step}", path) for step, path in _evenly_spaced(over_time, MAX_GRIDS)]
    if (run_dir / "samples.png").is_file():
        chosen.insert(0, ("final (samples.png)", run_dir / "samples.png"))
    grids = []
    for caption, path in chosen:
        try:
            png, size = _png_for_page(path)
        except Exception as e:  # a grid being written or damaged costs its picture, not the report
            notes.append(f"{path.relative_to(run_dir)} could not be read ({type(e).__name__}: {e})")
            continue
        grids.append(SampleGrid(caption, png, size))
    if len(over_time) > MAX_GRIDS:
        notes.append(f"{MAX_GRIDS} of the {len(over_time)} grids in samples/ are shown, evenly spaced")
    return grids


def _png_for_page(path: Path) -> tuple[bytes, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if max(image.size) > MAX_SIDE:
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
            image = image.convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=True)
        return buf.getvalue(), image.size


# --- plots -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Marker:
    """A vertical line on every plot over steps."""
    step: float
    label: str  # legend entry, one per kind
    color: str
    style: str


def _plot(title: str, ylabel: str, series: dict[str, tuple[list[float], list[float]]], markers: list[Marker],
          log: bool = False, reference: float | None = None,
          highlight: tuple[float, float, str] | None = None) -> bytes:
    """One line plot over steps as PNG bytes. matplotlib's object API with the Agg canvas: no pyplot, so no global
    figure state and no change to the backend of a program (a notebook) that calls this."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, NullFormatter

    fig = Figure(figsize=(8.0, 3.0), dpi=96)
    FigureCanvasAgg(fig)
    # Fixed margins and the legend outside on the right: constrained layout and loc="best" cost more than the
    # drawing (~0.5 s a plot), and a legend outside never hides the curves.
    fig.subplots_adjust(left=0.1, right=0.78, top=0.9, bottom=0.16)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        # inf and (on a log scale) non-positive values cannot be drawn: they become gaps, and the status says so
        ys = [y if math.isfinite(y) and (y > 0 or not log) else math.nan for y in ys]
        ax.plot(xs, ys, label=name, linewidth=1.4, marker="o" if len(xs) <= 30 else None, markersize=3)
    if reference is not None:
        ax.axhline(reference, color="0.5", linewidth=0.8, linestyle="--", label=f"{reference:g} (healthy)")
    if highlight is not None:
        x, y, label = highlight
        ax.plot([x], [y], marker="*", markersize=14, color="gold", markeredgecolor="black", linestyle="none",
                label=label)
    seen: set[str] = set()
    for m in markers:
        ax.axvline(m.step, color=m.color, linestyle=m.style, linewidth=1.0, alpha=0.8,
                   label=None if m.label in seen else m.label)
        seen.add(m.label)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())  # labels on minor ticks crowd a short axis
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _series(records: list[dict[str, Any]], keys: Iterable[str]) -> dict[str, tuple[list[float], list[float]]]:
    out = {}
    for key in keys:
        points = [(r["step"], float(r[key])) for r in records if _is_number(r.get(key))]
        if points:
            out[key] = ([p[0] for p in points], [p[1] for p in points])
    return out


def _figure_plots(figures: list[dict[str, Any]], markers: list[Marker]) -> list[tuple[str, bytes]]:
    """One plot per group of interval figures that the log holds; keys no group claims go to "Other figures"."""
    keys = _numeric_keys(figures)
    plots = []
    claimed: set[str] = set()
    for group in PLOT_GROUPS:
        mine = [k for k in keys if group.matches(k)]
        claimed.update(mine)
        if mine:
            plots.append((group.title, _plot(group.title, group.ylabel, _series(figures, mine), markers,
                                             group.log, group.reference)))
    other = [k for k in keys if k not in claimed]
    if other:
        plots.append((OTHER_GROUP.title, _plot(OTHER_GROUP.title, OTHER_GROUP.ylabel, _series(figures, other),
                                               markers)))
    return plots


def _best_fid(evals: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [r for r in evals if _finite(r.get("fid"))]
    return min(scored, key=lambda r: r["fid"]) if scored else None


def _metric_plots(evals: list[dict[str, Any]], markers: list[Marker]) -> list[tuple[str, bytes]]:
    best = _best_fid(evals)
    plots = []
    for key in _numeric_keys(evals):
        highlight = (best["step"], best["fid"], f"best FID {best['fid']:.4g}") if key == "fid" and best else None
        title = f"{key} over time"
        plots.append((title, _plot(title, key, _series(evals, [key]), markers, highlight=highlight)))
    return plots


# --- HTML ------------------------------------------------------------------------------------------------------

class _Html(str):
    """Markup built here; every other string that goes into the page is escaped."""


def _e(value: Any) -> _Html:
    return _Html(html.escape(_fmt(value), quote=True))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return "" if value is None else str(value)


def _table(headers: Sequence[str] | None, rows: Iterable[Sequence[Any]], cls: str = "") -> _Html:
    """Cells are escaped unless they are _Html; no headers: a two-column list of names and values."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers or ())
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Html) else _e(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return _Html(f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>')


def _img(png: bytes, alt: str, cls: str, width: int | None = None) -> _Html:
    style = f' style="width:{width}px"' if width else ""
    data = base64.b64encode(png).decode("ascii")
    return _Html(f'<img class="{cls}" alt="{_e(alt)}" src="data:image/png;base64,{data}"{style}>')


def _flatten(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", "null" if value is None else value))
    return rows


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.status { padding: 0.8em 1em; border-radius: 6px; margin: 1em 0; }
.status.ok { background: #e6f4ea; border: 1px solid #34a853; }
.status.warn { background: #fff4e0; border: 1px solid #f9ab00; }
.status.bad { background: #fce8e6; border: 1px solid #d93025; }
.verdict { font-size: 1.2em; font-weight: bold; }
.errors { background: #fce8e6; border: 2px solid #d93025; padding: 0.5em 1em; border-radius: 6px; }
.alerts td:nth-child(2) { font-weight: bold; color: #b06000; }
tr.best td { font-weight: bold; background: #fff8d0; }
.plots img.plot { display: block; margin: 0.5em 0; max-width: 100%; }
.grids { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; text-align: center; }
img.sample { image-rendering: pixelated; border: 1px solid #ccc; }
.note { color: #555; font-size: 0.9em; }
"""


def _status(run_dir: Path, log: RunLog, config: dict[str, Any], metrics: dict[str, Any],
            nonfinite: list[str]) -> tuple[str, str, list[tuple[str, Any]]]:
    """(css class, one-line verdict, rows of the summary table)."""
    planned = config.get("steps")
    model = (run_dir / "model.safetensors").is_file()
    errors = [m for m in log.messages if m.get("event") == "error"]
    if log.last_turn == "end":
        state = "finished"
    elif log.last_turn == "error":
        state = "stopped by an error"
    elif log.last_turn == "stop":
        state = "interrupted"
    elif model and _is_number(planned) and log.last_step >= planned:
        state = "finished (model exported; the end record is missing)"
    else:
        age = time.time() - (run_dir / "log.jsonl").stat().st_mtime
        state = f"not finished: still training, or stopped (log last written {_duration(age)} ago)"

    if nonfinite or log.last_turn == "error":
        cls = "bad"
    else:
        cls = "ok" if state.startswith("finished") and not log.alerts else "warn"
    progress = f"{log.last_step} of {planned}" if _is_number(planned) else str(log.last_step)
    verdict = f"{state.capitalize()} - step {progress}; {len(log.alerts)} alert(s)"
    if nonfinite:
        verdict += "; non-finite values logged"

    rows: list[tuple[str, Any]] = [("state", state), ("steps done / planned", progress)]
    if _is_number(planned) and planned:
        rows.append(("progress", f"{100 * min(log.last_step / planned, 1):.0f}%"))
    rows.append(("model.safetensors", "exported" if model else "not yet"))
    rows.append(("alerts", len(log.alerts)))
    rows.append(("errors", len(errors)))
    if len(log.starts) > 1:
        rows.append(("resumed at steps", [s["step"] for s in log.starts[1:]]))
    if log.figures:
        last = log.figures[-1]
        losses = {k: v for k, v in last.items() if k.startswith("loss_") and _is_number(v)}
        rows.append((f"last losses (step {last['step']})", losses or "none logged"))
        for key in ("d_real", "d_fake", "diversity"):
            if _is_number(last.get(key)):
                rows.append((f"last {key}", last[key]))
        speeds = [r["img_per_s"] for r in log.figures if _finite(r.get("img_per_s"))]
        if speeds:
            rows.append(("images / s (last, median)", f"{speeds[-1]:.4g}, {sorted(speeds)[len(speeds) // 2]:.4g}"))
    else:
        rows.append(("training figures", "none logged yet"))
    if nonfinite:
        rows.append(("non-finite values", nonfinite))
    if log.skipped_lines:
        rows.append(("log.jsonl lines skipped (malformed)", f"{len(log.skipped_lines)} (see Notes)"))
    if log.evals:
        last_eval = log.evals[-1]
        values = {k: v for k, v in last_eval.items() if k != "step" and _is_number(v)}
        rows.append((f"latest metrics (step {last_eval['step']})", values))
    numbers = {k: v for k, v in metrics.items() if _is_number(v)}
    if numbers:
        rows.append(("metrics.json (belamy eval)", numbers))
    return cls, verdict, rows


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _nonfinite(figures: list[dict[str, Any]]) -> list[str]:
    bad = [f"{k} at step {r['step']}" for r in figures for k, v in r.items() if _is_number(v) and not _finite(v)]
    return bad[:10] + ([f"... {len(bad) - 10} more"] if len(bad) > 10 else [])


def _markers(log: RunLog) -> list[Marker]:
    markers = [Marker(a["step"], "alert", "#d93025", "--") for a in log.alerts]
    markers += [Marker(s["step"], "resume", "0.4", ":") for s in log.starts[1:]]
    markers += [Marker(m["step"], "error", "#d93025", "-") for m in log.messages if m.get("event") == "error"]
    return markers


def render_report(run_dir: str | Path) -> str:
    """The HTML page of the run in `run_dir` (see write_report)."""
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    log = read_log(run_dir / "log.jsonl")
    config, config_note = _read_config(run_dir / "config.yaml")
    metrics, metrics_note = _read_metrics(run_dir / "metrics.json")
    notes = [n for n in (config_note, metrics_note) if n]
    if log.skipped_lines:
        shown = ", ".join(map(str, log.skipped_lines[:10])) + (" ..." if len(log.skipped_lines) > 10 else "")
        cut = " (the last line is cut short: the process died, or is writing, mid-line)" if log.last_line_cut else ""
        notes.append(f"skipped {len(log.skipped_lines)} malformed line(s) of log.jsonl: line {shown}{cut}")
    if log.replaced:
        notes.append(f"{log.replaced} logged interval(s) were run again after a resume or rollback; "
                     f"the plots show the later run")
    nonfinite = _nonfinite(log.figures)
    markers = _markers(log)
    grids = _sample_grids(run_dir, notes)
    cls, verdict, status_rows = _status(run_dir, log, config, metrics, nonfinite)
    name = config.get("name") or run_dir.name

    parts: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>belamy report: {_e(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>belamy report: {_e(name)}</h1>",
        f'<p class="note">{_e(run_dir.resolve())} - {_e(config.get("model", "?"))} on '
        f'{_e(config.get("data", "?"))} - report made {_e(time.strftime("%Y-%m-%d %H:%M:%S"))}</p>',
        f'<div class="status {cls}" id="status"><div class="verdict">{_e(verdict)}</div>',
        _table(None, status_rows, "summary"), "</div>",
    ]

    # (1) What needs a person's attention first: errors and alerts.
    errors = [m for m in log.messages if m.get("event") == "error"]
    if errors:
        items = "".join(f"<li>step {_e(m['step'])}: {_e(m.get('message', ''))}</li>" for m in errors)
        parts.append(f'<div class="errors" id="errors"><b>Errors</b><ul>{items}</ul></div>')
    parts.append('<h2 id="alerts">Alerts</h2>')
    if log.alerts:
        parts.append(_table(("step", "kind", "message", "figures"),
                            [(a["step"], a.get("alert", "?"), a.get("message", ""), a.get("figures", ""))
                             for a in log.alerts], "alerts"))
        parts.append('<p class="note">Alert steps are marked on the plots with dashed red lines.</p>')
    else:
        parts.append("<p>No alerts.</p>")

    # (2) Evaluation metrics: over time (eval records) and the last `belamy eval` (metrics.json).
    parts.append('<h2 id="metrics">Metrics</h2>')
    if log.evals:
        keys = _numeric_keys(log.evals)
        best = _best_fid(log.evals)
        rows = []
        for r in log.evals:
            cells = [r["step"]] + [r.get(k, "") for k in keys] + [r.get("extractor", "")]
            rows.append("<tr" + (' class="best"' if r is best else "") + ">"
                        + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th>{_e(h)}</th>" for h in ["step", *keys, "extractor"])
        parts.append(f'<table class="evals"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')
        if best is not None:
            parts.append(f'<p class="note">Best FID: {_e(best["fid"])} at step {_e(best["step"])} '
                         f"(highlighted).</p>")
        parts.append('<div class="plots">' + "".join(_img(png, title, "plot metric")
                                                     for title, png in _metric_plots(log.evals, markers)) + "</div>")
    else:
        parts.append("<p>No evaluations in the log.</p>")
    if metrics:
        values = [(k, v) for k, v in metrics.items() if _is_number(v)]
        values += [(k, metrics[k]) for k in ("extractor", "fake", "real") if k in metrics]
        parts.append("<p>Last <code>belamy eval</code> (metrics.json):</p>" + _table(("metric", "value"), values,
                                                                                     "metrics-json"))

    # (3) Training figures over time.
    parts.append('<h2 id="training">Training</h2>')
    if log.figures:
        parts.append('<div class="plots">' + "".join(_img(png, title, "plot figure")
                                                     for title, png in _figure_plots(log.figures, markers)) + "</div>")
    else:
        parts.append("<p>No training figures logged yet: the run has not reached its first log interval "
                     f"(every {_e(config.get('log_every', '?'))} steps).</p>")

    # (4) Samples over time.
    parts.append('<h2 id="samples">Samples</h2>')
    if grids:
        figures = "".join(f"<figure>{_img(g.png, g.caption, 'sample', max(g.size[0], MIN_SHOWN))}"
                          f"<figcaption>{_e(g.caption)}</figcaption></figure>" for g in grids)
        parts.append(f'<div class="grids">{figures}</div>')
    else:
        parts.append("<p>No sample grids yet.</p>")

    # (5) Events, the run's set-up, the config, and what the report could not read.
    parts.append('<h2 id="events">Events</h2>')
    if log.messages:
        parts.append(_table(("step", "kind", "message"),
                            [(m["step"], m.get("event", ""), m.get("message", "")) for m in log.messages], "events"))
    else:
        parts.append("<p>No events.</p>")
    if log.starts:
        keys = [k for k in log.starts[0] if k not in ("event",)]
        parts.append('<h2 id="setup">Set-up (start records)</h2>')
        parts.append(_table(keys, [[s.get(k, "") for k in keys] for s in log.starts], "starts"))
    parts.append('<h2 id="config">Config (config.yaml)</h2>')
    parts.append(_table(("field", "value"), _flatten(config), "config") if config else "<p>No config.</p>")
    if notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in notes)
        parts.append(f'<h2 id="notes">Notes</h2><ul class="notes">{items}</ul>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of a run folder to `out` (default RUN/report.html) and return its path.

    The page holds a status summary, alerts, errors, metrics, plots of every logged figure, the sample grids over
    time, the events and the config, all embedded. Raises ReportError (a ValueError) if `run_dir` is not a run
    folder. Written atomically: a reader (a browser reloading it) never sees half a page."""
    run_dir = Path(run_dir)
    page = render_report(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
