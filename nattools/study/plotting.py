"""What every chapter shares: its setup (renderer, threads, seeds), budgets, colours, and pictures.

`setup()` (each chapter calls it once, first) sets plotly's renderer for the page:
`plotly_mimetype+nattools`, i.e. plotly's own mime bundle (JupyterLab, Binder) plus a
`text/html` rendering that Jupyter Book keeps. The HTML does not carry plotly.js: the book
loads it from its own static files (book/_ext), so a built page needs no network; in Colab the
stock `colab` renderer is used instead. Div ids are deterministic (a counter and a hash of the
figure), so re-running a chapter gives the same HTML. Importing this module changes nothing.

Every experiment is seeded, and `budget(full, small)` shrinks it when the environment variable
NATTOOLS_BUDGET=small is set (CI's notebook tests).
"""
import base64
import hashlib
import io
import itertools
import json
import math
import os
import random
import sys

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
import torch.nn.functional as F
from PIL import Image
from plotly.io._base_renderers import HtmlRenderer
from plotly.subplots import make_subplots

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
# Ten classes, ten colours, none of them grey (grey is for targets, chance lines and the rest).
CLASS_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#0b2f6b"]


# The page: renderer, threads, seeds, budgets ------------------------------------------------------
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


def use_book_renderer() -> str:
    """Register the book's renderer and make it plotly's default (Colab keeps its own) -> its name."""
    pio.renderers["nattools"] = BookRenderer()
    pio.renderers.default = "colab" if "google.colab" in sys.modules else "plotly_mimetype+nattools"
    pio.templates.default = "plotly_white"
    return pio.renderers.default


def seed_all(seed: int = 0) -> None:
    """Seed python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0) -> None:
    """What every chapter calls first: the book's plotly renderer, torch's CPU threads from
    NATTOOLS_THREADS (default 1: the book's experiments are small, and extra threads only slow
    them down on a busy machine), and seeds."""
    use_book_renderer()
    torch.set_num_threads(max(1, int(os.environ.get("NATTOOLS_THREADS", "1"))))
    seed_all(seed)


def small_budget() -> bool:
    """True when NATTOOLS_BUDGET=small (CI runs every chapter with tiny sizes)."""
    return os.environ.get("NATTOOLS_BUDGET", "").strip().lower() == "small"


def budget(full, small):
    """`full` normally, `small` under NATTOOLS_BUDGET=small."""
    return small if small_budget() else full


def pick_dataset() -> str:
    """The book's data set (nattools.data.default_dataset) in a line or two: which copy, how many
    training images, where the validation images come from; never the folder it was found in (a
    page shows no machine's paths)."""
    from .. import data as D
    name = D.default_dataset(verbose=False)
    if name != "cifar10":
        why = "set by NATTOOLS_DATASET" if os.environ.get("NATTOOLS_DATASET") else "CIFAR-10 is not available here"
        print(f"dataset: scikit-learn's digits ({why}; the figures use the digits)")
        return name
    n = len(D.load(name, "train", val_fraction=0.0))
    if D.held_out(name, None, 0):  # not carved: torchvision's official test split
        print(f"dataset: CIFAR-10, torchvision's copy: {n:,} training images;\n"
              f"  validation images: its official test split")
    else:
        print(f"dataset: CIFAR-10 as JPEG files: {n:,} training images;\n"
              f"  validation images: a fixed share of them, carved out with seed 0")
    return name


def table(header, rows):
    """A table for the page, as Markdown (the book renders it as a real table): header [str],
    rows [[cell, ...]] with the cells already formatted."""
    from IPython.display import Markdown
    return Markdown(md_table(header, rows))


def md_table(header, rows) -> str:
    """A Markdown table: header [str], rows [[cell, ...]] (cells formatted already)."""
    def esc(cell):
        return str(cell).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def dataset_note(name: str, x, classes) -> str:
    """One line the chapters print: what data the numbers below come from."""
    what = "CIFAR-10 (real photos)" if name == "cifar10" else "scikit-learn digits (offline fallback)"
    return f"{what}: {len(x)} images of {tuple(x.shape[1:])}, {len(classes)} classes"


# Pictures -----------------------------------------------------------------------------------------
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


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def png(img, scale: int = 4) -> bytes:
    """One (3,H,W) or (H,W) image in [0,1] as a PNG, each pixel a scale x scale square."""
    a = _to_uint8(img)
    return _png_bytes(Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.NEAREST))


