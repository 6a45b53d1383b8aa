"""Plotly figures, ipywidgets apps and the small live experiments the book's chapters run.

Importing this module sets plotly's renderer, once, for the whole book:
`plotly_mimetype+nattools`, i.e. plotly's own mime bundle (JupyterLab, Binder)
plus a `text/html` rendering that Jupyter Book keeps. The HTML does not carry
plotly.js: the book loads it from its own static files (book/_ext), so a built
page needs no network; in Colab the stock `colab` renderer is used instead.
Div ids are deterministic (a counter and a hash of the figure), so re-running a
chapter gives the same HTML.

Chapters stay short: they call the functions below and show the results. Every
experiment is seeded, and `budget(full, small)` shrinks it when the environment
variable NATTOOLS_BUDGET=small is set (CI's notebook tests).
"""
import hashlib
import itertools
import json
import math
import os
import sys
import time

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
import torch.nn.functional as F
from plotly.io._base_renderers import HtmlRenderer
from plotly.subplots import make_subplots

from . import data as D
from .assign import Assignment, batch_assignment, greedy_assignment, sinkhorn_assignment
from .models import FrontEnd, small_net
from .targets import TargetStore, sample_sphere

# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------
_counter = itertools.count()


class BookRenderer(HtmlRenderer):
    """text/html without plotly.js inside (the page provides window.Plotly)."""

    def __init__(self):
        super().__init__(connected=False, full_html=False, global_init=False,
                         config={"displaylogo": False}, include_plotlyjs=False)

    def to_mimebundle(self, fig_dict):
        body = json.dumps(fig_dict, sort_keys=True, default=str).encode()
        div_id = f"nat-fig-{next(_counter)}-{hashlib.sha1(body).hexdigest()[:10]}"
        html = pio.to_html(fig_dict, config=self.config, auto_play=False, include_plotlyjs=False,
                           include_mathjax=False, full_html=False, div_id=div_id,
                           default_width="100%", default_height=480, validate=False)
        return {"text/html": html}


pio.renderers["nattools"] = BookRenderer()
RENDERER = "colab" if "google.colab" in sys.modules else "plotly_mimetype+nattools"
pio.renderers.default = RENDERER
pio.templates.default = "plotly_white"

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


# ---------------------------------------------------------------------------
# Budgets, seeds, data
# ---------------------------------------------------------------------------
def small_budget() -> bool:
    """True when NATTOOLS_BUDGET=small (CI runs every chapter with tiny sizes)."""
    return os.environ.get("NATTOOLS_BUDGET", "").strip().lower() == "small"


def budget(full, small):
    """`full` normally, `small` under NATTOOLS_BUDGET=small."""
    return small if small_budget() else full


def seed_all(seed: int = 0) -> None:
    """Seed python's, numpy's and torch's generators."""
    import random
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0) -> None:
    """What every chapter calls first: seeds, and torch's CPU threads from
    NATTOOLS_THREADS (default 1: the book's experiments are small, and extra
    threads only slow them down on a busy machine)."""
    torch.set_num_threads(max(1, int(os.environ.get("NATTOOLS_THREADS", "1"))))
    seed_all(seed)


def load_images(name: str, n: int, split: str = "train", seed: int = 0, size: int = 32):
    """n images of a split, drawn with a fixed seed, as (n,3,size,size) floats in [0,1]
    plus labels (n,) and the class names."""
    ds = D.load(name, split)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[: min(n, len(ds))].tolist()
    tf = D.eval_transform(size)
    xs, ys = zip(*[(tf(ds[i][0]), ds[i][1]) for i in idx])
    return torch.stack(xs), torch.tensor(ys), list(ds.classes)


def dataset_note(name: str, x, classes) -> str:
    """One line the chapters print: what data the numbers below come from."""
    what = "CIFAR-10 (real photos)" if name == "cifar10" else "scikit-learn digits (offline fallback)"
    return f"{what}: {len(x)} images of {tuple(x.shape[1:])}, {len(classes)} classes"


