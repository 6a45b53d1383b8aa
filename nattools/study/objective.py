"""Chapters 1 and 2: networks fit noise, so why not predict noise; and the objective that makes it work.

Chapter 1 trains the small net as a plain classifier on true and on random labels
(`fit_classifier`) and looks at random targets on the sphere (`cosine_histogram`). Chapter 2
runs NAT itself for a few hundred steps on a few hundred images (`run_nat`, which calls the
library's one NAT step, nattools.step.nat_step) beside two variants: every image taking its
nearest target (the constraint dropped: collapse), and targets never re-assigned.
"""
import time

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from ..assign import Assignment
from ..evaluate import embed
from ..models import small_net
from ..step import nat_step
from ..targets import TargetStore, sample_sphere
from .plotting import CLASS_COLOURS, PALETTE, seed_all, sphere_axes, sphere_surface


# Chapter 1: networks fit noise --------------------------------------------------------------------
def fit_classifier(x_train, y_train, x_test, y_test, epochs: int = 30, width: int = 16,
                   batch_size: int = 64, lr: float = 3e-3, seed: int = 0, input: str = "rgb"):
    """Train nattools' small net as a plain classifier (its d = number of classes)
    without augmentation; returns per-epoch train/test accuracy and loss."""
    seed_all(seed)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    model = small_net(d=n_classes, input=input, width=width, hidden=256)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    hist = {"epoch": [], "loss": [], "train_acc": [], "test_acc": [], "seconds": 0.0}
    t0 = time.time()

    @torch.no_grad()
    def acc(x, y):
        model.eval()
        out = torch.cat([model.project(c).argmax(1) for c in x.split(256)])
        model.train()
        return float((out == y).float().mean())

    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for b in torch.randperm(len(x_train), generator=g).split(batch_size):
            if len(b) < 2:
                continue
            loss = F.cross_entropy(model.project(x_train[b]), y_train[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        hist["epoch"].append(epoch)
        hist["loss"].append(total / len(x_train))
        hist["train_acc"].append(acc(x_train, y_train))
        hist["test_acc"].append(acc(x_test, y_test))
    hist["seconds"] = time.time() - t0
    return hist


def first_epoch_above(accuracies, level: float):
    """The first epoch (counted from 1) whose accuracy reaches level, or None."""
    return next((e for e, a in enumerate(accuracies, start=1) if a >= level), None)


def accuracy_curves(runs: dict, chance: float, title: str = "Train and test accuracy"):
    """runs: {name: history from fit_classifier} -> line plot of train (solid) and test (dashed)."""
    fig = go.Figure()
    for k, (name, h) in enumerate(runs.items()):
        color = PALETTE[k % len(PALETTE)]
        fig.add_trace(go.Scatter(x=h["epoch"], y=h["train_acc"], name=f"{name}: train",
                                 line=dict(color=color)))
        fig.add_trace(go.Scatter(x=h["epoch"], y=h["test_acc"], name=f"{name}: test",
                                 line=dict(color=color, dash="dash")))
    fig.add_hline(y=chance, line=dict(color="grey", dash="dot"), annotation_text="chance")
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="accuracy",
                      yaxis_range=[0, 1.02], height=420)
    return fig


def cosine_histogram(dims=(3, 16, 128, 1024), n: int = 500, seed: int = 0, bins: int = 80):
    """Cosine between pairs of noise targets drawn uniformly on S^{d-1}, for several d: the
    histogram is binned here (a figure of a few hundred numbers, not of every pair)
    -> (figure, {d: standard deviation of the cosines})."""
    fig = go.Figure()
    stats = {}
    edges = np.linspace(-1, 1, bins + 1)
    for k, d in enumerate(dims):
        c = sample_sphere(n, d, seed=seed)
        cos = (c @ c.T)[torch.triu_indices(n, n, 1).unbind()]
        stats[d] = float(cos.std())
        density, _ = np.histogram(cos.numpy(), bins=edges, density=True)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=density, width=edges[1] - edges[0],
                             name=f"d = {d}", opacity=0.6, marker_color=PALETTE[k % len(PALETTE)],
                             hovertemplate=f"d = {d}<br>cos %{{x:.3f}}: density %{{y:.2f}}<extra></extra>"))
    fig.update_layout(barmode="overlay", title="Cosine between two random targets on the sphere",
                      xaxis_title="cos(c_i, c_j)", yaxis_title="density", height=380, bargap=0)
    return fig, stats


