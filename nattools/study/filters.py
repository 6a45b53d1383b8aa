"""What a network learned: its first-layer filters, and the image patches that excite a channel most.

A Sobel model's first conv layer sees two channels, the x- and y-gradients of the grey image, so
each filter is a pair of k x k kernels. Sobel is linear, so Sobel followed by conv1 is a single
(k+2) x (k+2) kernel on the grey image (`grey_kernels`): the edge detector the filter really is.

Deeper channels have no picture of their own; we show them through data instead: over many images,
the receptive-field crops where a channel responds most (`layer_maxima`, then `top_patches`).
The networks compared are a trained one and its start, nattools.evaluate.initial_model (the same
weights as nattools.evaluate.random_init, which also re-estimates BatchNorm's statistics).
"""
from collections import Counter
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..evaluate import initial_model, random_init
from ..models import FrontEnd
from .chapter import stored
from .plotting import data_uri, png_sheet


def conv_layers(model) -> list:
    """The trunk's Conv2d layers, first to last."""
    return [m for m in model.trunk if isinstance(m, nn.Conv2d)]


# First-layer filters ------------------------------------------------------------------------------


def first_filters(model) -> torch.Tensor:
    """conv1's weights (C, in, k, k); in = 2 for Sobel input: [d/dx, d/dy]."""
    return conv_layers(model)[0].weight.detach().float().clone()


def grey_kernels(w: torch.Tensor) -> torch.Tensor:
    """(C, 2, k, k) weights on the Sobel channels -> (C, k+2, k+2): the same filters as single kernels
    on the normalised grey image (cross-correlation, as F.conv2d), Sobel's border padding aside."""
    sobel = FrontEnd("sobel").sobel                                   # (2,1,3,3): d/dx, d/dy
    # corr(w, corr(S, g)) = corr(conv_full(w, S), g): a full convolution of each weight plane with its S
    return F.conv2d(F.pad(w.float(), (2, 2, 2, 2)), sobel.flip(-1, -2).transpose(0, 1))[:, 0]


def cosine_to_start(w: torch.Tensor, w0: torch.Tensor) -> torch.Tensor:
    """(C,...) trained and initial filters -> (C,) cosine between each filter and its start."""
    return F.cosine_similarity(w.flatten(1), w0.flatten(1), dim=1)


def learned_part(w: torch.Tensor, w0: torch.Tensor) -> torch.Tensor:
    """What training added to each filter: w minus its projection on the starting filter w0.
    BatchNorm follows every conv, so a filter's scale does not matter (weight decay shrinks it
    anyway); only new directions change what the layer computes."""
    u = F.normalize(w0.flatten(1), dim=1)
    flat = w.flatten(1)
    return (flat - (flat * u).sum(1, keepdim=True) * u).view_as(w)


def smoothness(w: torch.Tensor) -> torch.Tensor:
    """(C, ..., k, k) -> (C,): correlation between horizontally and vertically adjacent weights
    of each filter. Independent random weights give about 0; smooth, blob- or edge-like ones near 1."""
    w = w.reshape(len(w), -1, *w.shape[-2:]).double()
    a = torch.cat([w[..., :, :-1].flatten(1), w[..., :-1, :].flatten(1)], 1)   # each weight ...
    b = torch.cat([w[..., :, 1:].flatten(1), w[..., 1:, :].flatten(1)], 1)     # ... and its neighbour
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)).float()


def orientation_selectivity(kernels: torch.Tensor, size: int = 32) -> torch.Tensor:
    """(C, s, s) -> (C,) in [0, 1]: how much of a kernel's spectral power lies along one orientation,
    |sum P(f) e^{2i angle(f)}| / sum P(f) (angles doubled: an edge and its negative are one orientation).
    1: a pure oriented edge or grating; 0: no preferred orientation (a round blob)."""
    power = torch.fft.fft2(kernels.double(), s=(size, size)).abs().pow(2)       # (C, size, size)
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    angle = torch.atan2(f[:, None].expand(size, size), f[None, :].expand(size, size))  # (fy, fx)
    power[:, 0, 0] = 0                                                          # the mean has no orientation
    resultant = (power * torch.polar(torch.ones_like(angle), 2 * angle)).sum((1, 2)).abs()
    return (resultant / (power.sum((1, 2)) + 1e-12)).float()


def filter_stats(w: torch.Tensor):
    """(C,2,k,k) filters on the Sobel channels -> (smoothness of the weights, orientation selectivity
    of their grey kernels), each (C,)."""
    return smoothness(w), orientation_selectivity(grey_kernels(w))