def _to_uint8(img) -> np.ndarray:
    """(3,H,W) or (H,W) float tensor in [0,1] -> (H,W,3) uint8."""
    a = torch.as_tensor(img).detach().float().clamp(0, 1)
    if a.ndim == 2:
        a = a.unsqueeze(0).expand(3, -1, -1)
    return (a.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def image_grid(images, titles=None, cols: int = 8, height_per_row: int = 130, title: str = None):
    """A grid of images (list of (3,H,W) or (H,W) tensors in [0,1])."""
    images = list(images)
    rows = math.ceil(len(images) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.01, vertical_spacing=0.08 if titles else 0.02)
    for k, img in enumerate(images):
        fig.add_trace(go.Image(z=_to_uint8(img), hoverinfo="skip"), row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=80 + height_per_row * rows, margin=dict(l=5, r=5, t=75 if title else 30, b=5),
                      title=dict(text=title, font_size=14) if title else None)
    if titles:
        fig.update_annotations(font_size=11)
    return fig


# ---------------------------------------------------------------------------
# Chapter 1: networks fit noise
# ---------------------------------------------------------------------------
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


def cosine_histogram(dims=(3, 16, 128, 1024), n: int = 500, seed: int = 0):
    """Cosine between pairs of noise targets drawn uniformly on S^{d-1}, for several d."""
    fig = go.Figure()
    stats = {}
    for d in dims:
        c = sample_sphere(n, d, seed=seed)
        cos = (c @ c.T)[torch.triu_indices(n, n, 1).unbind()]
        stats[d] = float(cos.std())
        fig.add_trace(go.Histogram(x=cos.numpy(), name=f"d = {d}", opacity=0.6,
                                   histnorm="probability density", nbinsx=80))
    fig.update_layout(barmode="overlay", title="Cosine between two random targets on the sphere",
                      xaxis_title="cos(c_i, c_j)", yaxis_title="density", height=380)
    return fig, stats


# ---------------------------------------------------------------------------
# Chapter 2: the objective, collapse, the sphere in 3-D
# ---------------------------------------------------------------------------
def spread(z: torch.Tensor) -> float:
    """Mean squared distance of unit rows to their mean, 1 - ||mean z||^2: 0 when every
    output is the same point (collapse), about 1 for points spread evenly on the sphere."""
    return float(1 - z.float().mean(0).pow(2).sum())


@torch.no_grad()
def embed_all(model, x, batch: int = 256) -> torch.Tensor:
    """(N,3,H,W) -> (N,d) unit rows, in eval mode; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    z = torch.cat([model.embed(c) for c in x.split(batch)])
    model.train(was_training)
    return z


def run_nat(x, d: int = 3, steps: int = 150, batch_size: int = 50, assign: str = "hungarian",
            lr: float = 0.05, snapshots: int = 10, width: int = 16, seed: int = 0, input: str = "sobel"):
    """A few hundred steps of NAT on images x (n,3,H,W), one fixed target per image on S^{d-1}.

    assign: 'hungarian' = NAT (each batch re-solves its one-to-one assignment with
    nattools.assign, the constraint P^T 1 <= 1 holds); 'nearest' = the constraint dropped
    (every image takes its closest target, targets may be shared); 'fixed' = never reassign.
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
        z = embed_all(model, x)
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
        if assign == "hungarian":
            changed = table.update(idx, z.detach(), c)
            target = c[table.table[idx]]
        elif assign == "nearest":
            near = (z.detach() @ c.T).argmax(1)
            changed = int((near != table.table[idx]).sum())
            table.table[idx] = near                               # targets may now be shared
            target = c[near]
        else:
            changed, target = 0, c[table.table[idx]]
        loss = (z - target).pow(2).sum(1).mean()
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


def sphere_surface(opacity: float = 0.12, res: int = 30):
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, res), np.linspace(0, np.pi, res // 2))
    return go.Surface(x=np.cos(u) * np.sin(v), y=np.sin(u) * np.sin(v), z=np.cos(v), opacity=opacity,
                      showscale=False, colorscale=[[0, "#9ecae1"], [1, "#9ecae1"]], hoverinfo="skip",
                      showlegend=False)


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
                                           marker=dict(size=3, color=PALETTE[k % len(PALETTE)]),
                                           visible=s == n_snaps - 1,
                                           hovertemplate=f"{cls}<extra></extra>"), row=1, col=col)
                dynamic.append((len(fig.data) - 1, s))
    steps = []
    for s in range(n_snaps):
        visible = [True] * len(fig.data)
        for t, ts in dynamic:
            visible[t] = ts == s
        info = "<br>".join(f"{name}: spread {runs[name]['snap_spread'][s]:.2f}, "
                            f"{runs[name]['snap_used'][s]} targets in use" for name in names)
        steps.append(dict(method="update", label=str(runs[names[0]]["snap_steps"][s]),
                          args=[{"visible": visible}, {"title.text": f"training step {runs[names[0]]['snap_steps'][s]}<br>{info}"}]))
    last = n_snaps - 1
    fig.update_layout(
        height=height + 18 * len(names), margin=dict(l=0, r=0, t=80 + 18 * len(names), b=0),
        legend=dict(itemsizing="constant"),
        title=dict(text=steps[last]["args"][1]["title.text"], font_size=13, y=0.99, yanchor="top"),
        sliders=[dict(active=last, steps=steps, currentvalue=dict(prefix="training step "), pad=dict(t=10))])
    axis = dict(range=[-1.1, 1.1], showticklabels=False, title="")
    fig.update_scenes(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube")
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
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=380, margin=dict(t=60), legend=dict(orientation="h", y=-0.25))
    fig.update_annotations(font_size=13)
    return fig


