"""Nearest neighbours: which training images sit closest to a query in a given space
(a learned embedding, the same network at random init, or the pixels themselves),
and how often they share the query's class. Labels only judge the neighbours;
the search never sees them.

A space is just a function images (n,3,H,W) -> vectors (n,D); closeness is cosine
similarity in every space, so the spaces differ only in what they measure. The network at
random initialisation is nattools.evaluate.random_init (BatchNorm statistics from the images).
"""
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from ..evaluate import embed, extract, initial_model, random_init
from ..models import FrontEnd
from .chapter import stored
from .plotting import PALETTE, data_uri, framed, png_sheet


# Spaces -------------------------------------------------------------------------------------------
@torch.no_grad()
def pixels(images: torch.Tensor, input: str = "rgb") -> torch.Tensor:
    """(n,3,H,W) in [0,1] -> (n, C*H*W): the fixed front end's output, flattened.
    input="rgb": per-channel normalised colour; "sobel": what NAT's network sees."""
    return FrontEnd(input)(images).flatten(1)


def embedding(model):
    """The space of a network: images -> model.embed (unit rows, nattools.evaluate.embed)."""
    return lambda images: embed(model, images)


def pooled_features(model):
    """The space of a network's last conv map, average-pooled 2 x 2 (the linear probe's input,
    nattools.evaluate.extract)."""
    def vectors(images):
        data = torch.utils.data.TensorDataset(images, torch.zeros(len(images)), torch.arange(len(images)))
        return extract(model, data)[1]
    return vectors


def space(which, memory_images):
    """A space named by what it depends on -> images -> vectors: a model (its embedding), "sobel" or
    "rgb" (pixels), ("features", model) (its pooled conv features); a model given as ("random", cfg)
    is the random-init twin of cfg's run, BatchNorm measured on memory_images (evaluate.random_init)."""
    kind, net = which if isinstance(which, tuple) and which[0] == "features" else ("embedding", which)
    if isinstance(net, str):
        return lambda images: pixels(images, net)
    net = random_init(net[1], memory_images) if isinstance(net, tuple) else net
    return pooled_features(net) if kind == "features" else embedding(net)


def neighbours(spaces: dict, queries, memory, k: int, name: str = "08_neighbours") -> tuple:
    """{space: (q, k) indices of each query's k nearest memory images, best first} for chapter.Samples
    of queries and memory and spaces {name: `space`'s which}, read from data/results/book/NAME.pt when
    that was made from the same spaces and images, else searched now. -> (that dict, read from the file?)."""
    def measure():
        xq, xm, found = queries.images(), memory.images(), {}
        for s, which in spaces.items():
            vectors = space(which, xm)
            found[s] = search(vectors(xq), vectors(xm), k)[1]
        return found

    def named(which):                          # the weights a space depends on, for the file's key
        if isinstance(which, tuple) and which[0] == "random":
            return "random", initial_model(which[1])
        return tuple(named(w) for w in which) if isinstance(which, tuple) else which
    key = ("neighbours.neighbours 1", k, queries.key, memory.key, {s: named(w) for s, w in spaces.items()})
    return stored(name, key, measure)


# Search and figures of merit ----------------------------------------------------------------------
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


