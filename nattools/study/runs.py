"""What runs leave behind, read back and drawn: results files, evaluation files, curves, tables.

`python -m nattools train` writes OUT/results/NAME.json (the command, the config,
the commit, the wall time and one dict per epoch in `history`); `python -m nattools
eval ... --out X.json` writes the kNN and linear-probe figures of a checkpoint. The
book never types a figure from a long run: it loads these files with `load` and
shows them with `table`, `html_table` and `curves`, so a retrained run updates
every page that uses it.
"""
import dataclasses
import html
import json
import shlex
import textwrap
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import DEFAULTS, fields_with_role
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


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
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
class Run:
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


def load(results_path=None, eval_path=None, name: str = None) -> Run:
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
    return Run(name, results, evaluation)


def from_results(results: dict, evaluation: dict = None) -> Run:
    """A run from the dict `nattools.train` returned (a live run)."""
    return Run(results["name"], results, evaluation)


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


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------
def table(runs) -> list:
    """One row per run: name, command, kNN-20 and linear-probe accuracy, wall time
    (None where a file does not hold the figure). A plain list of dicts: no pandas."""
    rows = []
    for run in runs:
        probe = linear_key(run.evaluation or {})  # e.g. linear_features_2x2 -> "features 2x2"
        rows.append({"name": run.name, "command": run.command, "knn20": run.knn, "linear": run.linear,
                     "probe": probe.removeprefix("linear_").replace("_", " ") if probe else None,
                     "epochs": len(run.history) or None, "wall_time_s": run.wall_time_s})
    return rows


def _cell(key, value) -> str:
    if value is None:
        return "–"
    if key in ("knn20", "linear"):
        return f"{value:.1%}"
    if key.endswith("_margin"):
        return f"{100 * value:+.1f} pts"
    if key == "wall_time_s":
        return f"{value / 60:.1f} min" if value >= 60 else f"{value:.0f} s"
    if key == "command":
        return f"<code>{html.escape(str(value))}</code>"
    return html.escape(str(value))


HEADERS = {"label": "", "name": "run", "command": "command", "knn20": "kNN-20", "linear": "linear probe",
           "knn20_margin": "kNN-20 margin", "linear_margin": "linear margin",
           "probe": "probe on", "epochs": "epochs", "wall_time_s": "wall time"}