# ---------------------------------------------------------------------------
# Chapter 3: the assignment
# ---------------------------------------------------------------------------
def _score(z, c, perm) -> float:
    """sum_i <z_i, c_perm[i]>: what the assignment maximises."""
    return float((z * c[torch.as_tensor(perm)]).sum())


def toy_assignment(n: int = 6, draws: int = 12, seed: int = 0):
    """`draws` toy problems in the plane: n outputs and n targets on the unit circle.
    For each: the Hungarian solution (nattools.assign.batch_assignment), the greedy one,
    and the best of all n! permutations by brute force. Returns the problems and a figure
    with a slider over the draws ("resample")."""
    g = torch.Generator().manual_seed(seed)
    problems = []
    for k in range(draws):
        z = F.normalize(torch.randn(n, 2, generator=g), dim=1)
        c = F.normalize(torch.randn(n, 2, generator=g), dim=1)
        hung = batch_assignment(z, c)
        greedy = greedy_assignment(z, c)
        brute = max(itertools.permutations(range(n)), key=lambda p: _score(z, c, p))
        problems.append(dict(z=z, c=c, hungarian=hung, greedy=greedy, s_hungarian=_score(z, c, hung),
                             s_greedy=_score(z, c, greedy), s_brute=_score(z, c, brute),
                             s_identity=_score(z, c, range(n))))
    fig = go.Figure()
    t = np.linspace(0, 2 * np.pi, 200)
    fig.add_trace(go.Scatter(x=np.cos(t), y=np.sin(t), mode="lines", line=dict(color="#ddd"),
                             hoverinfo="skip", showlegend=False))
    per = []
    for k, p in enumerate(problems):
        z, c = p["z"].numpy(), p["c"].numpy()
        traces = []
        for key, style, label in (("greedy", dict(color="#d62728", dash="dot", width=2), "greedy"),
                                  ("hungarian", dict(color="#2ca02c", width=3), "Hungarian (optimal)")):
            seg = np.full((3 * n, 2), np.nan)
            seg[0::3], seg[1::3] = z, c[p[key].numpy()]
            traces.append(go.Scatter(x=seg[:, 0], y=seg[:, 1], mode="lines", line=style, name=label,
                                     legendgroup=key, showlegend=k == 0, visible=k == 0, hoverinfo="skip"))
        traces.append(go.Scatter(x=z[:, 0], y=z[:, 1], mode="markers+text", text=[f"z{i}" for i in range(n)],
                                 textposition="top center", marker=dict(size=11, color="#1f77b4"), name="outputs z",
                                 legendgroup="z", showlegend=k == 0, visible=k == 0))
        traces.append(go.Scatter(x=c[:, 0], y=c[:, 1], mode="markers+text", text=[f"c{i}" for i in range(n)],
                                 textposition="bottom center", marker=dict(size=11, symbol="x", color="#444"),
                                 name="targets c", legendgroup="c", showlegend=k == 0, visible=k == 0))
        per.append([fig.add_trace(tr) and len(fig.data) - 1 for tr in traces])
    steps = []
    for k, p in enumerate(problems):
        vis = [True] + [False] * (len(fig.data) - 1)
        for i in per[k]:
            vis[i] = True
        steps.append(dict(method="update", label=str(k + 1), args=[
            {"visible": vis},
            {"title.text": f"draw {k + 1}: score sum <z, c>: Hungarian {p['s_hungarian']:.3f} "
                           f"(brute force {p['s_brute']:.3f}), greedy {p['s_greedy']:.3f}"}]))
    fig.update_layout(title=dict(text=steps[0]["args"][1]["title.text"], font_size=13), height=560,
                      xaxis=dict(range=[-1.35, 1.35], scaleanchor="y", visible=False),
                      yaxis=dict(range=[-1.35, 1.35], visible=False),
                      sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="resample: draw "))])
    return problems, fig


