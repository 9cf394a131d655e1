"""What a run tells a person: a progress bar, a JSONL log, and TensorBoard events when tensorboard is installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm


class RunLogger:
    """`active=False` (ranks other than 0 of a distributed run) writes and shows nothing."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int, progress: bool = True,
                 active: bool = True) -> None:
        self.active = active
        self.path = run_dir / "log.jsonl"
        if not active:
            return
        self._file = open(self.path, "a", buffering=1)  # line-buffered: a crash loses at most the current line
        self._bar = tqdm(total=total_steps, initial=start_step, disable=not progress, dynamic_ncols=True,
                         file=sys.stderr, unit="step")
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional
            pass

    def advance(self, steps: int = 1) -> None:
        if self.active:
            self._bar.update(steps)

    def log(self, record: dict[str, Any]) -> None:
        """One line of the JSONL log; numeric fields also go to TensorBoard and the bar's postfix."""
        if not self.active:
            return
        self._file.write(json.dumps(record) + "\n")
        step = record.get("step", 0)
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
        shown = {k: numbers[k] for k in ("loss_g", "loss_d", "d_real", "d_fake", "img_per_s") if k in numbers}
        self._bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)

    def message(self, text: str, step: int, kind: str = "info") -> None:
        """An event a person must see (skipped files, stops): in the log and above the progress bar."""
        if not self.active:
            return
        self._file.write(json.dumps({"step": step, "event": kind, "message": text}) + "\n")
        self._bar.write(f"[{kind}] step {step}: {text}", file=sys.stderr)

    def alert(self, kind: str, text: str, figures: dict[str, float], step: int) -> None:
        """A health alert (train/health.py): in the log with the figures that triggered it, and above the bar."""
        if not self.active:
            return
        self._file.write(json.dumps({"step": step, "event": "alert", "alert": kind, "message": text,
                                     "figures": figures}) + "\n")
        self._bar.write(f"[alert] step {step}: {text}", file=sys.stderr)

    def rewind(self, step: int) -> None:
        """The run went back to `step` (a recovery rolled it back): the bar shows that step again."""
        if self.active:
            self._bar.n = step
            self._bar.refresh()

    def close(self) -> None:
        if not self.active:
            return
        self._bar.close()
        self._file.close()
        if self._tb is not None:
            self._tb.close()