def html_table(rows, columns=None):
    """rows (from `table`) as an HTML table the notebook shows and the built book keeps."""
    from IPython.display import HTML
    columns = columns or [c for c in HEADERS if any(r.get(c) is not None for r in rows)]
    head = "".join(f"<th>{HEADERS.get(c, c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c, r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return HTML(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


# ---------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------
def _as_run(name, run) -> Run:
    return run if isinstance(run, Run) else from_results({"name": name, **run})


def curves(runs: dict, step_loss: dict = None, metrics=("loss", "changed", "uniformity"), cols: int = 3,
           title: str = "Training curves", height_per_row: int = 300):
    """Per-epoch curves of several runs overlaid, one panel per metric (`cols` panels a row).

    runs: {label: Run or results dict}. step_loss: {label: [loss of step 1, 2, ...]}, drawn
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


# ---------------------------------------------------------------------------
# Sets of runs: which files exist, how far apart two runs are, how noisy that is
# ---------------------------------------------------------------------------
def load_set(paths: dict, root=None):
    """{label: file} -> ({label: Run} for the files that exist, [files that do not]).

    A file named *_eval.json is an eval-only run (a baseline, a snapshot); any other is a
    results file, read with the NAME_eval.json beside it. A run whose eval file is missing
    is kept (its curves exist) and its eval file listed as missing. Files are relative to
    root (default: data_dir() / "results"). Chapters print the missing list, so a page
    built before every run is made says which ones it is waiting for."""
    root = Path(root) if root is not None else data_dir() / "results"
    found, missing = {}, []
    for label, name in paths.items():
        path = root / name
        if not path.is_file():
            missing.append(str(name))
            continue
        if path.name.endswith("_eval.json"):
            found[label] = load(eval_path=path)
            continue
        found[label] = load(path)
        if found[label].evaluation is None:
            missing.append(str(Path(name).with_name(path.stem + "_eval.json")))
    return found, missing


def missing_note(missing) -> str:
    """One line for a chapter: which files a table or figure is still waiting for."""
    if not missing:
        return "all runs present"
    return f"not made yet ({len(missing)} file{'s' * (len(missing) > 1)}, left out below): " + ", ".join(missing)


def load_studies(studies: dict, root=None) -> tuple:
    """{study: {label: file}} -> ({study: {label: Run}} (load_set of each), [the files not made
    yet, each named once], [one line per study: how many of its runs were found])."""
    found, missing, lines = {}, [], []
    for key, files in studies.items():
        found[key], gone = load_set(files, root)
        missing += [f for f in gone if f not in missing]
        lines.append(f"{key:>13}: {len(found[key])} of {len(files)} runs found")
    return found, missing, lines


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


def gap(a: Run, b: Run, metric: str = "linear"):
    """a's accuracy minus b's in percentage points (metric "knn" or "linear"); None if either lacks it."""
    x, y = (getattr(r, metric) if r is not None else None for r in (a, b))
    return None if x is None or y is None else 100 * (x - y)


def compare(a: Run, b: Run, what: str) -> str:
    """One printed line per comparison: the kNN and linear gaps of a over b in points, each
    marked beyond or within ±(two standard errors of a difference of two accuracies on the
    validation images; unpaired, so a little generous to the noise)."""
    if a is None or b is None or a.evaluation is None or b.evaluation is None:
        return f"{what}: not available yet (a run or its evaluation is missing)"
    n = min(a.evaluation.get("n_val", 0), b.evaluation.get("n_val", 0))
    parts = []
    for metric, label in (("knn", "kNN-20"), ("linear", "linear")):
        g = gap(a, b, metric)
        if g is None:
            continue
        if n:
            two_se = 200 * (accuracy_se(getattr(a, metric), n) ** 2 + accuracy_se(getattr(b, metric), n) ** 2) ** 0.5
            parts.append(f"{label} {g:+.1f} points ({'beyond' if abs(g) > two_se else 'within'} ±{two_se:.1f})")
        else:
            parts.append(f"{label} {g:+.1f} points")
    return f"{what}: " + ", ".join(parts)


def shared_config(runs) -> tuple:
    """The config fields every run shares and, per run, the ones that differ (the fields whose
    role is "run", such as name, out and workers, left out): a study's budget and its variable."""
    bookkeeping = set(fields_with_role("run"))
    configs = {r.name: {k: v for k, v in r.config.items() if k not in bookkeeping} for r in runs if r.config}
    if not configs:
        return {}, {}
    keys = set.intersection(*(set(c) for c in configs.values()))
    first = next(iter(configs.values()))
    common = {k: first[k] for k in first if k in keys and all(c[k] == first[k] for c in configs.values())}
    return common, {name: {k: v for k, v in c.items() if k not in common} for name, c in configs.items()}


def budget_line(runs: dict, what: str, fields, width: int = 100):
    """One wrapped line for a group of runs ({name: Run}): the settings `fields` they all share, in
    that order, and their numbers of training images; None when they share nothing."""
    common, _ = shared_config(runs.values())
    if not common:
        return None
    sizes = sorted({run.results["n"] for run in runs.values()})
    line = (f"{what} ({len(runs)} runs found): " + ", ".join(f"{k}={common[k]}" for k in fields if k in common)
            + "; training images " + ", ".join(f"{n:,}" for n in sizes))
    return textwrap.fill(line, width, subsequent_indent="    ")


def labelled_rows(runs: dict, baseline: Run = None) -> list:
    """`table` rows with each run's label first and, given a baseline, its margins over it
    (in accuracy units; `html_table` shows them as signed points)."""
    rows = []
    for (label, run), row in zip(runs.items(), table(runs.values())):
        row = {"label": label, **row}
        if baseline is not None:
            for key, metric in (("knn20", "knn"), ("linear", "linear")):
                g = gap(run, baseline, metric)
                row[f"{key}_margin"] = None if g is None else g / 100
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Accuracy figures
# ---------------------------------------------------------------------------
def accuracy_bars(runs: dict, title: str = "Accuracy on the validation split", chance: float = None,
                  height: int = 420):
    """kNN-20 and linear-probe accuracy of each run (label -> Run) as grouped bars; runs
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


def show_study(found: dict, title: str, chance: float = None,
               columns=("label", "knn20", "linear", "epochs", "wall_time_s", "command")):
    """A study's runs ({label: Run}) on a page: a line per run with the config fields the runs do
    not share, their table (displayed), and their bar chart (returned); None when none is made yet."""
    from IPython.display import display
    if not found:
        print("no run of this study yet")
        return None
    _, diff = shared_config(found.values())
    for label, run in found.items():
        print(f"{label:>20}: {run.name}: " + ", ".join(f"{k} {v}" for k, v in diff.get(run.name, {}).items()))
    display(html_table(labelled_rows(found), columns=list(columns)))
    return accuracy_bars(found, title=title, chance=chance)


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
