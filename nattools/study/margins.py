"""Margins over random initialisation: each NAT run against the same network at its start.

A network at random initialisation already scores well above chance (chapter 10), so a run is
judged by its margin over its own random-init twin: the evaluation of `eval CHECKPOINT
--baseline` for a checkpoint of the same network (`network_key`: the config fields whose role is
"network", and the seed). `random_init_baselines` finds those evaluations among the results,
`margin_pairs` pairs each evaluated NAT run with its network's, and `margin_rows` and `margin_map`
show the margins.
"""
import html
from pathlib import Path

import plotly.graph_objects as go

from ..config import DEFAULTS, fields_with_role
from .plotting import PALETTE
from .runs import gap, load, read_json


def network_key(config: dict) -> tuple:
    """The config fields that fix a network at initialisation, those whose role is "network" and
    the seed (fields a results file predates take their defaults): two runs with the same key
    share one random-init baseline."""
    return tuple(config.get(f, DEFAULTS[f]) for f in fields_with_role("network") + ("seed",))


def evaluated_runs(folder) -> list:
    """The results files directly in folder that have an eval file beside them, as Runs."""
    return [load(p) for p in sorted(Path(folder).glob("*.json")) if p.with_name(p.stem + "_eval.json").is_file()]


def trained_run(evaluation_path, results_dir):
    """The training run whose checkpoint an eval file scored: the results file of the checkpoint's
    name in results_dir or below (None if there is none)."""
    stem = Path(read_json(evaluation_path)["checkpoint"]).stem
    found = sorted(Path(results_dir).rglob(f"{stem}.json"))
    return load(found[0]) if found else None


def random_init_baselines(results_dir) -> dict:
    """{network_key: Run} of the random-init evaluations in results_dir and below, each keyed by the
    network of the run whose checkpoint it scored (the first file in sorted order wins)."""
    baselines = {}
    for path in sorted(Path(results_dir).rglob("*_eval.json")):
        if read_json(path).get("baseline") in ("random", True):          # older eval files wrote true
            made_from = trained_run(path, results_dir)
            if made_from is not None:
                baselines.setdefault(network_key(made_from.config), load(eval_path=path))
    return baselines


def margin_pairs(candidates, baselines: dict) -> tuple:
    """The evaluated NAT runs among candidates, each with the random-init baseline of its network
    -> ({run name: (run, baseline)} for `margin_rows`, [names of runs whose network has no baseline])."""
    pairs, orphans = {}, []
    for run in candidates:
        if run.evaluation is None or run.config.get("objective", "nat") != "nat":
            continue
        base = baselines.get(network_key(run.config))
        if base is None:
            orphans.append(run.name)
        else:
            pairs[run.name] = (run, base)
    return pairs, orphans


def margin_rows(pairs: dict) -> list:
    """{label: (run, its random-init baseline)} -> one row per evaluated pair: label, run name,
    command, baseline name, and the kNN-20 and linear margins in points (run minus baseline)."""
    rows = []
    for label, (run, base) in pairs.items():
        knn, lin = gap(run, base, "knn"), gap(run, base, "linear")
        if knn is None or lin is None:
            continue
        rows.append({"label": label, "name": run.name, "command": run.command, "baseline": base.name,
                     "knn_margin": knn, "linear_margin": lin})
    return rows


def margin_map(rows: list, bars=(15.0, 5.0), title: str = "Margins over random initialisation",
               label_top: int = None, always=(), height: int = 480):
    """Every run as a point (kNN-20 margin, linear margin), from `margin_rows`; dashed lines at the
    bars a recipe is asked to clear, and the region that clears both shaded. Hover: the command.
    label_top: name only the label_top largest margins of each kind (and the labels in `always`),
    so that a dense cloud stays legible; None names every point."""
    named = {r["label"] for r in rows}
    if label_top is not None:
        named = set(always) | {r["label"] for key in ("knn_margin", "linear_margin")
                               for r in sorted(rows, key=lambda r: -r[key])[:label_top]}
    fig = go.Figure()
    xs, ys = [r["knn_margin"] for r in rows], [r["linear_margin"] for r in rows]
    x_hi, y_hi = max(xs + [bars[0]]) + 2, max(ys + [bars[1]]) + 2
    x_lo, y_lo = min(xs + [bars[0]]) - 1.5, min(ys + [bars[1]]) - 1.5
    fig.add_shape(type="rect", x0=bars[0], x1=x_hi, y0=bars[1], y1=y_hi, fillcolor="rgba(44,160,44,0.10)",
                  line_width=0, layer="below")
    fig.add_vline(x=bars[0], line_dash="dash", line_color="grey", annotation_text=f"kNN +{bars[0]:g}",
                  annotation_position="top left")
    fig.add_hline(y=bars[1], line_dash="dash", line_color="grey", annotation_text=f"linear +{bars[1]:g}",
                  annotation_position="bottom right")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+text", text=[r["label"] if r["label"] in named else ""
                                                                     for r in rows],
                             textposition="top center", textfont_size=10, marker=dict(size=9, color=PALETTE[0]),
                             hovertext=[f"{r['name']} (baseline {r['baseline']})<br>{html.escape(r['command'] or '')}"
                                        for r in rows], hoverinfo="text+x+y", showlegend=False))
    fig.update_layout(title=title, height=height, margin=dict(t=60),
                      xaxis=dict(title="kNN-20 margin (points)", range=[x_lo, x_hi]),
                      yaxis=dict(title="linear-probe margin (points)", range=[y_lo, y_hi]))
    return fig
