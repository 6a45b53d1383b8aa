"""Nearest neighbours: which training images sit closest to a query in a given space
(a learned embedding, the same network at random init, or the pixels themselves),
and how often they share the query's class. Labels only judge the neighbours;
the search never sees them.

A space is just a function images (n,3,H,W) -> vectors (n,D); closeness is cosine
similarity in every space, so the spaces differ only in what they measure.
"""
import base64
import html
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from .evaluate import reestimate_bn
from .models import FrontEnd, build_model
from .viz import PALETTE, embed_all, png


# ---------------------------------------------------------------------------
# Spaces
# ---------------------------------------------------------------------------
@torch.no_grad()
def pixels(images: torch.Tensor, input: str = "rgb") -> torch.Tensor:
    """(n,3,H,W) in [0,1] -> (n, C*H*W): the fixed front end's output, flattened.
    input="rgb": per-channel normalised colour; "sobel": what NAT's network sees."""
    return FrontEnd(input)(images).flatten(1)


def embedding(model):
    """The space of a network: images -> model.embed (unit rows)."""
    return lambda images: embed_all(model, images)


def random_init(cfg, images: torch.Tensor, seed: int = 0, batches: int = 20):
    """cfg's architecture with fresh random weights, its BatchNorm statistics
    re-estimated on `images` (otherwise they are the meaningless 0 and 1 of
    initialisation): the baseline that tells what training added."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg)
    ds = torch.utils.data.TensorDataset(images, torch.zeros(len(images)), torch.arange(len(images)))
    return reestimate_bn(model, ds, batches=batches, batch_size=min(256, len(images)), seed=seed)


# ---------------------------------------------------------------------------
# Search and figures of merit
# ---------------------------------------------------------------------------
@torch.no_grad()
def search(queries: torch.Tensor, memory: torch.Tensor, k: int = 10, chunk: int = 1024):
    """Cosine top-k of each query among the memory rows: (q,D), (N,D) ->
    similarities (q,k) and indices into memory (q,k), best first. Chunked over
    the queries, so only a (chunk, N) block of similarities exists at a time."""
    if k > len(memory):
        raise ValueError(f"asked for {k} neighbours among {len(memory)} memory rows")
    memory = F.normalize(memory.float(), dim=1)
    sims, idx = [], []
    for q in F.normalize(queries.float(), dim=1).split(chunk):
        top = (q @ memory.T).topk(k, dim=1)                               # (c, N) -> (c, k)
        sims.append(top.values)
        idx.append(top.indices)
    return torch.cat(sims), torch.cat(idx)


def same_class(idx: torch.Tensor, query_labels: torch.Tensor, memory_labels: torch.Tensor) -> torch.Tensor:
    """(q,k) neighbour indices -> (q,k) bool: does neighbour j share query i's class?"""
    return memory_labels[idx] == query_labels[:, None]


def shares(idx, query_labels, memory_labels) -> torch.Tensor:
    """(q,k): entry [i, j-1] is the share of query i's first j neighbours that
    belong to its class (j = 1..k)."""
    hits = same_class(idx, query_labels, memory_labels).float()           # (q, k)
    return hits.cumsum(1) / torch.arange(1, idx.shape[1] + 1)


def precision_at_k(idx, query_labels, memory_labels) -> torch.Tensor:
    """(k,): the share of the first k neighbours in the query's class, averaged
    over the queries, for every k up to idx.shape[1]."""
    return shares(idx, query_labels, memory_labels).mean(0)


def difference(idx_a, idx_b, query_labels, memory_labels, k: int = 10):
    """Precision at k of space a minus that of space b, on the same queries, and
    its standard error over the queries (paired: each query is compared with
    itself, which removes the spread between easy and hard queries)."""
    d = shares(idx_a, query_labels, memory_labels)[:, k - 1] - shares(idx_b, query_labels, memory_labels)[:, k - 1]
    return float(d.mean()), float(d.std() / len(d) ** 0.5)