# Chapter 2: the objective, collapse, the sphere in 3-D --------------------------------------------
def spread(z: torch.Tensor) -> float:
    """Mean squared distance of unit rows to their mean, 1 - ||mean z||^2: 0 when every
    output is the same point (collapse), about 1 for points spread evenly on the sphere."""
    return float(1 - z.float().mean(0).pow(2).sum())


def nearest_step(z: torch.Tensor, idx: torch.Tensor, table: Assignment, c: torch.Tensor):
    """The teaching variant of the NAT step with the constraint dropped: every image of the
    batch takes its nearest target, shared or not -> (loss, how many changed target)."""
    near = (z.detach() @ c.T).argmax(1)
    changed = int((near != table.table[idx]).sum())
    table.table[idx] = near                                        # targets may now be shared
    return (z - c[near]).pow(2).sum(1).mean(), changed


def run_nat(x, d: int = 3, steps: int = 150, batch_size: int = 50, assign: str = "hungarian",
            lr: float = 0.05, snapshots: int = 10, width: int = 16, seed: int = 0, input: str = "sobel"):
    """A few hundred steps of NAT on images x (n,3,H,W), one fixed target per image on S^{d-1}.

    assign: 'hungarian' = NAT (nattools.step.nat_step: each batch re-solves its one-to-one
    assignment, the constraint P^T 1 <= 1 holds); 'nearest' = the constraint dropped
    (`nearest_step`: every image takes its closest target, targets may be shared);
    'fixed' = nat_step without reassignment.
    Returns per-step metrics and `snapshots` + 1 snapshots of all embeddings and the table."""
    if assign not in ("hungarian", "nearest", "fixed"):
        raise ValueError(f"assign must be 'hungarian', 'nearest' or 'fixed', got {assign!r}")
    seed_all(seed)
    n = len(x)
    model = small_net(d=d, input=input, width=width, hidden=256)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    c = TargetStore(n, d, seed=seed).all()                        # (n, d) fixed targets
    table = Assignment(n, n, seed=seed)                           # one-to-one sample -> target
    g = torch.Generator().manual_seed(seed)
    every = max(1, steps // snapshots)
    out = {"assign": assign, "targets": c, "steps": [], "loss": [], "changed": [],
           "snap_steps": [], "snap_z": [], "snap_table": [], "snap_spread": [], "snap_used": []}

    def snapshot(step):
        z = embed(model, x)
        tab = table.table.clone() if assign != "nearest" else (z @ c.T).argmax(1)
        out["snap_steps"].append(step)
        out["snap_z"].append(z)
        out["snap_table"].append(tab)
        out["snap_spread"].append(spread(z))
        out["snap_used"].append(int(len(torch.unique(tab))))

    snapshot(0)
    order = torch.randperm(n, generator=g)
    pos = 0
    t0 = time.time()
    for step in range(1, steps + 1):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=g), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        z = model.embed(x[idx])
        if assign == "nearest":
            loss, changed = nearest_step(z, idx, table, c)
        else:
            loss, changed, _ = nat_step(z, idx, table, c, reassign=assign == "hungarian")
        opt.zero_grad()
        loss.backward()
        opt.step()
        out["steps"].append(step)
        out["loss"].append(float(loss.detach()))
        out["changed"].append(changed / len(idx))
        if step % every == 0 or step == steps:
            if out["snap_steps"][-1] != step:
                snapshot(step)
    out["seconds"] = time.time() - t0
    return out

