"""Judging features without training the network: frozen features, kNN, a linear probe, the
uniformity of the embeddings on the sphere, and the baselines they are held against (the same
network at random initialisation, and the front end's pixels)."""
import copy
import dataclasses
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import data as D
from .checkpoint import data_digest, data_mismatch, load_checkpoint, read_state
from .config import UsageError, on_this_machine
from .models import FrontEnd, build_model


@torch.no_grad()
def embed(model, x: torch.Tensor, batch: int = 256, batch_stats: bool = False) -> torch.Tensor:
    """(N,3,H,W) images -> (N,d) unit rows, in batches, in eval mode (the model's mode is restored).
    batch_stats=True: BatchNorm uses each batch's own statistics, as in training (on a copy of the model)."""
    if batch_stats:
        model = copy.deepcopy(model).eval()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
        return torch.cat([model.embed(c) for c in x.split(batch)])
    was_training = model.training
    model.eval()
    z = torch.cat([model.embed(c) for c in x.split(batch)])
    model.train(was_training)
    return z


def initial_model(cfg):
    """The weights a run of cfg started from: the trainer seeds torch with cfg.seed, then builds
    the model, and so does this, without touching the global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_model(cfg)


def random_init(cfg, data, batches: int = 20, device: str = "cpu"):
    """The random-init twin of a run, the baseline that tells what training added: its network at
    initialisation, with BatchNorm statistics re-estimated on `data` (a dataset of (x, label, index), or a
    (N,3,H,W) tensor of images); otherwise they are initialisation's meaningless 0 and 1."""
    if torch.is_tensor(data):
        data = torch.utils.data.TensorDataset(data, torch.zeros(len(data)), torch.arange(len(data)))
    return reestimate_bn(initial_model(cfg), data, batches=batches, batch_size=min(256, len(data)),
                         device=device, seed=cfg.seed)


@torch.no_grad()
def frozen(model, data, read, batch_size: int = 256, workers: int = 0, device: str = "cpu", progress: bool = False):
    """The one loop over frozen features, that every probe of the project reads through: read(model, x) ->
    [tensor (b, ...)] for each batch of data, a dataset of (x, label, index) or a tensor (N,3,H,W) of images
    -> ([tensor (N, ...)] one per output of read, labels (N,) or None for a tensor)."""
    model.eval().to(device)
    batches = ((x, None, None) for x in data.split(batch_size)) if torch.is_tensor(data) else \
        DataLoader(data, batch_size=batch_size, num_workers=workers)
    outs, labels = None, []
    for x, y, _ in tqdm(batches, desc="extracting features", disable=not progress, leave=False):
        got = [t.float().cpu() for t in read(model, x.to(device))]
        outs = outs or [[] for _ in got]
        for out, t in zip(outs, got):
            out.append(t)
        labels += [torch.as_tensor(y)] if y is not None else []
    return [torch.cat(out) for out in outs], torch.cat(labels) if labels else None


def embed_and_pool(model, x: torch.Tensor, pool: int = 2) -> tuple:
    """x (b,3,H,W) -> (model.embed(x) (b, d), the last conv map average-pooled to pool x pool (b, C*pool*pool))."""
    f = model.features(x)                                               # (b, C, h, w)
    return F.normalize(model.head(f), dim=1), F.adaptive_avg_pool2d(f, pool).flatten(1)


def extract(model, dataset, pool: int = 2, **loop):
    """Frozen features of a dataset of (x, label, index), in one pass -> embeddings (N, d) (model.embed),
    features (N, C*pool*pool) (the last conv map average-pooled to pool x pool), labels (N,).
    loop: frozen's batch_size, workers, device, progress."""
    (embs, feats), labels = frozen(model, dataset, lambda m, x: embed_and_pool(m, x, pool), **loop)
    return embs, feats, labels