def class_shares(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes,): the fraction of images in each class; for a query of class c,
    a neighbour drawn at random from these images shares its class with probability [c]."""
    return torch.bincount(labels, minlength=n_classes).float() / len(labels)


def chance_precision(query_labels, memory_labels) -> float:
    """precision_at_k for neighbours drawn at random from the memory (any k)."""
    n_classes = int(max(query_labels.max(), memory_labels.max())) + 1
    return float(class_shares(memory_labels, n_classes)[query_labels].mean())


def precision_per_class(idx, query_labels, memory_labels, n_classes: int) -> torch.Tensor:
    """(n_classes,): precision at k = idx.shape[1] over the queries of each class
    (NaN for a class with no query)."""
    hits = same_class(idx, query_labels, memory_labels).float().mean(1)   # (q,)
    total = torch.zeros(n_classes).index_add_(0, query_labels, hits)
    count = torch.bincount(query_labels, minlength=n_classes).float()
    return total / count


def overlap(idx_a: torch.Tensor, idx_b: torch.Tensor) -> float:
    """Mean share of the k neighbours two spaces have in common (1 = same sets)."""
    a, b = idx_a[:, :, None], idx_b[:, None, :]                          # (q,k,1), (q,1,k)
    return float((a == b).any(2).float().mean())


# ---------------------------------------------------------------------------
# What the chapter shows
# ---------------------------------------------------------------------------
@dataclass
class Gallery:
    """Queries, the memory they are searched in, and each space's neighbours."""
    queries: torch.Tensor            # (q,3,H,W) in [0,1]
    query_labels: torch.Tensor       # (q,)
    memory: torch.Tensor             # (N,3,H,W)
    memory_labels: torch.Tensor      # (N,)
    classes: list
    found: dict                      # space name -> (q,k) indices into memory, best first


def precision_figure(curves: dict, chance: float):
    """curves: {space: (k,) precision_at_k} -> one line per space, chance dotted."""
    fig = go.Figure()
    for c, (name, p) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=list(range(1, len(p) + 1)), y=p.tolist(), name=name,
                                 mode="lines", line=dict(color=PALETTE[c % len(PALETTE)], width=2.5)))
    fig.add_hline(y=chance, line=dict(color="grey", dash="dot"), annotation_text="chance")
    fig.update_layout(title="Share of the k nearest training images that share the query's class",
                      xaxis_title="k (neighbours)", yaxis_title="share in the query's class",
                      yaxis_rangemode="tozero", height=420)
    return fig


def class_figure(per_class: dict, classes, chance_per_class, k: int):
    """per_class: {space: (C,) precision_per_class} -> grouped bars per class, chance as ticks."""
    fig = go.Figure()
    for c, (name, p) in enumerate(per_class.items()):
        fig.add_trace(go.Bar(x=list(classes), y=p.tolist(), name=name, marker_color=PALETTE[c % len(PALETTE)]))
    fig.add_trace(go.Scatter(x=list(classes), y=chance_per_class.tolist(), mode="markers", name="chance",
                             marker=dict(symbol="line-ew-open", size=40, color="grey", line_width=2)))
    fig.update_layout(title=f"Share of the {k} nearest neighbours in the query's class, by class of the query",
                      yaxis_title="share in the query's class", barmode="group", height=420,
                      legend=dict(orientation="h", y=-0.15))
    return fig


def _tile(img, caption: str, border: str) -> str:
    src = "data:image/png;base64," + base64.b64encode(png(img, scale=1)).decode()
    return (f"<td style='text-align:center;padding:2px;font-size:11px'>"
            f"<img src='{src}' width='64' height='64' style='image-rendering:pixelated;"
            f"border:3px solid {border};display:block;margin:auto'>{caption}</td>")


def neighbour_html(gallery: Gallery, i: int, show: int = 8) -> str:
    """One query against every space: a table row per space with the query (blue
    frame) and its `show` nearest training images, best first; a neighbour of the
    query's class has a green frame and a check mark, any other a grey frame."""
    g, y = gallery, int(gallery.query_labels[i])
    rows = []
    for name, idx in g.found.items():
        near = idx[i, :show].tolist()
        hits = sum(int(g.memory_labels[j]) == y for j in near)
        cells = [f"<td style='padding:2px 8px;font-size:12px;width:130px'><b>{html.escape(name)}</b><br>"
                 f"{hits} of {len(near)} in the class</td>",
                 _tile(g.queries[i], f"query: {html.escape(g.classes[y])}", "#1f77b4")]
        for j in near:
            ok = int(g.memory_labels[j]) == y
            label = html.escape(g.classes[int(g.memory_labels[j])])
            cells.append(_tile(g.memory[j], ("&#10003; " if ok else "") + label, "#2ca02c" if ok else "#ccc"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<table style='border-collapse:collapse'>" + "".join(rows) + "</table>"


def neighbours_app(gallery: Gallery, start: int = 0, show: int = 8):
    """An ipywidgets app: pick a query (slider) and see its nearest training images
    in every space. Needs a kernel to react; the static page shows its initial state."""
    import ipywidgets as W
    slider = W.IntSlider(value=start, min=0, max=len(gallery.queries) - 1, description="query",
                         continuous_update=False)
    table = W.HTML()

    def draw(_=None):
        table.value = neighbour_html(gallery, slider.value, show)

    slider.observe(draw, names="value")
    draw()
    return W.VBox([slider, table])
