"""What the user sees and what is kept: progress bar, JSONL log, optional TensorBoard."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import ConfigError


def _format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class RunLogger:
    """Appends records to ``metrics.jsonl`` and mirrors them on a progress bar (and TensorBoard)."""

    def __init__(self, run_dir: Path, total: int | None, initial: int, max_time: float | None,
                 progress: bool = True, tensorboard: bool = False, write: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.write = write  # False on every DDP rank but 0: nothing is written or printed
        self.max_time = max_time
        interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=not progress,
                        desc="training", mininterval=0.5 if interactive else 30)
        self._time_only = total is None and max_time is not None
        self._start = (initial, None)  # (step, elapsed) when this session's first step finished
        self._last_step = initial
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "TensorBoard logging needs the tensorboard package: pip install 'ganforge[tensorboard]'"
                ) from None
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        self._postfix: dict[str, str] = {}
        self._eval_postfix: dict[str, str] = {}

    def _append(self, record: dict[str, Any]) -> None:
        if self.write:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        self._append(record)
        shown = {"images_per_sec": ("img/s", ".0f"), "loss_d": ("loss_d", ".3f"), "loss_g": ("loss_g", ".3f"),
                 "d_real": ("D(x)", ".2f"), "d_fake": ("D(G(z))", ".2f")}
        # (a private run's line holds no statistic of D on its records)
        self._postfix = {label: format(record[key], spec) for key, (label, spec) in shown.items() if key in record}
        if "epsilon" in record:  # a private run: the privacy spent so far
            self._postfix["ε"] = f"{record['epsilon']:.3g}"
        if "diversity" in record:
            self._postfix["div"] = f"{record['diversity']:.2f}"
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])

    def event(self, step: int, kind: str, message: str) -> None:
        """Something the user must see (rollback, collapse warning): printed above the bar and logged."""
        self._append({"step": step, "event": kind, "message": message})
        if self.write:
            tqdm.write(f"[step {step}] {kind}: {message}", file=sys.stderr)

    def log_eval(self, record: dict[str, Any], best: dict[str, Any] | None) -> None:
        """An evaluation: appended to the log; its first metric and the best so far go on the bar."""
        self._append(record)
        if best is not None:
            self._eval_postfix = {best["metric"]: f"{record['eval'][best['metric']]:.3g}",
                                  "best": f"{best['value']:.3g}@{best['step']}"}
        if self.writer is not None:
            for key, value in record["eval"].items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"eval/{key}", value, record["step"])

    def advance(self, step: int, elapsed: float) -> None:
        if self._start[1] is None:
            self._start = (step, elapsed)
        elif self._time_only and step % 10 == 0:
            # With only a time budget, estimate the step count it allows so the bar shows an ETA.
            first_step, first_elapsed = self._start
            rate = (step - first_step) / max(elapsed - first_elapsed, 1e-9)  # steps per training second
            self.bar.total = step + int(rate * max(self.max_time - elapsed, 0))
        self.bar.update(step - self._last_step)
        self._last_step = step
        if self.max_time is not None and step % 10 == 0:
            self._postfix["time left"] = _format_seconds(self.max_time - elapsed)
        if self._postfix and step % 10 == 0:
            self.bar.set_postfix({**self._postfix, **self._eval_postfix}, refresh=False)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