def time_assignment(sizes, d: int = 64, repeats: int = 3, seed: int = 0):
    """Best-of-`repeats` wall time of batch_assignment (a b x b linear_sum_assignment plus
    the score matrix) on random unit vectors, for each size b. -> {b: seconds}"""
    g = torch.Generator().manual_seed(seed)
    times = {}
    for b in sizes:
        z = F.normalize(torch.randn(b, d, generator=g), dim=1)
        c = F.normalize(torch.randn(b, d, generator=g), dim=1)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            batch_assignment(z, c)
            best = min(best, time.perf_counter() - t0)
        times[b] = best
    return times


def fit_power_law(times: dict, min_size: int = 0):
    """Least-squares fit of log t = a log b + log k over sizes >= min_size -> (a, k)."""
    b = np.array([s for s in times if s >= min_size], dtype=float)
    t = np.array([times[s] for s in times if s >= min_size])
    a, logk = np.polyfit(np.log(b), np.log(t), 1)
    return float(a), float(np.exp(logk))


def timing_figure(times: dict, exponent: float, k: float, min_size: int = 0):
    b = np.array(list(times), dtype=float)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=b, y=list(times.values()), mode="markers", name="measured",
                             marker=dict(size=9)))
    bb = b[b >= min_size]
    fig.add_trace(go.Scatter(x=bb, y=k * bb ** exponent, mode="lines", name=f"fit: t ~ b^{exponent:.2f}"))
    fig.update_layout(title="Cost of one exact assignment (scipy's linear_sum_assignment)",
                      xaxis=dict(type="log", title="batch size b"), yaxis=dict(type="log", title="seconds"),
                      height=400)
    return fig


def batch_vs_full(n: int = 1000, d: int = 32, batch_sizes=(16, 64, 256), epochs: int = 6, seed: int = 0):
    """How close repeated batch updates (nattools.assign.Assignment.update, fixed outputs z)
    get to the exact assignment of all n samples at once. Progress is the share of the
    possible gain achieved: (S - S_start) / (S_opt - S_start), S = sum_i <z_i, c_table[i]>.
    -> dict with the optimum, its time, and per batch size the progress after each epoch."""
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(n, d, generator=g), dim=1)
    c = F.normalize(torch.randn(n, d, generator=g), dim=1)
    t0 = time.perf_counter()
    best = batch_assignment(z, c)
    out = {"n": n, "d": d, "s_opt": _score(z, c, best), "full_seconds": time.perf_counter() - t0, "runs": {}}
    for b in batch_sizes:
        table = Assignment(n, n, seed=seed)
        s0 = _score(z, c, table.table)
        progress, seconds = [0.0], 0.0
        for epoch in range(epochs):
            order = torch.randperm(n, generator=g)
            t0 = time.perf_counter()
            for idx in order.split(b):
                table.update(idx, z[idx], c)
            seconds += time.perf_counter() - t0
            progress.append((_score(z, c, table.table) - s0) / (out["s_opt"] - s0))
        out["runs"][b] = {"progress": progress, "seconds_per_epoch": seconds / epochs}
    return out


