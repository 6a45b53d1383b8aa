"""Chapter 12's figures: the fine-tuning and transfer results in data/results/transfer, read as a whole.
Each file is what `python -m nattools finetune` or `eval` wrote (its command inside); scripts/transfer_queue.sh
ran them all. A file is named by what it measured: ft_START_lN_sSEED (fine-tuned from START on N labels per
class, seed SEED; N = all: every label), frozen_START_lN_s0 (frozen probes from the same labelled images),
SOURCE_to_TARGET for frozen transfer between data sets (every label of the target's training split,
or _lN: N per class), and snap_* for the snapshots of a run."""
import json
import statistics
import tempfile
from pathlib import Path

import plotly.graph_objects as go
from plotly.colors import qualitative

from .. import transfer
from ..train import pick_device
from .coverage import not_at_hand, run_table
from .runs import data_dir
from .training import stand_in

BUDGETS = (10, 50, 500)
START_NAMES = {"nat": "NAT (CIFAR-10)", "tiny": "NAT (Tiny ImageNet)", "random": "random init",
               "suptiny": "supervised (Tiny ImageNet labels)"}


def load(folder=None) -> dict:
    """{file stem: figures} for every result file."""
    folder = Path(folder) if folder else data_dir() / "results" / "transfer"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def seeds(results: dict, prefix: str, key: str = "accuracy") -> list:
    """The figure `key` (in %) of every seed of a measurement: prefix 'ft_nat_l10' -> [s0, s1, ...]."""
    return [100 * results[name][key] for name in sorted(results) if name.startswith(prefix + "_s")]


def mean(values: list) -> float:
    return statistics.fmean(values) if values else float("nan")


def curve_rows(results: dict) -> dict:
    """{start: {labels per class: [accuracy % per seed]}} of fine-tuning, and frozen probes as 'frozen START'."""
    rows = {}
    for start in START_NAMES:
        for n in BUDGETS + ("all",):
            ft = seeds(results, f"ft_{start}_l{n}")
            if ft:
                rows.setdefault(START_NAMES[start], {})[n] = ft
    for start in ("nat", "random", "tiny"):
        for n in BUDGETS:
            fr = seeds(results, f"frozen_{start}_l{n}", "linear_features_2x2")
            if fr:
                rows.setdefault(f"frozen {START_NAMES[start]}, linear probe", {})[n] = fr
    return rows


def curve_figure(rows: dict, title: str):
    """Accuracy against labels per class (log axis), one line per start; every seed a point, the line their mean."""
    fig = go.Figure()
    for k, (label, by_n) in enumerate(rows.items()):
        ns = [n for n in by_n if n != "all"]
        colour = qualitative.Plotly[k % len(qualitative.Plotly)]
        fig.add_trace(go.Scatter(x=ns, y=[mean(by_n[n]) for n in ns], mode="lines+markers", name=label,
                                 line=dict(dash="dot" if label.startswith("frozen") else "solid", color=colour),
                                 legendgroup=label,
                                 hovertemplate="%{x} labels per class: %{y:.1f}%<extra>" + label + "</extra>"))
        xs = [n for n in ns for _ in by_n[n]]
        fig.add_trace(go.Scatter(x=xs, y=[v for n in ns for v in by_n[n]], mode="markers", showlegend=False,
                                 legendgroup=label, marker=dict(size=5, opacity=0.5, color=colour),
                                 hoverinfo="skip"))
    fig.update_layout(title=title, height=440, xaxis=dict(title="labelled images per class", type="log",
                      tickvals=list(BUDGETS)), yaxis=dict(title="accuracy on the validation split (%)"),
                      legend=dict(orientation="h", y=-0.25), margin=dict(t=60, b=120))
    return fig


def epochs_figure(series: dict, title: str):
    """Accuracy against pre-training epochs: series = {label: {epoch: accuracy %}}."""
    fig = go.Figure()
    for label, by_epoch in series.items():
        fig.add_trace(go.Scatter(x=list(by_epoch), y=list(by_epoch.values()), mode="lines+markers", name=label))
    fig.update_layout(title=title, height=380, xaxis=dict(title="epochs of NAT pre-training"),
                      yaxis=dict(title="accuracy (%)"), legend=dict(orientation="h", y=-0.3), margin=dict(t=60, b=110))
    return fig


def frozen_pair(results: dict, name: str) -> dict:
    """A frozen transfer and its random-init twin -> {'kNN-20': (NAT, random), 'linear': (NAT, random)} in %."""
    pair = [results.get(name), results.get(f"{name}_random")]
    if None in pair:
        return {}
    return {probe: tuple(100 * r[key] for r in pair)
            for probe, key in (("kNN-20", "knn20_embed"), ("linear", "linear_features_2x2"))}


def snapshot_series(results: dict, prefix: str, key: str = "linear_features_2x2") -> dict:
    """{epoch: accuracy %} of the snapshots 'snap_PREFIX_eE_to_...' (prefix e.g. 'cifar' or 'tiny')."""
    out = {}
    for name, r in results.items():
        if name.startswith(f"snap_{prefix}_e"):
            out[int(name.split("_e")[1].split("_")[0])] = 100 * r[key]
    return dict(sorted(out.items()))


def commands(results: dict) -> list:
    """The command that wrote each result, in file order."""
    return [r["command"] for r in results.values()]


def live(path, dataset: str, labels_per_class: int, steps: int, **stand_in_settings) -> dict:
    """Fine-tune the checkpoint at `path` and its random-init twin now, on labels_per_class labels of
    `dataset`, for `steps` steps each -> {'NAT': accuracy %, 'random init': accuracy %, 'stand_in': why}.
    Where the run's training images are not the ones at hand (another data set or copy), a stand-in with
    the same network and recipe trains first on `dataset` (`stand_in_settings`: e.g. epochs=3, limit=2000), with a
    carved validation split it never sees."""
    net, cfg = transfer.start(path)
    why = not_at_hand(cfg, run_table(path)["n"], dataset)
    start = path
    with tempfile.TemporaryDirectory() as out:
        if why:
            cfg = stand_in(Path(path).name, why, cfg, dataset, out, val_fraction=0.1, **stand_in_settings)
            start = cfg.checkpoint_path
            net, cfg = transfer.start(start)
        fcfg = transfer.FinetuneConfig(dataset=dataset, labels_per_class=labels_per_class, min_steps=steps,
                                       max_steps=steps, val_fraction=cfg.val_fraction)
        device = pick_device("auto")
        scores = {"NAT": transfer.finetune(net, cfg, fcfg, device),
                  "random init": transfer.finetune(transfer.start(start, random=True)[0], cfg, fcfg, device)}
    return {**{k: 100 * r["accuracy"] for k, r in scores.items()}, "stand_in": why,
            "n_labelled": scores["NAT"]["n_labelled"], "n_val": scores["NAT"]["n_val"]}
