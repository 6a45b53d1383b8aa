"""How evenly embeddings cover the unit sphere, and how the assignment uses the targets.

NAT's one-to-one assignment makes the outputs follow targets spread uniformly on
S^{d-1}. For unit vectors every measure of spread below is a function of the pairwise
cosines: Wang & Isola's uniformity is -2t + log E exp(2t cos), the effective dimension
is 1 / E cos^2. So the module gives the cosines, their exact law for uniform points, and
the statistics of the assignment: how close each embedding is to its own target, and
which targets a batch assignment picks when there are more targets than images (k > n).
"""
import dataclasses
import math
import tempfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from .. import data as D
from ..assign import Assignment
from ..checkpoint import load_checkpoint, read_state
from ..config import TrainConfig, on_this_machine
from ..evaluate import embed, random_init, uniformity
from ..targets import TargetStore
from .assignment import sweep
from .chapter import Sample, stored
from .neighbours import neighbour_agreement
from .plotting import CLASS_COLOURS, PALETTE, sphere_axes, sphere_surface
from .training import stand_in


# Runs and their data ------------------------------------------------------------------------------
def load_run(path, dataset: str, **stand_in_settings):
    """(model, cfg, its table: `run_table`) of a checkpoint, cfg with this machine's run settings
    (config.on_this_machine: the device is this machine's, never the checkpoint's 'cuda'). When the
    run's training images are not the ones at hand (`not_at_hand`: another data set, another number
    of images, or other files in another order), the checkpoint's table means nothing for the images
    we can load, so a stand-in is trained now on `dataset` with the same network and recipe and the
    `stand_in_settings` (e.g. epochs=3); its network and table are used, `stored["stand_in"]` says
    why (None for the run itself), and a line says so above the figures."""
    model, cfg = load_checkpoint(path)
    stored = run_table(path)
    why = not_at_hand(cfg, stored["n"], dataset)
    if why is None and table_gap(model, cfg, stored) < 5:
        why = f"was trained on other files of {dataset} than these, or in another order"
    if why is None:
        return model, on_this_machine(cfg, out=""), {**stored, "stand_in": None}
    with tempfile.TemporaryDirectory() as out:
        stand = stand_in(Path(path).name, why, cfg, dataset, out, val_fraction=0.0, **stand_in_settings)
        model, _ = load_checkpoint(stand.checkpoint_path)
        stored = {**run_table(stand.checkpoint_path), "stand_in": why}
    return model, dataclasses.replace(stand, out=""), stored


def not_at_hand(cfg: TrainConfig, n: int, dataset: str):
    """Why the n training images of a run of cfg cannot be loaded here, or None if they can: its
    data set is not `dataset` (the one at hand), or this copy of it holds another number of images."""
    if cfg.dataset != dataset:
        return f"was trained on {cfg.dataset}, which is not available here"
    here = len(D.load(dataset, "train", None, cfg.val_fraction))   # the copy at hand, not the run's data_root
    here = min(cfg.limit, here) if cfg.limit else here
    if here != n:
        return f"was trained on {n:,} images of {dataset}, and the copy here gives {here:,}"
    return None


def table_gap(model, cfg: TrainConfig, stored: dict, count: int = 256) -> float:
    """Whether the images here are the run's, in its table's order, as a z-score: on `count` of
    them, how much nearer each image's embedding sits to its own target than to another image's,
    in standard errors. A trained network's own images score far above 0; other files of the same
    size (torchvision's CIFAR-10 against the JPEGs it trained on, in another order) score about 0."""
    x, _, idx, _ = D.sample(cfg.dataset, count, "train", seed=0, size=cfg.image_size,
                            val_fraction=cfg.val_fraction, limit=cfg.limit)
    z, targets = embed(model, x, batch_stats=True), TargetStore(stored["k"], cfg.d, seed=cfg.seed)
    own, other = stored["table"][idx], stored["table"][idx.roll(1)]
    gap = (z * targets[own]).sum(1) - (z * targets[other]).sum(1)      # (count,) cos to own - to another's
    return float(gap.mean() / (gap.std() / len(gap) ** 0.5))


