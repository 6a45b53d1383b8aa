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
    fig.update_layout(height=60 + height_per_row * rows, margin=dict(l=5, r=5, t=50 if title else 30, b=5),
                      title=title)
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