def knn_vote(idx: torch.Tensor, memory_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(q,k) neighbour indices -> (q,) the most common class among them, ties to the lower class:
    nattools.evaluate.knn_predict's vote, from neighbours already found."""
    return F.one_hot(memory_labels[idx], n_classes).sum(1).argmax(1)


def within(idx: torch.Tensor, keep: torch.Tensor, k: int) -> torch.Tensor:
    """(q,K) neighbours in a memory -> (q,k) the first k of them in the part of it where `keep`
    (a (N,) bool) holds: the neighbours a search in that smaller memory would find (row positions
    in the full memory). Raises when fewer than k of a query's K lie in it."""
    inside = keep[idx]                                                   # (q, K)
    if int(inside.sum(1).min()) < k:
        raise ValueError(f"fewer than {k} of some query's {idx.shape[1]} neighbours in the kept memory")
    order = torch.sort((~inside).int(), dim=1, stable=True).indices[:, :k]   # kept ones first, in rank order
    return idx.gather(1, order)


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


# What the chapter shows ---------------------------------------------------------------------------
@dataclass
class Gallery:
    """Queries, the memory they are searched in (chapter.Samples: images opened when shown, labels),
    and each space's neighbours."""
    queries: object
    memory: object
    classes: list
    found: dict                      # space name -> (q,k) indices into memory, best first


def precision_figure(curves: dict, chance: float):
    """curves: {space: (m,) precision_at_k} -> one line per space, chance dotted."""
    fig = go.Figure()
    for c, (name, p) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=list(range(1, len(p) + 1)), y=p.tolist(), name=name,
                                 mode="lines", line=dict(color=PALETTE[c % len(PALETTE)], width=2.5)))
    fig.add_hline(y=chance, line=dict(color="grey", dash="dot"), annotation_text="chance")
    fig.update_layout(title="Same-class share of the m nearest training images",
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
    fig.update_layout(title=f"Same-class share of the {k} nearest, by the query's class",
                      yaxis_title="share in the query's class", barmode="group", height=420,
                      legend=dict(orientation="h", y=-0.15))
    return fig


GREEN, GREY, BLUE = (0.17, 0.63, 0.17), (0.8, 0.8, 0.8), (0.12, 0.47, 0.71)


def _rows(g: Gallery, i: int, show: int, tile: int):
    """Query i against every space: one PNG with a row per space, the query (blue frame) then its `show`
    nearest memory images (green frame: the query's class, grey: another) -> (png, [row labels])."""
    y, tiles, text = int(g.queries.labels[i]), [], []
    for name, idx in g.found.items():
        near = idx[i, :show].tolist()
        tiles.append(framed(g.queries[i], BLUE, 3))
        tiles += [framed(g.memory[j], GREEN if int(g.memory.labels[j]) == y else GREY, 3) for j in near]
        text.append(f"{name}: {sum(int(g.memory.labels[j]) == y for j in near)} of {len(near)}")
    return png_sheet(torch.stack(tiles), cols=show + 1, tile=tile, gap=4), text


def neighbours_app(gallery: Gallery, start: int = 0, show: int = 8, tile: int = 56):
    """An ipywidgets app: pick a query (slider) and see its nearest memory images in every space.
    Needs a kernel to react; the static page shows its initial state."""
    import ipywidgets as W
    slider = W.IntSlider(value=start, min=0, max=len(gallery.queries) - 1, description="query",
                         continuous_update=False)
    info, sheet = W.HTML(), W.Image(format="png")

    def draw(_=None):
        sheet.value, text = _rows(gallery, slider.value, show, tile)
        info.value = f"<b>{gallery.classes[int(gallery.queries.labels[slider.value])]}</b>; " + "; ".join(text)

    slider.observe(draw, names="value")
    draw()
    return W.VBox([slider, info, sheet])


def neighbours_slider(gallery: Gallery, queries=range(20), show: int = 8, tile: int = 56):
    """The static page's version of `neighbours_app`: a plotly slider over queries, the rows of `_rows`
    at each, the space and its hits named on the left."""
    g, n = gallery, len(gallery.found)
    pictures = [_rows(g, i, show, tile) for i in queries]
    labels = [f"query {i}: {g.classes[int(g.queries.labels[i])]}" for i in queries]
    fig = go.Figure()
    for k, (sheet, _) in enumerate(pictures):
        fig.add_trace(go.Image(source=data_uri(sheet), visible=k == 0, hoverinfo="skip"))
    steps = [dict(method="update", label=str(i), args=[{"visible": [j == k for j in range(len(pictures))]},
                                                       {"title.text": labels[k], "yaxis.ticktext": pictures[k][1]}])
             for k, i in enumerate(queries)]
    fig.update_xaxes(visible=False)
    fig.update_yaxes(tickvals=[r * (tile + 4) + tile / 2 for r in range(n)], ticktext=pictures[0][1],
                     showgrid=False, zeroline=False, ticks="")
    fig.update_layout(title=dict(text=labels[0], font_size=14, x=0.01),
                      sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="query "), pad=dict(t=20))],
                      height=170 + (tile + 4) * n * 1.05, margin=dict(l=5, r=5, t=50, b=10))
    return fig