def sphere_figure(runs: dict, labels, classes, height: int = 560):
    """Runs of run_nat with d=3, one 3-D scene each, side by side: the fixed targets (grey),
    the embeddings (coloured by class, which the training never sees) and each embedding's
    assignment (a segment to its target). A slider moves all scenes through the snapshots."""
    names = list(runs)
    fig = make_subplots(rows=1, cols=len(names), specs=[[{"type": "scene"}] * len(names)],
                        subplot_titles=names, horizontal_spacing=0.02)
    labels = torch.as_tensor(labels)
    n_snaps = len(runs[names[0]]["snap_steps"])
    dynamic = []                                   # (trace index, snapshot index)
    for col, name in enumerate(names, start=1):
        r = runs[name]
        c = r["targets"].numpy()
        fig.add_trace(sphere_surface(), row=1, col=col)
        fig.add_trace(go.Scatter3d(x=c[:, 0], y=c[:, 1], z=c[:, 2], mode="markers", name="targets",
                                   marker=dict(size=2, color="#444"), showlegend=col == 1,
                                   legendgroup="targets", hoverinfo="skip"), row=1, col=col)
        for s in range(n_snaps):
            z, tab = r["snap_z"][s].numpy(), r["snap_table"][s].numpy()
            seg = np.full((3 * len(z), 3), np.nan)
            seg[0::3], seg[1::3] = z, c[tab]
            fig.add_trace(go.Scatter3d(x=seg[:, 0], y=seg[:, 1], z=seg[:, 2], mode="lines",
                                       line=dict(color="rgba(120,120,120,0.5)", width=1), hoverinfo="skip",
                                       name="assignment", legendgroup="assignment",
                                       showlegend=col == 1, visible=s == n_snaps - 1), row=1, col=col)
            dynamic.append((len(fig.data) - 1, s))
            for k, cls in enumerate(classes):
                m = (labels == k).numpy()
                if not m.any():
                    continue
                fig.add_trace(go.Scatter3d(x=z[m, 0], y=z[m, 1], z=z[m, 2], mode="markers", name=str(cls),
                                           legendgroup=str(cls), showlegend=col == 1,
                                           marker=dict(size=3, color=CLASS_COLOURS[k % len(CLASS_COLOURS)]),
                                           visible=s == n_snaps - 1,
                                           hovertemplate=f"{cls}<extra></extra>"), row=1, col=col)
                dynamic.append((len(fig.data) - 1, s))
    steps = []
    for s in range(n_snaps):
        visible = [True] * len(fig.data)
        for t, ts in dynamic:
            visible[t] = ts == s
        relayout = {"title.text": f"training step {runs[names[0]]['snap_steps'][s]}"}
        for i, name in enumerate(names):        # subplot titles are the first annotations
            relayout[f"annotations[{i}].text"] = (f"{name}<br>spread {runs[name]['snap_spread'][s]:.2f}, "
                                                  f"{runs[name]['snap_used'][s]} targets in use")
        steps.append(dict(method="update", label=str(runs[names[0]]["snap_steps"][s]),
                          args=[{"visible": visible}, relayout]))
    last = n_snaps - 1
    for i in range(len(names)):
        fig.layout.annotations[i].text = steps[last]["args"][1][f"annotations[{i}].text"]
    fig.update_annotations(font_size=13)
    fig.update_layout(
        title=dict(text=steps[last]["args"][1]["title.text"], font_size=14, x=0.01, y=0.98, yanchor="top"),
        sliders=[dict(active=last, steps=steps, currentvalue=dict(prefix="training step "),
                      pad=dict(t=10, b=10), len=0.9, x=0.05)])
    fig = sphere_axes(fig, height + 60, top=90)
    fig.update_layout(margin=dict(b=80))       # room for the slider's ticks under the scenes
    return fig


def objective_curves(runs: dict, window: int = 10):
    """Loss (moving average) per step, and spread and targets in use at each snapshot, per run."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=("loss (moving average)", "spread of the outputs", "targets in use"))
    for k, (name, r) in enumerate(runs.items()):
        color = PALETTE[k % len(PALETTE)]
        loss = np.convolve(r["loss"], np.ones(window) / window, mode="valid")
        fig.add_trace(go.Scatter(x=r["steps"][window - 1:], y=loss, name=name, legendgroup=name,
                                 line=dict(color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=r["snap_steps"], y=r["snap_spread"], name=name, legendgroup=name,
                                 showlegend=False, line=dict(color=color), mode="lines+markers"), row=1, col=2)
        fig.add_trace(go.Scatter(x=r["snap_steps"], y=r["snap_used"], name=name, legendgroup=name,
                                 showlegend=False, line=dict(color=color), mode="lines+markers"), row=1, col=3)
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(type="log", dtick=1, row=1, col=1)      # one tick per power of ten, no minor labels
    fig.update_yaxes(type="log", dtick=1, row=1, col=3)
    fig.update_layout(height=380, margin=dict(t=60), legend=dict(orientation="h", y=-0.25))
    fig.update_annotations(font_size=13)
    return fig