def run_table(path) -> dict:
    """What a checkpoint stores about its targets: the sample -> target table (n,),
    the number of targets k, and the per-epoch history (loss, share of changed targets)."""
    state = read_state(path)
    a = state.get("assignment")
    if a is None:
        raise ValueError(f"{path} holds no assignment table (a weights-only snapshot?)")
    return {"table": a["table"], "k": a["k"], "n": a["n"], "history": state.get("history", [])}


def training_views(x, cfg: TrainConfig, seed: int = 0) -> torch.Tensor:
    """One random crop + flip of each image, as the trainer draws them (crop_min of the run):
    what NAT's targets were fitted to, as opposed to the whole image."""
    return D.augment(x, cfg.image_size, cfg.crop_min, torch.Generator().manual_seed(seed))


def measure(path, dataset: str, n: int, seed: int = 0, **stand_in_settings) -> dict:
    """What chapter 9 measures of one run: its network, config and stored table (`load_run`: a
    stand-in's when its training images are not at hand), n of its own training images drawn with
    `seed` (a chapter.Sample `x`, its labels `y`, `idx` = rows of its table, `classes`), its k
    targets (the rows the trainer generated, seed = cfg.seed), the target each image holds (`own`), and three embeddings of the images: whole images
    (`z`), one random crop each (`views`, as it trained) and its random-init twin on whole images
    (`z_random`); with `crop_cos` (`random_crop_cos`), the cosine between the embeddings of two crops of
    each image (by the random-init twin), and `batch_uniformity`, the uniformity of whole images embedded
    with each batch's own BatchNorm statistics. They are read from data/results/book/09_NAME.pt when
    that was made from the same network and images (embeddings stored in float16, renormalised)."""
    model, cfg, stored_table = load_run(path, dataset, **stand_in_settings)
    x = Sample(cfg.dataset, n, "train", seed=seed, size=cfg.image_size, root=cfg.data_root or None,
               val_fraction=cfg.val_fraction, limit=cfg.limit)

    def embeddings():
        images = x.images()
        twin = random_init(cfg, images)
        crops = [training_views(images, cfg, seed=s) for s in (0, 1)]
        views, views_random = [embed(model, c) for c in crops], [embed(twin, c) for c in crops]
        return {"z": embed(model, images).half(), "views": views[0].half(), "z_random": embed(twin, images).half(),
                "crop_cos": (views[0] * views[1]).sum(1), "random_crop_cos": (views_random[0] * views_random[1]).sum(1),
                "batch_uniformity": uniformity(embed(model, images, batch_stats=True))}

    key = ("coverage.measure 1", x.key, model, cfg.crop_min, seed)
    found, _ = stored(f"09_{Path(path).stem}", key, embeddings)
    found.update({k: F.normalize(found[k].float(), dim=1) for k in ("z", "views", "z_random")})
    return dict(model=model, cfg=cfg, stored=stored_table, x=x, y=x.labels, idx=x.idx, classes=x.classes,
                targets=TargetStore(stored_table["k"], cfg.d, seed=cfg.seed), own=stored_table["table"][x.idx], **found)


# Cosines and spread -------------------------------------------------------------------------------
def pairwise_cosines(z: torch.Tensor) -> torch.Tensor:
    """(n,d) -> (n(n-1)/2,) cosines of all pairs i < j (rows are normalised first)."""
    z = F.normalize(z.float(), dim=1)
    i, j = torch.triu_indices(len(z), len(z), 1)
    return (z @ z.T)[i, j]


