"""What a training run records: metrics.csv (every step), TensorBoard events when installed, and a loss-curve PNG."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

METRICS_FILE = "metrics.csv"
LOSS_PLOT_FILE = "loss.png"
TENSORBOARD_DIR = "tensorboard"


def metric_fields(decoder_layers: int) -> list[str]:
    """Columns of metrics.csv: step (completed optimizer steps), epoch, the losses, lr, gradient norm, throughput."""
    layers = [f"loss_layer{i}" for i in range(decoder_layers)]
    return ["step", "epoch", "loss", *layers, "lr", "grad_norm", "samples_per_s"]


class TrainLog:
    """Appends one row per optimizer step to RUN/metrics.csv and TensorBoard; draws RUN/loss.png on request.

    Resuming at step s keeps the rows of steps <= s and drops the later ones an interrupted run had written, so the
    file always describes the weights of the run.
    """

    def __init__(self, run_dir: Path, decoder_layers: int, resumed_step: int = 0):
        self.run_dir = Path(run_dir)
        self.fields = metric_fields(decoder_layers)
        path = self.run_dir / METRICS_FILE
        self.rows: list[dict[str, float]] = []
        if resumed_step and path.is_file():
            with path.open(newline="") as stream:
                self.rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)
                             if int(row["step"]) <= resumed_step]
        self._stream = path.open("w", newline="")
        self._csv = csv.DictWriter(self._stream, fieldnames=self.fields)
        self._csv.writeheader()
        self._csv.writerows({k: _cell(row[k]) for k in self.fields} for row in self.rows)
        self._stream.flush()
        self._tensorboard = _tensorboard_writer(self.run_dir / TENSORBOARD_DIR, resumed_step)

    def write(self, row: Mapping[str, float]) -> None:
        """Record one step's metrics (keys: `fields`)."""
        self.rows.append(dict(row))
        self._csv.writerow({k: _cell(row[k]) for k in self.fields})
        self._stream.flush()
        if self._tensorboard is not None:
            for name in self.fields[2:]:
                self._tensorboard.add_scalar(f"train/{name}", row[name], int(row["step"]))

    def plot(self) -> Path:
        """Redraw RUN/loss.png from every row so far."""
        steps = [row["step"] for row in self.rows]
        series = {name: [row[name] for row in self.rows] for name in self.fields if name.startswith("loss")}
        return plot_loss_curve(steps, series, self.run_dir / LOSS_PLOT_FILE)

    def close(self) -> None:
        """Flush and close the CSV file and the TensorBoard writer."""
        self._stream.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def _cell(value: float) -> str:
    """A CSV cell: integers as such, other numbers with 7 significant digits."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.7g}"


def _tensorboard_writer(log_dir: Path, resumed_step: int):
    """A SummaryWriter, or None (said once) when the tensorboard package is missing; it is optional."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch.utils.tensorboard imports the optional `tensorboard` package
        print("TensorBoard: not installed (pip install tensorboard), metrics go to metrics.csv only")
        return None
    # purge_step hides the events an interrupted run wrote after the step it resumes from.
    return SummaryWriter(str(log_dir), purge_step=resumed_step + 1 if resumed_step else None)


_COLOURS = [(160, 90, 20), (40, 140, 240), (60, 170, 60), (40, 40, 200), (150, 60, 150)]  # BGR


def plot_loss_curve(steps: Sequence[float], series: Mapping[str, Sequence[float]], path: Path,
                    width: int = 900, height: int = 480) -> Path:
    """PNG of losses against step on a log axis, drawn with OpenCV (matplotlib is not a dependency).

    Every series is drawn as its moving average (window: a fiftieth of the run), the first one also raw in a light
    tint behind it; the legend runs along the top. Returns the path written.
    """
    image = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 40, 40
    values = np.array([v for column in series.values() for v in column], dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    if len(steps) and values.size:
        low, high = math.log10(values.min()), math.log10(values.max())
        if high - low < 1e-3:
            low, high = low - 0.5, high + 0.5
        first, last = float(steps[0]), float(max(steps[-1], steps[0] + 1))

        def pixel(step: float, value: float) -> tuple[int, int]:
            """(column, row) of a point; y is log10 of the value."""
            x = left + (step - first) / (last - first) * (width - left - right)
            y = top + (high - math.log10(max(value, 1e-30))) / (high - low) * (height - top - bottom)
            return int(round(x)), int(round(y))

        for fraction in np.linspace(0, 1, 5):
            value = 10 ** (high - fraction * (high - low))
            row = pixel(first, value)[1]
            cv2.line(image, (left, row), (width - right, row), (225, 225, 225), 1)
            cv2.putText(image, f"{value:.3g}", (5, row + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1)
        for step in sorted({round(v) for v in np.linspace(first, last, 6)}):
            column = pixel(step, 10**high)[0]
            cv2.line(image, (column, height - bottom), (column, height - bottom + 5), (0, 0, 0), 1)
            cv2.putText(image, str(step), (column - 10, height - bottom + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (60, 60, 60), 1)
        window = max(1, len(steps) // 50)
        for index, (name, column) in enumerate(series.items()):
            colour = _COLOURS[index % len(_COLOURS)]
            raw = np.asarray(column, dtype=np.float64)
            smooth = np.convolve(raw, np.ones(window) / window, mode="valid")
            if index == 0 and window > 1:
                tint = tuple(int(255 - (255 - c) * 0.3) for c in colour)
                cv2.polylines(image, [np.array([pixel(s, v) for s, v in zip(steps, raw)], np.int32)], False, tint, 1)
            points = np.array([pixel(s, v) for s, v in zip(steps[window - 1:], smooth)], np.int32)
            cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
            cv2.putText(image, name, (left + 150 * index, top - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                        cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    cv2.putText(image, "step", (width // 2, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    path = Path(path)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path
