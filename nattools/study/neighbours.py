"""Nearest neighbours: which training images sit closest to a query in a given space
(a learned embedding, the same network at random init, or the pixels themselves),
and how often they share the query's class. Labels only judge the neighbours;
the search never sees them.

A space is just a function images (n,3,H,W) -> vectors (n,D); closeness is cosine
similarity in every space, so the spaces differ only in what they measure. The network at
random initialisation is nattools.evaluate.random_init (BatchNorm statistics from the images).
"""
import html
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from ..evaluate import embed
from ..models import FrontEnd
from .plotting import PALETTE, data_uri, framed, png, png_sheet


# ---------------------------------------------------------------------------
# Spaces
# ---------------------------------------------------------------------------
@torch.no_grad()
def pixels(images: torch.Tensor, input: str = "rgb") -> torch.Tensor:
    """(n,3,H,W) in [0,1] -> (n, C*H*W): the fixed front end's output, flattened.
    input="rgb": per-channel normalised colour; "sobel": what NAT's network sees."""
    return FrontEnd(input)(images).flatten(1)


def embedding(model):
    """The space of a network: images -> model.embed (unit rows, nattools.evaluate.embed)."""
    return lambda images: embed(model, images)


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


def neighbour_agreement(z, groups, k: int = 10) -> float:
    """Share of each sample's k nearest neighbours (cosine, in z, itself left out) that fall in
    its own group (e.g. its colour cluster or its class)."""
    z = F.normalize(z.float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-float("inf"))
    nn_idx = sim.topk(k, dim=1).indices
    return float((groups[nn_idx] == groups[:, None]).float().mean())


def chance_agreement(groups) -> float:
    """neighbour_agreement for neighbours drawn at random: the chance that two samples share a
    group, sum over groups of (its share)^2."""
    return float(class_shares(groups, int(groups.max()) + 1).pow(2).sum())


def query_note(name: str, cfg) -> str:
    """Whether the checkpoint cfg (trained on cfg.dataset) saw the queries, validation images of
    `name`: the validation split is a fixed seed-0 prefix of one permutation
    (nattools.data.carve), so a run that held out a fraction >= 0.1 held out every query here."""
    if name != cfg.dataset:
        return f"the checkpoint was trained on {cfg.dataset}:\n  every image here is new to it"
    if cfg.val_fraction >= 0.1:
        return "the queries are images its training run held out"
    return ("its training run used every image, the queries included, but never a label:\n"
            "  the labels below only judge the neighbours")


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
    """curves: {space: (m,) precision_at_k} -> one line per space, chance dotted."""
    fig = go.Figure()
    for c, (name, p) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=list(range(1, len(p) + 1)), y=p.tolist(), name=name,
                                 mode="lines", line=dict(color=PALETTE[c % len(PALETTE)], width=2.5)))
    fig.add_hline(y=chance, line=dict(color="grey", dash="dot"), annotation_text="chance")
    fig.update_layout(title="Share of the m nearest training images that share the query's class",
                      xaxis_title="m (neighbours)", yaxis_title="share in the query's class",
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
    src = data_uri(png(img, scale=1))
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


GREEN, GREY, BLUE = (0.17, 0.63, 0.17), (0.8, 0.8, 0.8), (0.12, 0.47, 0.71)


def neighbours_slider(gallery: Gallery, queries=range(20), show: int = 8, tile: int = 56):
    """The static page's version of `neighbours_app`: a plotly slider over queries; at each, one row per
    space, the query (blue frame) then its `show` nearest training images (green frame: the
    query's class, grey: another), the space and its hits named on the left."""
    g, names = gallery, list(gallery.found)
    sheets, ticks, labels = [], [], []
    for i in queries:
        y, tiles, text = int(g.query_labels[i]), [], []
        for name in names:
            near = g.found[name][i, :show].tolist()
            hits = sum(int(g.memory_labels[j]) == y for j in near)
            tiles.append(framed(g.queries[i], BLUE, 3))
            tiles += [framed(g.memory[j], GREEN if int(g.memory_labels[j]) == y else GREY, 3) for j in near]
            text.append(f"{name}: {hits} of {len(near)}")
        sheets.append(png_sheet(torch.stack(tiles), cols=show + 1, tile=tile, gap=4))
        ticks.append(text)
        labels.append(f"query {i}: {g.classes[y]}")
    fig = go.Figure()
    for k, sheet in enumerate(sheets):
        fig.add_trace(go.Image(source=data_uri(sheet), visible=k == 0, hoverinfo="skip"))
    steps = [dict(method="update", label=str(i), args=[{"visible": [j == k for j in range(len(sheets))]},
                                                       {"title.text": labels[k], "yaxis.ticktext": ticks[k]}])
             for k, i in enumerate(queries)]
    fig.update_xaxes(visible=False)
    fig.update_yaxes(tickvals=[r * (tile + 4) + tile / 2 for r in range(len(names))], ticktext=ticks[0],
                     showgrid=False, zeroline=False, ticks="")
    fig.update_layout(title=dict(text=labels[0], font_size=14, x=0.01),
                      sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="query "), pad=dict(t=20))],
                      height=170 + (tile + 4) * len(names) * 1.05, margin=dict(l=5, r=5, t=50, b=10))
    return fig