@torch.no_grad()
def reestimate_bn(model, dataset, batches: int = 20, batch_size: int = 256, device: str = "cpu", seed: int = 0):
    """Recompute BatchNorm running statistics on training images (see random_init)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
    model.train().to(device)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=g, drop_last=True)
    for i, (x, _, _) in enumerate(loader):
        if i >= batches:
            break
        model.project(x.to(device))
    return model.eval()


def knn_predict(train_x, train_y, test_x, k: int = 20, chunk: int = 1024) -> torch.Tensor:
    """Cosine kNN: the majority label among the k nearest training samples -> (M,) labels."""
    train_x, test_x = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    n_classes, out = int(train_y.max()) + 1, []
    for s in range(0, len(test_x), chunk):
        nn_idx = (test_x[s:s + chunk] @ train_x.T).topk(k, dim=1).indices   # (c, k)
        out.append(F.one_hot(train_y[nn_idx], n_classes).sum(1).argmax(1))  # votes (c, classes) -> (c,)
    return torch.cat(out)


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20, chunk: int = 1024) -> float:
    return int((knn_predict(train_x, train_y, test_x, k, chunk) == test_y).sum()) / len(test_x)


def linear_predict(train_x, train_y, test_x, n_classes: int, epochs: int = 30, lr: float = 1e-3,
                   batch_size: int = 256, seed: int = 0, weight_decay: float = 0.0) -> torch.Tensor:
    """Standardised features, one nn.Linear trained with Adam -> (M,) predicted labels."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = nn.Linear(train_x.shape[1], n_classes)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        for b in torch.randperm(len(train_x), generator=g).split(batch_size):
            loss = F.cross_entropy(clf(train_x[b]), train_y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return clf(test_x).argmax(1)


def linear_probe(train_x, train_y, test_x, test_y, epochs: int = 30, lr: float = 1e-3,
                 batch_size: int = 256, seed: int = 0, weight_decay: float = 0.0) -> float:
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    pred = linear_predict(train_x, train_y, test_x, n_classes, epochs, lr, batch_size, seed, weight_decay)
    return float((pred == test_y).float().mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """Wang & Isola (2020): log E_{i != j} exp(-t ||z_i - z_j||^2). Lower = more uniform;
    for points uniform on S^{d-1} it tends to -t*2 = -4 as d grows."""
    sq = torch.pdist(z.float(), p=2).pow(2)
    return float(torch.logsumexp(-t * sq, dim=0) - torch.log(torch.tensor(float(sq.numel()))))


def eval_splits(cfg):
    """(train, val) datasets of a run's data with the deterministic eval transform."""
    tf = D.eval_transform(cfg.image_size)
    root = cfg.data_root or None
    return tuple(D.Indexed(D.load(cfg.dataset, split, root, cfg.val_fraction), tf) for split in ("train", "val"))


def evaluate_model(model, cfg, knn_k: int = 20, probe_epochs: int = 30, pool: int = 2,
                   device: str = "cpu", progress: bool = False) -> dict:
    """The project's protocol on the validation split: kNN-20 on model.embed, a linear probe on pooled features."""
    train, val = eval_splits(cfg)
    if len(val) == 0:
        raise UsageError("no validation split: train with --val_fraction > 0 or use a dataset with one")
    if not train.base.classes:
        raise UsageError("evaluation needs labelled images (<class>/<image> folders): kNN and the linear probe "
                         "score classes, and this data set is a flat folder of unlabelled images")
    out = {"n_train": len(train), "n_val": len(val)}
    kw = dict(device=device, workers=cfg.workers, progress=progress)
    xtr, ftr, ytr = extract(model, train, pool=pool, **kw)
    xva, fva, yva = extract(model, val, pool=pool, **kw)
    out[f"knn{knn_k}_embed"] = knn_accuracy(xtr, ytr, xva, yva, k=knn_k)
    out["uniformity_val"] = uniformity(xva[:4096])
    if probe_epochs:
        out[f"linear_features_{pool}x{pool}"] = linear_probe(ftr, ytr, fva, yva, epochs=probe_epochs)
    return out


class Pixels(nn.Module):
    """The no-network baseline: the fixed front end's output (Sobel gradients by default)
    is the feature map itself, and its flattened, normalised pixels are the embedding."""

    def __init__(self, input: str = "sobel"):
        super().__init__()
        self.front, self.head = FrontEnd(input), nn.Flatten()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.front(x)  # (B, 2, H, W) for Sobel


BASELINES = ("random", "pixels")


def evaluate_checkpoint(path, baseline=None, probe_epochs: int = 30, device: str = "cpu",
                        val_fraction: float = None, data_root: str = None) -> dict:
    """Figures of a checkpoint on its run's held-out split, or of a baseline on the same split: "random"
    (random_init); "pixels" = the front end's pixels themselves (the linear probe then sees every pixel, not
    a 2x2 pooling). data_root: where the data is here; val_fraction: another split, for the baselines. A run
    is never scored on images it trained on: the training images must be the ones its checkpoint recorded."""
    baseline = "random" if baseline is True else (baseline or None)
    if baseline not in (None,) + BASELINES:
        raise UsageError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    model, saved = load_checkpoint(path, device)  # its run settings (device, workers) are the machine it ran on's
    cfg = on_this_machine(saved, data_root=data_root if data_root is not None else saved.data_root,
                          workers=min(saved.workers, os.cpu_count() or 1))
    root = cfg.data_root or None
    own_split = val_fraction in (None, cfg.val_fraction) or D.held_out(cfg.dataset, root, 0)  # not carved: fixed
    if not own_split and baseline is None:
        raise UsageError(f"{path} trained with val_fraction {cfg.val_fraction}: another split would score "
                         f"it on images it trained on; --val_fraction is for the baselines")
    cfg = dataclasses.replace(cfg, val_fraction=cfg.val_fraction if own_split else val_fraction)
    split = D.held_out(cfg.dataset, root, cfg.val_fraction)
    if not split:
        raise UsageError("--val_fraction 0 leaves no held-out images to score on" if not own_split else
                         f"{path} trained on every image of {cfg.dataset} (val_fraction 0): there is no held-out "
                         f"split here to score it on. With torchvision's CIFAR-10 (--data_root FOLDER with "
                         f"cifar-10-batches-py) it is scored on the official test images")
    saved = read_state(path).get("data", {}) if own_split else {}  # then its training images must be the run's
    if saved:
        train_set = D.training_images(D.load(cfg.dataset, "train", root, cfg.val_fraction), cfg)
        mismatch = data_mismatch(saved, len(train_set), data_digest(train_set))
        if mismatch:
            raise UsageError(f"{path} cannot be scored on these images: {mismatch}; point --data_root at the "
                             f"images it trained on")
    pool = 2
    if baseline == "random":
        model = random_init(cfg, eval_splits(cfg)[0], device=device)
    elif baseline == "pixels":
        model, pool = Pixels(cfg.input), cfg.image_size
    figures = evaluate_model(model, cfg, probe_epochs=probe_epochs, pool=pool, device=device, progress=True)
    return {"checkpoint": str(path), "baseline": baseline or False, "val_fraction": cfg.val_fraction,
            "split": split, **figures}

