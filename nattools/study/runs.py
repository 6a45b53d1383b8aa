"""What runs leave behind, read back and drawn: results files, evaluation files, curves, bars.

`python -m nattools train` writes OUT/results/NAME.json (the command, the config,
the commit, the wall time and one dict per epoch in `history`); `python -m nattools
eval ... --out X.json` writes the kNN and linear-probe figures of a checkpoint. The
book never types a figure from a long run: it loads these files with `load` and
draws them with `curves` and `accuracy_bars`, so a retrained run updates
every page that uses it.
"""
import dataclasses
import json
import shlex
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import DEFAULTS
from ..data import PROJECT_DATA
from .plotting import PALETTE

# Per-epoch metrics the trainer records, with the axis title each one gets.
METRICS = {
    "loss": "loss ||z - c||²",
    "changed": "fraction of targets changed",
    "uniformity": "uniformity (lower = more uniform)",
    "lr": "learning rate",
    "images_per_s": "images / s",
}


def data_dir() -> Path:
    """The project's data/ folder: ./data or ../data (a chapter runs in book/), else the package's."""
    for p in (Path("data"), Path("../data")):
        if (p / "results").is_dir():
            return p
    return PROJECT_DATA


# Reading ------------------------------------------------------------------------------------------
def read_json(path) -> dict:
    """A JSON file as a dict, with an error that names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def linear_key(evaluation: dict):
    """The linear-probe entry of an eval file: linear_features_2x2 (pooled features) for a
    network, linear_features_32x32 (every pixel) for the pixel baseline; None if absent."""
    keys = sorted(k for k in evaluation if k.startswith("linear_features_"))
    return keys[0] if keys else None


@dataclasses.dataclass
class Record:
    """One run: its training results (None for an eval-only baseline) and its evaluation (None if
    not evaluated). `results` is the dict `nattools.train` returns and writes."""
    name: str
    results: dict = None
    evaluation: dict = None

    @property
    def history(self) -> list:
        return (self.results or {}).get("history", [])

    @property
    def command(self) -> str:
        """The command that made the run (or, for an eval-only baseline, its eval command)."""
        src = self.results if self.results is not None else (self.evaluation or {})
        return src.get("command")

    @property
    def config(self) -> dict:
        return (self.results or {}).get("config", {})

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch, as the trainer counts them (drop_last batches per process)."""
        r = self.results
        return (r["n"] // r.get("world", 1)) // r["config"]["batch_size"]

    @property
    def knn(self):
        return (self.evaluation or {}).get("knn20_embed")

    @property
    def linear(self):
        key = linear_key(self.evaluation or {})
        return self.evaluation[key] if key else None

    @property
    def wall_time_s(self):
        return (self.results or {}).get("wall_time_s")


def load(results_path=None, eval_path=None, name: str = None) -> Record:
    """A run from its results JSON and its eval JSON. The eval file defaults to NAME_eval.json
    beside the results file (used if it exists); pass only eval_path for an eval-only baseline."""
    if results_path is None and eval_path is None:
        raise ValueError("give a results file, an eval file, or both")
    results = read_json(results_path) if results_path is not None else None
    if eval_path is None:
        guess = Path(results_path).with_name(Path(results_path).stem + "_eval.json")
        eval_path = guess if guess.is_file() else None
    evaluation = read_json(eval_path) if eval_path is not None else None
    if name is None:
        name = results["name"] if results else Path(eval_path).stem.removesuffix("_eval")
    return Record(name, results, evaluation)


def from_results(results: dict, evaluation: dict = None) -> Record:
    """A run from the dict `nattools.train` returned (a live run)."""
    return Record(results["name"], results, evaluation)


def solve_share(history: list) -> float:
    """The share of a run's epoch time spent solving assignments (from its per-epoch history)."""
    return sum(h["assign_s"] for h in history) / sum(h["epoch_s"] for h in history)


def command_for(cfg, defaults: dict = None) -> str:
    """The `python -m nattools train` command for a TrainConfig: every field that differs
    from the defaults (nattools.config.DEFAULTS), in the option syntax the command line parses."""
    defaults = defaults or DEFAULTS
    words = ["python", "-m", "nattools", "train"]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value == defaults[f.name]:
            continue
        if isinstance(value, bool):                              # switches: --eval_knn / --no-eval_knn
            words.append(f"--{f.name}" if value else f"--no-{f.name}")
        else:
            words += [f"--{f.name}", str(value)]
    return " ".join(shlex.quote(w) for w in words)


# Curves -------------------------------------------------------------------------------------------
def _as_run(name, run) -> Record:
    return run if isinstance(run, Record) else from_results({"name": name, **run})


def curves(runs: dict, step_loss: dict = None, metrics=("loss", "changed", "uniformity"), cols: int = 3,
           title: str = "Training curves", height_per_row: int = 300):
    """Per-epoch curves of several runs overlaid, one panel per metric (`cols` panels a row).

    runs: {label: Record or results dict}. step_loss: {label: [loss of step 1, 2, ...]}, drawn
    thin in the loss panel at x = step / steps per epoch (the epoch's mean sits at x = epoch)."""
    runs = {label: _as_run(label, r) for label, r in runs.items()}
    cols = min(cols, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[METRICS.get(m, m) for m in metrics],
                        horizontal_spacing=0.08, vertical_spacing=0.3 / rows)
    where = {m: dict(row=i // cols + 1, col=i % cols + 1) for i, m in enumerate(metrics)}
    for k, (label, run) in enumerate(runs.items()):
        color = PALETTE[k % len(PALETTE)]
        epochs = [h["epoch"] for h in run.history]
        if step_loss and label in step_loss and "loss" in metrics:
            spe = run.steps_per_epoch
            losses = step_loss[label]
            fig.add_trace(go.Scatter(x=[(s + 1) / spe for s in range(len(losses))], y=losses, mode="lines",
                                     name=f"{label}: loss per step", legendgroup=label,
                                     line=dict(color=color, width=1), opacity=0.45), **where["loss"])
        for m in metrics:
            fig.add_trace(go.Scatter(x=epochs, y=[h.get(m) for h in run.history], mode="lines+markers",
                                     name=label if m == metrics[0] else f"{label}: {m}", legendgroup=label,
                                     showlegend=m == metrics[0], line=dict(color=color)), **where[m])
    fig.update_xaxes(title_text="epoch", title_standoff=4)
    if "changed" in metrics:
        fig.update_yaxes(range=[0, 1.02], **where["changed"])
    height = 120 + height_per_row * rows  # title and legend above the panels, in the top margin
    fig.update_layout(title=dict(text=title, font_size=15, yref="container", y=1 - 10 / height, yanchor="top"),
                      legend=dict(orientation="h", yref="container", y=1 - 42 / height, yanchor="top", x=0),
                      height=height, margin=dict(t=105, b=40))
    fig.update_annotations(font_size=12)
    return fig


# How noisy an accuracy is -------------------------------------------------------------------------
def accuracy_se(p: float, n: int) -> float:
    """Binomial standard error of an accuracy p measured on n images, sqrt(p(1-p)/n):
    the noise of the test set alone (a second seed of the same run adds its own)."""
    return (p * (1 - p) / n) ** 0.5


def two_se_difference(p: float, n: int) -> float:
    """Two standard errors, in points, of the difference of two accuracies near p, each measured on
    n images (unpaired): the noise band a gap must clear."""
    return 200 * 2 ** 0.5 * accuracy_se(p, n)


def validation_size(runs):
    """n_val of the first evaluated run that records it (None if none does)."""
    return next((r.evaluation["n_val"] for r in runs if r.evaluation and "n_val" in r.evaluation), None)


def noise_lines(n_val: int, accuracies=(0.3, 0.5, 0.7)) -> list:
    """Lines that size the noise of accuracies measured on n_val validation images."""
    return [f"validation images: {n_val:,}"] + [
        f"  accuracy {p:.0%}: standard error {100 * accuracy_se(p, n_val):.1f} points, "
        f"two standard errors of a difference {two_se_difference(p, n_val):.1f} points" for p in accuracies]


# Accuracy figures ---------------------------------------------------------------------------------
def accuracy_bars(runs: dict, title: str = "Accuracy on the validation split", chance: float = None,
                  height: int = 420):
    """kNN-20 and linear-probe accuracy of each run (label -> Record) as grouped bars; runs
    without an evaluation are left out. chance: a dotted line at that accuracy."""
    runs = {label: r for label, r in runs.items() if r.evaluation is not None}
    fig = go.Figure()
    for k, (metric, name) in enumerate((("knn", "kNN-20 (embedding)"), ("linear", "linear probe (features)"))):
        ys = [getattr(r, metric) for r in runs.values()]
        fig.add_trace(go.Bar(x=list(runs), y=ys, name=name, marker_color=PALETTE[k],
                             text=[f"{y:.1%}" if y is not None else "" for y in ys], textposition="outside",
                             hovertext=[r.name for r in runs.values()]))
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dot", line_color="grey", annotation_text="chance",
                      annotation_position="top left")
    top = max([getattr(r, m) or 0 for r in runs.values() for m in ("knn", "linear")] + [0.1])
    fig.update_layout(title=title, barmode="group", height=height, yaxis=dict(title="accuracy", tickformat=".0%",
                      range=[0, min(1, top * 1.15)]), legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
                      margin=dict(t=90))
    return fig


def accuracy_lines(series: dict, x_title: str, title: str, chance: float = None, height: int = 420):
    """Accuracy against a step (layer, epoch): series = {label: (xs, accuracies)}, None
    accuracies (a missing file) drawn as gaps."""
    fig = go.Figure()
    for k, (label, (xs, ys)) in enumerate(series.items()):
        fig.add_trace(go.Scatter(x=list(xs), y=list(ys), mode="lines+markers", name=label,
                                 line=dict(color=PALETTE[k % len(PALETTE)])))
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dot", line_color="grey", annotation_text="chance",
                      annotation_position="bottom right")
    fig.update_layout(title=title, height=height, xaxis=dict(title=x_title),
                      yaxis=dict(title="accuracy", tickformat=".0%"),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), margin=dict(t=90))
    return fig


def shell(command: str, width: int = 96, indent: str = "    ") -> str:
    """A long command as a shell would accept it, broken at spaces into lines of at most `width`
    characters ending in ' \\' (so that a page never scrolls sideways)."""
    words, lines, line = shlex.split(command or ""), [], ""
    for word in (shlex.quote(w) for w in words):
        if line and len(line) + 1 + len(word) > width - 2:
            lines.append(line + " \\")
            line = indent + word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])