def _scaled(t: torch.Tensor) -> torch.Tensor:
    """Each tile divided by its own largest |value|: shapes compare, scales do not (BN follows)."""
    return t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, *[1] * (t.ndim - 1))


def _table_figure(columns: dict, row_labels: list, title: str, gap: int = 1, column_gap: int = 3,
                  px: int = 12):
    """{column title: tiles (n,h,w) in [-1,1]} -> one heatmap: row i holds tile i of every column,
    blank (NaN) between tiles, blue < 0 < red, each weight drawn as a square of about px pixels."""
    tiles = list(columns.values())
    n, h = len(row_labels), tiles[0].shape[1]
    widths = [t.shape[2] for t in tiles]
    table = np.full((n * (h + gap) - gap, sum(widths) + column_gap * (len(tiles) - 1)), np.nan)
    centres, x0 = [], 0
    for t, w in zip(tiles, widths):
        for i in range(n):
            table[i * (h + gap): i * (h + gap) + h, x0: x0 + w] = t[i].numpy()
        centres.append(x0 + (w - 1) / 2)
        x0 += w + column_gap
    fig = go.Figure(go.Heatmap(z=table, zmin=-1, zmax=1, colorscale="RdBu_r", colorbar=dict(title="w / max|w|"),
                               hovertemplate="%{z:.2f}<extra></extra>"))
    fig.update_xaxes(tickvals=centres, ticktext=list(columns), side="top", showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=[i * (h + gap) + (h - 1) / 2 for i in range(n)], ticktext=row_labels,
                     autorange="reversed", scaleanchor="x", showgrid=False, zeroline=False)
    fig.update_layout(height=130 + px * table.shape[0], margin=dict(l=5, r=5, t=110, b=5),
                      title=dict(text=title, font_size=14), plot_bgcolor="white")
    return fig


def filters_figure(weights: dict, order):
    """{network: conv1 weights (C,2,k,k)} -> rows: filters `order`; per network, each filter's d/dx
    weights next to its d/dy weights, each filter on its own scale (only its shape matters)."""
    columns = {}
    for name, w in weights.items():
        w = _scaled(w[order])                                                     # (n,2,k,k)
        columns[name] = torch.cat([w[:, 0], torch.full((len(w), w.shape[2], 1), float("nan")), w[:, 1]], 2)
    return _table_figure(columns, [f"filter {i}" for i in order], column_gap=4,
                         title="conv1 filters: weights on d/dx | weights on d/dy")


def kernels_figure(kernels: dict, order):
    """{column: kernels (C,s,s)} -> rows: kernels `order`, each on its own scale."""
    return _table_figure({name: _scaled(k[order]) for name, k in kernels.items()}, [f"filter {i}" for i in order],
                         title="The same filters as kernels on the grey image (Sobel, then conv1)", column_gap=2,
                         px=10)


STATS_COLOURS = {"random": "#7f7f7f", "NAT": "#1f77b4", "NAT: learned part": "#17becf", "supervised": "#d62728",
                 "supervised: learned part": "#ff7f0e"}


def stats_figure(groups: dict):
    """{group: (smoothness (C,), orientation (C,))} -> one dot per filter; groups not named in
    STATS_COLOURS (a chance level) in light grey."""
    fig = go.Figure()
    for name, (smooth, orient) in sorted(groups.items(), key=lambda g: g[0] in STATS_COLOURS):  # chance below
        fig.add_trace(go.Scatter(x=smooth.numpy(), y=orient.numpy(), mode="markers", name=name,
                                 marker=dict(size=7, color=STATS_COLOURS.get(name, "#cccccc"),
                                             opacity=0.8 if name in STATS_COLOURS else 0.5),
                                 hovertemplate="smoothness %{x:.2f}, orientation %{y:.2f}<extra>" + name + "</extra>"))
    fig.update_layout(title="One dot per conv1 filter", height=480, yaxis_range=[0, 1.02],
                      xaxis_title="smoothness (correlation of neighbouring weights)",
                      yaxis_title="orientation selectivity", legend=dict(orientation="h", y=-0.2))
    return fig


# Receptive fields and top-activating patches ------------------------------------------------------


@dataclass(frozen=True)
class ReceptiveField:
    """Unit (i, j) of a layer sees input pixels [start + i*jump +- (size-1)/2] (rows, likewise cols)."""
    size: int
    jump: int
    start: float

    def corner(self, i: int) -> int:
        """First input row (or col) seen by unit i; may be negative (padding)."""
        return int(round(self.start + i * self.jump - (self.size - 1) / 2))