def cosine_density(cos: torch.Tensor, bins: int = 80):
    """Histogram of cosines on [-1, 1] as a density -> (bin centres, density), numpy."""
    counts = torch.histc(cos.float().clamp(-1, 1), bins=bins, min=-1, max=1).double()
    width = 2 / bins
    centres = -1 + width * (np.arange(bins) + 0.5)
    return centres, (counts / counts.sum() / width).numpy()


def sphere_cosine_density(d: int, s) -> np.ndarray:
    """Exact density of <u, v> for u, v independent and uniform on S^{d-1} (d >= 2):
    Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) (1 - s^2)^((d-3)/2) on (-1, 1). For d = 3
    it is flat, 1/2 (Archimedes' hat-box theorem); for large d, close to N(0, 1/d)."""
    s = np.asarray(s, dtype=float)
    log_c = math.lgamma(d / 2) - 0.5 * math.log(math.pi) - math.lgamma((d - 1) / 2)
    return np.exp(log_c + (d - 3) / 2 * np.log1p(-s * s))


def _angle_weights(d: int, theta: np.ndarray) -> np.ndarray:
    """Unnormalised density of the angle between two uniform points on S^{d-1}:
    sin^(d-2) theta, computed in logs so that it neither under- nor overflows for any d >= 2."""
    logw = (d - 2) * np.log(np.maximum(np.sin(theta), 1e-300))
    return np.exp(logw - logw.max())


def sphere_expectation(d: int, g, grid: int = 20001) -> float:
    """E g(<u, v>) for u, v uniform on S^{d-1}, by quadrature over the angle between them."""
    theta = np.linspace(0, math.pi, grid)
    w = _angle_weights(d, theta)
    return float((w * g(np.cos(theta))).sum() / w.sum())


def sphere_cosine_cdf(d: int, s, grid: int = 20001) -> np.ndarray:
    """P(<u, v> <= s) for u, v uniform on S^{d-1}, by quadrature over the angle (as
    sphere_expectation): the law a histogram of cosines is compared with, cumulated."""
    theta = np.linspace(math.pi, 0, grid)                           # cos(theta) increasing
    w = _angle_weights(d, theta)
    cdf = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2)])
    return np.interp(np.asarray(s, dtype=float), np.cos(theta), cdf / cdf[-1])


def sphere_uniformity(d: int, t: float = 2.0) -> float:
    """Wang & Isola's uniformity of infinitely many points uniform on S^{d-1}: the value
    nattools.evaluate.uniformity approaches for a large uniform sample. ||u-v||^2 = 2-2 cos."""
    return math.log(sphere_expectation(d, lambda s: np.exp(2 * t * (s - 1))))


def effective_dimension(z: torch.Tensor) -> float:
    """How many directions unit vectors use: 1 / ||E z z^T||_F^2 = 1 / E_{i,j} cos^2(z_i, z_j).
    d for points uniform on S^{d-1} (E z z^T = I/d), 1 when all lie on one line (even antipodal)."""
    z = F.normalize(z.double(), dim=1)
    m = z.T @ z / len(z)                                             # (d, d) second moment
    return float(1 / m.pow(2).sum())


def coverage_stats(z: torch.Tensor, t: float = 2.0) -> dict:
    """The numbers this module compares: mean and spread of the pairwise cosines,
    Wang & Isola's uniformity (nattools.evaluate.uniformity) and the effective dimension."""
    cos = pairwise_cosines(z)
    return {"mean_cos": float(cos.mean()), "std_cos": float(cos.std()),
            "uniformity": uniformity(F.normalize(z.float(), dim=1), t), "effective_dim": effective_dimension(z)}


def class_concentration(z: torch.Tensor, labels, n_classes: int = None) -> torch.Tensor:
    """||mean of z over class c|| per class: 0 when a class is spread evenly over the
    sphere, 1 when all its images sit on one point. -> (n_classes,), nan for empty classes."""
    labels = torch.as_tensor(labels)
    n_classes = n_classes or int(labels.max()) + 1
    sums = torch.zeros(n_classes, z.shape[1]).index_add_(0, labels, z.float())       # (C, d)
    return (sums / torch.bincount(labels, minlength=n_classes)[:, None]).norm(dim=1)  # 0 / 0: nan