def png_sheet(tiles: torch.Tensor, cols: int, tile: int = 64, gap: int = 4) -> bytes:
    """(n,3,s,s) in [0,1] -> one PNG of the tiles, each resized to `tile` px (nearest), white gaps."""
    rows = math.ceil(len(tiles) / cols)
    big = F.interpolate(tiles.float().clamp(0, 1), size=(tile, tile), mode="nearest")
    sheet = torch.ones(3, rows * (tile + gap) - gap, cols * (tile + gap) - gap)
    for i, t in enumerate(big):
        r, c = divmod(i, cols)
        sheet[:, r * (tile + gap): r * (tile + gap) + tile, c * (tile + gap): c * (tile + gap) + tile] = t
    return _png_bytes(Image.fromarray(_to_uint8(sheet)))


def data_uri(png_bytes: bytes) -> str:
    """A PNG as a data: URI, for an <img> or a plotly Image that the page carries inline."""
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode()


def sphere_surface(opacity: float = 0.12, res: int = 30):
    """The unit sphere, faint, behind 3-D scatter plots of unit vectors."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, res), np.linspace(0, np.pi, res // 2))
    return go.Surface(x=np.cos(u) * np.sin(v), y=np.sin(u) * np.sin(v), z=np.cos(v), opacity=opacity,
                      showscale=False, colorscale=[[0, "#9ecae1"], [1, "#9ecae1"]], hoverinfo="skip",
                      showlegend=False)


def sphere_axes(fig, height: int, top: int = 60):
    """Cube-shaped 3-D scenes on [-1.1, 1.1] without ticks, for figures of the sphere."""
    axis = dict(range=[-1.1, 1.1], showticklabels=False, title="")
    fig.update_scenes(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=top, b=0), legend=dict(itemsizing="constant"))
    return fig


def framed(tile: torch.Tensor, colour, width: int = 2) -> torch.Tensor:
    """(3,s,s) in [0,1] -> the same tile with a border of `colour` ((r,g,b) in [0,1]) drawn inside it."""
    t = tile.float().clone()
    c = torch.tensor(colour, dtype=t.dtype).view(3, 1, 1)
    t[:, :width, :], t[:, -width:, :], t[:, :, :width], t[:, :, -width:] = c, c, c, c
    return t


def image_slider(sheets, labels, title: str, prefix: str = "", column_titles=None, tile: int = None,
                 gap: int = 4, height: int = None, active: int = 0, steps=None):
    """A plotly figure that pages through pictures with its own slider, so it works in the static
    page (no kernel): sheets [PNG bytes] of one size, labels [str] (one per sheet, shown in the
    title; `steps` [str]: shorter names for the slider's ticks, default 0, 1, ...). column_titles: text
    above each column of tiles of width `tile` (with `gap` pixels between tiles), when the sheets are grids."""
    from PIL import Image as PILImage
    w, h = PILImage.open(io.BytesIO(sheets[0])).size
    fig = go.Figure()
    for i, sheet in enumerate(sheets):
        fig.add_trace(go.Image(source=data_uri(sheet), visible=i == active, hoverinfo="skip"))
    ticks = steps or [str(i) for i in range(len(sheets))]
    steps = [dict(method="update", label=ticks[i],
                  args=[{"visible": [j == i for j in range(len(sheets))]}, {"title.text": f"{title}: {label}"}])
             for i, label in enumerate(labels)]
    top = 70 + (22 if column_titles else 0)
    fig.update_layout(title=dict(text=f"{title}: {labels[active]}", font_size=14, x=0.01),
                      sliders=[dict(active=active, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=15))],
                      xaxis=dict(visible=False, range=[0, w]), yaxis=dict(visible=False, range=[h, 0],
                                                                           scaleanchor="x"),
                      height=height or int(top + 130 + h * min(1.0, 860 / w)),
                      margin=dict(l=10, r=10, t=top, b=10))
    for k, text in enumerate(column_titles or []):
        fig.add_annotation(x=k * (tile + gap) + tile / 2, y=0, yshift=12, text=text, showarrow=False,
                           font_size=12, yanchor="bottom")
    return fig


def markdown(text: str):
    """Markdown for the page (the book renders it as MyST: tables, admonitions, maths)."""
    from IPython.display import Markdown
    return Markdown(text)