def batch_vs_full_figure(res: dict):
    fig = go.Figure()
    for k, (b, r) in enumerate(res["runs"].items()):
        fig.add_trace(go.Scatter(x=list(range(len(r["progress"]))), y=r["progress"], mode="lines+markers",
                                 name=f"batches of {b}", line=dict(color=PALETTE[k % len(PALETTE)])))
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dot"), annotation_text="exact assignment of all n")
    fig.update_layout(title=f"Batch updates against the full assignment (n = {res['n']}, outputs fixed)",
                      xaxis_title="epochs of batch updates", yaxis_title="share of the optimal gain",
                      yaxis_range=[0, 1.05], height=400)
    return fig


def compare_solvers(sizes=(64, 256, 512), d: int = 64, seed: int = 0):
    """Hungarian (exact), greedy and Sinkhorn (nattools.assign) on random b x b problems:
    time and share of the optimal gain over a random assignment. -> list of rows."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in sizes:
        z = F.normalize(torch.randn(b, d, generator=g), dim=1)
        c = F.normalize(torch.randn(b, d, generator=g), dim=1)
        s_rand = _score(z, c, torch.randperm(b, generator=g))
        s_opt = None
        for name, fn in (("Hungarian", batch_assignment), ("greedy", greedy_assignment),
                         ("Sinkhorn", sinkhorn_assignment)):
            t0 = time.perf_counter()
            perm = fn(z, c)
            dt = time.perf_counter() - t0
            assert sorted(perm.tolist()) == list(range(b)), f"{name} did not return a permutation"
            s = _score(z, c, perm)
            s_opt = s if name == "Hungarian" else s_opt
            rows.append({"b": b, "method": name, "seconds": dt, "quality": (s - s_rand) / (s_opt - s_rand)})
    return rows


def solvers_figure(rows):
    fig = make_subplots(rows=1, cols=2, subplot_titles=("share of the optimal gain", "seconds (log)"))
    for k, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        sub = [r for r in rows if r["method"] == method]
        x = [f"b = {r['b']}" for r in sub]
        fig.add_trace(go.Bar(x=x, y=[r["quality"] for r in sub], name=method, legendgroup=method,
                             marker_color=PALETTE[k]), row=1, col=1)
        fig.add_trace(go.Bar(x=x, y=[r["seconds"] for r in sub], name=method, legendgroup=method,
                             showlegend=False, marker_color=PALETTE[k]), row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=380, barmode="group")
    return fig


# ---------------------------------------------------------------------------
# Chapter 4: preprocessing
# ---------------------------------------------------------------------------
VIEWS = ("RGB", "grey", "Sobel x", "Sobel y", "|gradient|")


@torch.no_grad()
def frontend_views(x) -> dict:
    """What nattools.models.FrontEnd feeds the network, as displayable [0,1] images:
    {view name: (n,3,H,W) or (n,H,W)}. Grey is min-max scaled per image; Sobel
    responses are shown signed around mid-grey, the magnitude from black."""
    grey = FrontEnd("grey")(x)[:, 0]                               # (n,H,W), normalised grey
    sob = FrontEnd("sobel")(x)                                     # (n,2,H,W)
    mag = sob.pow(2).sum(1).sqrt()

    def minmax(a):
        lo, hi = a.amin((1, 2), keepdim=True), a.amax((1, 2), keepdim=True)
        return (a - lo) / (hi - lo + 1e-8)

    def signed(a):
        s = a.abs().amax((1, 2), keepdim=True) + 1e-8
        return 0.5 + 0.5 * a / s

    return {"RGB": x, "grey": minmax(grey), "Sobel x": signed(sob[:, 0]), "Sobel y": signed(sob[:, 1]),
            "|gradient|": minmax(mag)}


def preprocessing_grid(x, labels, classes, count: int = 5):
    """Rows: images; columns: RGB, grey, Sobel x, Sobel y, gradient magnitude."""
    views = frontend_views(x[:count])
    images, titles = [], []
    for i in range(min(count, len(x))):
        for v in VIEWS:
            images.append(views[v][i])
            titles.append(f"{classes[int(labels[i])]}: {v}" if v == "RGB" else v)
    return image_grid(images, titles, cols=len(VIEWS), height_per_row=150,
                      title="What the network sees: the fixed front end (nattools.models.FrontEnd)")


def png(img, scale: int = 4) -> bytes:
    import io
    from PIL import Image
    a = _to_uint8(img)
    buf = io.BytesIO()
    Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def preprocessing_app(x, labels, classes, start: int = 0):
    """An ipywidgets app: pick an image (slider) and see it through every view of the front
    end. Needs a kernel to react; the static page shows its initial state."""
    import ipywidgets as W
    views = frontend_views(x)
    slider = W.IntSlider(value=start, min=0, max=len(x) - 1, description="image", continuous_update=False)
    label = W.HTML()
    tiles = {v: W.Image(format="png", width=128, height=128) for v in VIEWS}

    def show(_=None):
        i = slider.value
        label.value = f"<b>image {i}</b>: {classes[int(labels[i])]}"
        for v in VIEWS:
            tiles[v].value = png(views[v][i])

    slider.observe(show, names="value")
    show()
    boxes = [W.VBox([W.HTML(f"<div style='text-align:center'>{v}</div>"), tiles[v]]) for v in VIEWS]
    return W.VBox([W.HBox([slider, label]), W.HBox(boxes)])


def mean_colour(x) -> torch.Tensor:
    """(n,3,H,W) -> (n,3) average RGB per image."""
    return x.float().mean((2, 3))


def colour_clusters(x, labels, k: int = 10, seed: int = 0):
    """k-means on each image's mean colour only (3 numbers). Returns the cluster of each
    image, the purity of the clusters against the true classes, and the purity of random
    clusters of the same sizes (the chance level), both measured."""
    from sklearn.cluster import KMeans
    feats = mean_colour(x).numpy()
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(feats)
    assign = torch.as_tensor(km.labels_)

    def purity(a):
        return sum(int(torch.bincount(labels[a == j]).max()) for j in torch.unique(a)) / len(labels)

    g = torch.Generator().manual_seed(seed)
    chance = float(np.mean([purity(assign[torch.randperm(len(assign), generator=g)]) for _ in range(20)]))
    return assign, purity(assign), chance, torch.as_tensor(km.cluster_centers_)


def cluster_grid(x, assign, centres, per: int = 8, clusters: int = 4):
    """A few colour clusters (the largest first), a row of images from each."""
    sizes = torch.bincount(assign)
    order = torch.argsort(sizes, descending=True)[:clusters]
    images, titles = [], []
    for j in order.tolist():
        members = torch.nonzero(assign == j).squeeze(1)[:per]
        for m, i in enumerate(members.tolist()):
            images.append(x[i])
            titles.append(f"cluster {j}: {int(sizes[j])}" if m == 0 else "")
        images += [torch.ones(3, 4, 4) for _ in range(per - len(members))]
        titles += [""] * (per - len(members))
    return image_grid(images, titles, cols=per, title="Colour clusters: k-means on the mean colour alone")


def colour_r2(z, x) -> float:
    """Share of the variance of embeddings z (n,d) explained linearly by the images' mean
    colour (3 numbers + bias): 1 = the embedding is a function of colour, 0 = unrelated."""
    feats = torch.cat([mean_colour(x), torch.ones(len(x), 1)], 1).double()
    z = z.double()
    coef = torch.linalg.lstsq(feats, z).solution
    resid = z - feats @ coef
    return float(1 - resid.pow(2).sum() / (z - z.mean(0)).pow(2).sum())


def augmentations(pil_image, count: int = 8, size: int = 32, crop_min: float = 0.5, seed: int = 0):
    """`count` draws of the trainer's augmentation (nattools.data.augment: random resized
    crop + horizontal flip) of one image, seeded. -> list of (3,size,size) tensors."""
    stored = D.stored_transform(size)(pil_image)                    # (3,L,L) uint8, as the trainer stores it
    g = torch.Generator().manual_seed(seed)
    return list(D.augment(stored.unsqueeze(0).repeat(count, 1, 1, 1), size, crop_min, generator=g))


def neighbour_agreement(z, groups, k: int = 10) -> float:
    """Share of each sample's k nearest neighbours (cosine, in z) that fall in its own
    group (e.g. its colour cluster or its class)."""
    z = F.normalize(z.float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-float("inf"))
    nn_idx = sim.topk(k, dim=1).indices
    return float((groups[nn_idx] == groups[:, None]).float().mean())