def class_separation(z: torch.Tensor, labels, k: int = 10) -> tuple:
    """How much z groups classes: (mean cosine of same-class pairs minus that of other pairs, in
    units of the cosines' spread; the share of each image's k nearest neighbours in its class)."""
    labels = torch.as_tensor(labels)
    i, j = torch.triu_indices(len(labels), len(labels), 1)                # pairwise_cosines' order
    cos, same = pairwise_cosines(z), labels[i] == labels[j]
    return float((cos[same].mean() - cos[~same].mean()) / cos.std()), neighbour_agreement(z, labels, k=k)


# Targets: the assignment's view -------------------------------------------------------------------
@torch.no_grad()
def own_target_stats(z: torch.Tensor, own: torch.Tensor, targets, chunk: int = 8192) -> dict:
    """z (n,d) unit embeddings, own (n,) their target ids in `targets` (a TargetStore or a
    (k,d) tensor) -> per image: cos to its own target, cos to the nearest of all k targets,
    and the rank of its own target among all k by cosine (1 = it holds its nearest target)."""
    z = z.float()
    k = len(targets)
    cos_own = (z * targets[own]).sum(1)                                  # (n,)
    nearest = torch.full((len(z),), -2.0)
    above = torch.zeros(len(z), dtype=torch.long)
    for s in range(0, k, chunk):
        sim = z @ targets[torch.arange(s, min(s + chunk, k))].T            # (n, chunk)
        nearest = torch.maximum(nearest, sim.max(1).values)
        above += (sim > cos_own[:, None]).sum(1)
    return {"cos_own": cos_own, "cos_nearest": nearest, "rank": above + 1, "k": k}


def assign_fixed(z: torch.Tensor, targets, epochs: int = 10, batch_size: int = 256, seed: int = 0):
    """NAT's batch assignment alone, with the embeddings z (n,d) held fixed, over k >= n
    targets: each batch re-solves among the targets it holds plus as many free ones
    (`sweep`, nattools.assign.Assignment). -> (table (n,), mean cos to own target after each epoch,
    starting with the random initial table)."""
    n = len(z)
    table = Assignment(n, len(targets), seed=seed)
    g = torch.Generator().manual_seed(seed)

    def mean_cos():
        return float((z * targets[table.table]).sum(1).mean())

    history = [mean_cos()]
    for _ in range(epochs):
        sweep(table, z, targets, torch.randperm(n, generator=g), batch_size)
        history.append(mean_cos())
    return table.table.clone(), history


# Tables and figures -------------------------------------------------------------------------------
def table(rows: dict, columns):
    """rows {label: [cell, ...]} (cells already formatted), columns [title of the label column,
    title of each cell column] -> a Markdown table for the page (the book renders a real table)."""
    from .plotting import table as md
    return md(list(columns), [[label, *cells] for label, cells in rows.items()])


def spread(r: dict) -> tuple:
    """A run measured by `measure`: how evenly the targets its images hold, its embeddings of crops
    and of whole images, and its random-init twin cover the sphere, with the exact values for uniform
    points -> ({series: coverage_stats}, (d, {series: pairwise cosines}))."""
    d = r["cfg"].d
    rows = {"targets held": r["targets"][r["own"]], "NAT, crops": r["views"],
            "NAT, whole images": r["z"], "random init": r["z_random"]}
    stats = {label: coverage_stats(z) for label, z in rows.items()}
    stats["uniform (exact)"] = dict(mean_cos=0.0, std_cos=d ** -0.5, effective_dim=d, uniformity=sphere_uniformity(d))
    return stats, (d, {label: pairwise_cosines(z) for label, z in rows.items()})