def receptive_fields(model) -> list:
    """One ReceptiveField per conv block output (after its ReLU, before any pooling), in input
    pixels, the Sobel front end's 3x3 included."""
    size, jump, start = (3, 1, 0.0) if model.front.input == "sobel" else (1, 1, 0.0)
    out = []
    for m in model.trunk:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = (v[0] if isinstance(v, tuple) else v for v in (m.kernel_size, m.stride, m.padding))
            size, start, jump = size + (k - 1) * jump, start + ((k - 1) / 2 - p) * jump, jump * s
        if isinstance(m, nn.ReLU):
            out.append(ReceptiveField(size, jump, start))
    return out


@dataclass
class LayerMaxima:
    """For one conv block: each channel's `top` strongest images, by the channel's largest response
    (after its ReLU), strongest first, and where in the layer's grid that response is."""
    name: str
    image: torch.Tensor    # (top, C) long: rows of the images
    value: torch.Tensor    # (top, C)
    row: torch.Tensor      # (top, C) long
    col: torch.Tensor
    field: ReceptiveField


@torch.no_grad()
def layer_maxima(model, x: torch.Tensor, top: int = 16, batch_size: int = 250) -> list:
    """Runs images x (N,3,H,W) through the trunk once; -> one LayerMaxima per conv block, read
    after its ReLU (a trained BatchNorm may flip a channel's sign, so the conv output alone won't do)."""
    model.eval()
    fields, per_layer = receptive_fields(model), [[] for _ in conv_layers(model)]
    for xb in x.split(batch_size):
        h, k = model.front(xb), 0
        for m in model.trunk:
            h = m(h)
            if isinstance(m, nn.ReLU):
                v, where = h.flatten(2).max(2)                          # (b, C) each
                per_layer[k].append((v, where, h.shape[-1]))
                k += 1
    out = []
    for k, parts in enumerate(per_layer):
        value, where = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])   # (N, C)
        best, image = value.topk(min(top, len(x)), dim=0)                                  # (top, C)
        where, width = where.gather(0, image), parts[0][2]
        out.append(LayerMaxima(f"conv{k + 1}", image, best, where // width, where % width, fields[k]))
    return out


def channel_maxima(models: dict, sample, top: int = 16) -> tuple:
    """{network: layer_maxima(model, images, top)} of a chapter.Sample's images, read from
    data/results/book/07_filters.pt when that was made from the same networks and images (else measured
    now). models: {network: a model, or ("random", cfg): its random-init twin, BatchNorm measured on
    the images (nattools.evaluate.random_init)}. -> (that dict, True if read from the file)."""
    def measure():
        x = sample.images()
        nets = {k: random_init(m[1], x) if isinstance(m, tuple) else m for k, m in models.items()}
        return {k: [{f: getattr(lm, f) for f in ("name", "image", "value", "row", "col")}
                    for lm in layer_maxima(m, x, top)] for k, m in nets.items()}

    arch = {k: initial_model(m[1]) if isinstance(m, tuple) else m for k, m in models.items()}
    random = {k: isinstance(m, tuple) for k, m in models.items()}
    key = ("filters.channel_maxima 1", top, sample.key, {k: (random[k], arch[k]) for k in models})
    found, read = stored("07_filters", key, measure)
    return {k: [LayerMaxima(**lm, field=f) for lm, f in zip(found[k], receptive_fields(arch[k]))]
            for k in models}, read


def crop(image: torch.Tensor, top: int, left: int, size: int, fill: float = 0.5) -> torch.Tensor:
    """(3,H,W) -> (3,size,size) crop at (top, left); parts outside the image are `fill` (grey)."""
    pad = size
    padded = F.pad(image, (pad, pad, pad, pad), value=fill)
    return padded[:, top + pad: top + pad + size, left + pad: left + pad + size]


def top_patches(x, layer: LayerMaxima, channel: int, k: int = 16):
    """The k images of x (a tensor or a chapter.Sample) where `channel` responds most, and the
    receptive-field crop around its strongest position. -> crops (k,3,s,s), image rows (k,), values (k,)."""
    idx, values, f = layer.image[:k, channel], layer.value[:k, channel], layer.field
    crops = [crop(x[int(i)], f.corner(int(r)), f.corner(int(c)), f.size)
             for i, r, c in zip(idx, layer.row[:k, channel], layer.col[:k, channel])]
    return torch.stack(crops), idx, values


def class_purity(layer: LayerMaxima, labels: torch.Tensor, k: int = 16) -> torch.Tensor:
    """(C,): per channel, the share of its top-k images that belong to the most common class among
    them. Labels are used only here, to read what a channel responds to."""
    top = layer.image[:k]                                                       # (k, C) image rows
    counts = F.one_hot(labels[top], int(labels.max()) + 1).sum(0)               # (C, classes)
    return counts.amax(1).float() / top.shape[0]


def chance_purity(labels: torch.Tensor, k: int = 16, draws: int = 2000, seed: int = 0) -> float:
    """class_purity of k images drawn at random (the level a channel blind to classes reaches)."""
    g = torch.Generator().manual_seed(seed)
    top = torch.stack([torch.randperm(len(labels), generator=g)[:k] for _ in range(draws)], 1)  # (k, draws)
    return float(F.one_hot(labels[top], int(labels.max()) + 1).sum(0).amax(1).float().mean() / top.shape[0])


def patches_app(x, layers: dict, network: str = None, layer: int = 0, channel: int = 0, k: int = 16,
                labels=None, classes=None):
    """An ipywidgets app: network and layer (dropdowns), channel (slider) -> the top-k patches of x.
    `layers` = {network: layer_maxima(model, x)}, computed once: moving a control only crops images.
    Needs a kernel to react; the static page shows its initial state."""
    import ipywidgets as W
    names = list(layers)
    net = W.Dropdown(options=names, value=network or names[0], description="network")
    lay = W.Dropdown(options=[(lm.name, i) for i, lm in enumerate(layers[net.value])], value=layer,
                     description="layer")
    chan = W.IntSlider(value=channel, min=0, max=layers[net.value][layer].value.shape[1] - 1,
                       description="channel", continuous_update=False)
    info, sheet = W.HTML(), W.Image(format="png")

    def show(_=None):
        lm = layers[net.value][lay.value]
        chan.max = lm.value.shape[1] - 1                      # may clamp chan.value, which calls show again
        crops, idx, values = top_patches(x, lm, chan.value, k)
        text = f"<b>{net.value}, {lm.name}, channel {chan.value}</b>: responses {values[0]:.2f} to {values[-1]:.2f}"
        if labels is not None:
            common, count = Counter(classes[int(labels[i])] for i in idx).most_common(1)[0]
            text += f"; most common class {common} ({count} of {len(idx)})"
        info.value = text
        sheet.value = png_sheet(crops, cols=8)

    for w in (net, lay, chan):
        w.observe(show, names="value")
    show()
    return W.VBox([W.HBox([net, lay, chan]), info, sheet])


def patches_slider(x, layers: dict, labels, per_network: int = 2, k: int = 8, tile: int = 40, top: int = 16):
    """The static page's version of `patches_app`: a plotly slider over the conv layers; at each
    layer, for every network, the top-k patches of its `per_network` channels of highest class
    purity (of their `top` images), one row per channel, named on the left."""
    names = list(layers)
    n_layers = len(layers[names[0]])
    sheets, ticks = [], []
    for li in range(n_layers):
        crops, text = [], []
        for name in names:
            purity = class_purity(layers[name][li], labels, top)
            for c in purity.argsort(descending=True)[:per_network].tolist():
                crops.append(top_patches(x, layers[name][li], c, k)[0])
                text.append(f"{name}, ch. {c} ({purity[c]:.0%})")
        sheets.append(png_sheet(torch.cat(crops), cols=k, tile=tile, gap=4))
        ticks.append(text)
    rows = len(ticks[0])
    fig = go.Figure()
    for i, sheet in enumerate(sheets):
        fig.add_trace(go.Image(source=data_uri(sheet), visible=i == n_layers - 1, hoverinfo="skip"))
    title = lambda li: (f"{layers[names[0]][li].name}: top {k} patches of each network's "  # noqa: E731
                        f"{per_network} purest channels")
    steps = [dict(method="update", label=layers[names[0]][li].name,
                  args=[{"visible": [j == li for j in range(n_layers)]},
                        {"title.text": title(li), "yaxis.ticktext": ticks[li]}]) for li in range(n_layers)]
    fig.update_xaxes(visible=False)
    fig.update_yaxes(tickvals=[r * (tile + 4) + tile / 2 for r in range(rows)], ticktext=ticks[-1],
                     showgrid=False, zeroline=False, ticks="")
    fig.update_layout(title=dict(text=title(n_layers - 1), font_size=14, x=0.01),
                      sliders=[dict(active=n_layers - 1, steps=steps, currentvalue=dict(prefix="layer "),
                                    pad=dict(t=20))],
                      height=190 + (tile + 4) * rows * 1.25, margin=dict(l=5, r=5, t=60, b=10))
    return fig