def target_fit(r: dict) -> tuple:
    """A run measured by `measure`: how close its embeddings sit to the targets they hold, to the
    nearest of all k, and to their targets after one more pass of re-assignment (`assign_fixed`)
    -> ({row: value}, (d, {series: cosines to a target}))."""
    cfg, stored, held = r["cfg"], r["stored"], r["targets"][r["own"]]
    last = stored["history"][-1]
    solved = [h for h in stored["history"] if h.get("reassigned", h.get("changed", 0) > 0)] or [last]
    crop = own_target_stats(r["views"], r["own"], r["targets"])     # scans all k targets
    now, _ = assign_fixed(r["views"], held, epochs=1, batch_size=cfg.batch_size)
    resolved = (r["views"] * held[now]).sum(1)                  # cos to the target after one pass
    rows = {"targets k": stored["k"], "every target held once": sorted(stored["table"].tolist()) == list(range(stored["k"])),
            "training loss, last epoch": last["loss"], "  = mean cos to the target": 1 - last["loss"] / 2,
            "changed target, last re-solve": solved[-1]["changed"], "  at epoch": solved[-1]["epoch"],
            "cos to own target: new crop": float(crop["cos_own"].mean()),
            "cos to own target: whole image": float((r["z"] * held).sum(1).mean()),
            "  after one pass of re-assignment": float(resolved.mean()),
            "cos to the nearest of all k": float(crop["cos_nearest"].mean()),
            "median rank of own target": int(crop["rank"].median()),
            "cos between two crops of an image": float(r["crop_cos"].mean())}
    return rows, (cfg.d, {"own target, stored table (new crop)": crop["cos_own"],
                          "own target after re-assignment": resolved,
                          "nearest of all k targets": crop["cos_nearest"]})


def cosine_figure(panels: dict, bins: int = 80, height: int = 420, reference: str = "uniform on the sphere (exact)",
                  xtitle: str = "cosine between two vectors", cumulative: bool = False):
    """panels: {title: (d, {name: cosines})} -> one plot per panel of the density of each
    series (cumulative=True: the share of cosines <= x, which keeps a spread-out series
    readable next to a spike), each with the exact law of the cosine between independent
    uniform points on S^{d-1} (dotted), which is also that of an embedding and a random target."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.08)
    names = list(dict.fromkeys(n for _, series in panels.values() for n in series))  # one colour each
    shown = set()
    for col, (d, series) in enumerate(panels.values(), start=1):
        for name, cos in series.items():
            x, dens = cosine_density(cos, bins)
            if cumulative:                                           # at the right edge of each bin
                x, dens = x + 1 / bins, np.cumsum(dens) * (2 / bins)
            fig.add_trace(go.Scatter(x=x, y=dens, mode="lines", name=name, legendgroup=name,
                                     line=dict(shape="vh" if cumulative else "hvh",
                                               color=PALETTE[names.index(name) % len(PALETTE)]),
                                     showlegend=name not in shown), row=1, col=col)
            shown.add(name)
        s = np.linspace(-0.999, 0.999, 400)
        exact = sphere_cosine_cdf(d, s) if cumulative else sphere_cosine_density(d, s)
        fig.add_trace(go.Scatter(x=s, y=exact, mode="lines", name=reference, legendgroup="exact",
                                 showlegend=col == 1, line=dict(color="black", dash="dot")), row=1, col=col)
    fig.update_xaxes(title_text=xtitle, range=[-1, 1])
    fig.update_yaxes(title_text="share at or below x" if cumulative else "density", row=1, col=1)
    fig.update_layout(height=height, margin=dict(t=60), legend=dict(orientation="h", y=-0.25))
    return fig


def sphere_by_class(z, labels, classes, height: int = 600):
    """3-D embeddings (n,3) on the sphere, coloured by class, with a dropdown that shows one
    class at a time (the others in faint grey) and its concentration in the title."""
    z, labels = torch.as_tensor(z).float().numpy(), torch.as_tensor(labels)  # float32: compact HTML
    conc = class_concentration(torch.as_tensor(z), labels, len(classes))
    fig = go.Figure([sphere_surface()])
    fig.add_trace(go.Scatter3d(x=z[:, 0], y=z[:, 1], z=z[:, 2], mode="markers", name="other classes",
                               marker=dict(size=2, color="rgba(150,150,150,0.35)"), hoverinfo="skip",
                               visible=False))
    for k, cls in enumerate(classes):
        m = (labels == k).numpy()
        fig.add_trace(go.Scatter3d(x=z[m, 0], y=z[m, 1], z=z[m, 2], mode="markers", name=str(cls),
                                   marker=dict(size=2.5, color=CLASS_COLOURS[k % len(CLASS_COLOURS)]),
                                   hovertemplate=f"{cls}<extra></extra>"))
    everyone = f"all {len(z)} images: ||mean z|| = {np.linalg.norm(z.mean(0)):.2f}"
    buttons = [dict(label="all classes", method="update",
                    args=[{"visible": [True, False] + [True] * len(classes)}, {"title.text": everyone}])]
    for k, cls in enumerate(classes):
        vis = [True, True] + [j == k for j in range(len(classes))]
        buttons.append(dict(label=str(cls), method="update", args=[
            {"visible": vis},
            {"title.text": f"{cls}: {int((labels == k).sum())} images, ||mean z|| = {float(conc[k]):.2f}"}]))
    fig.update_layout(title=dict(text=everyone, font_size=13),
                      updatemenus=[dict(buttons=buttons, direction="down", x=0.0, xanchor="left", y=1.0,
                                        yanchor="top", showactive=True)])
    return sphere_axes(fig, height)


def held_targets_figure(z, tables: dict, active: int = 0, height: int = 600):
    """3-D: per number of targets k (dropdown; `active` is shown first), which of the k
    targets the assignment holds (dark) and which it leaves free (light), and the
    embeddings z (n,3) (in the legend, off at first). tables: {k: (table (n,), (k,3) targets)}."""
    z = torch.as_tensor(z).float().numpy()
    fig = go.Figure([sphere_surface()])
    fig.add_trace(go.Scatter3d(x=z[:, 0], y=z[:, 1], z=z[:, 2], mode="markers", name="embeddings",
                               marker=dict(size=2, color="#d62728"), hoverinfo="skip", visible="legendonly"))
    titles, buttons = [], []
    for s, (k, (table, c)) in enumerate(tables.items()):               # traces 2 + 2s (free), 3 + 2s (held)
        c, held = torch.as_tensor(c).float(), torch.zeros(len(c), dtype=torch.bool)
        held[table] = True
        for mask, name, style in ((~held, "free targets", dict(size=1.5, color="rgba(120,160,200,0.35)")),
                                  (held, "held targets", dict(size=2.5, color="#08306b"))):
            p = c[mask].numpy()
            fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name,
                                       legendgroup=name, showlegend=s == active, marker=style, hoverinfo="skip",
                                       visible=s == active))
        titles.append(f"k = {k:,} targets for n = {len(table):,} images: {k - len(table):,} free")
    for s, k in enumerate(tables):
        show = [i in (2 + 2 * s, 3 + 2 * s) for i in range(len(fig.data))]
        buttons.append(dict(label=f"k = {k:,}", method="update", args=[
            {"visible": [True, "legendonly"] + show[2:], "showlegend": [False, True] + show[2:]},
            {"title.text": titles[s]}]))
    fig.update_layout(title=dict(text=titles[active], font_size=13),
                      updatemenus=[dict(buttons=buttons, active=active, direction="down", x=0.0, xanchor="left",
                                        y=1.0, yanchor="top", showactive=True)])
    return sphere_axes(fig, height)
