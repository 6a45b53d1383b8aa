"""Paired comparisons: two networks judged on the same validation images, image by image.

Two accuracies measured on the same n images are not independent: most images are classified
right (or wrong) by both, and only the images where the two disagree carry information about
which is better. McNemar's test uses exactly those: if a alone is right on `a_only` images and b
alone on `b_only`, then under "no difference" each disagreement is a fair coin, and the two-sided
p-value is that of a binomial test of a_only among a_only + b_only. The standard error of the
difference is the paired one, sqrt(a_only + b_only - (a_only - b_only)^2 / n) / n, much smaller
than two independent binomial errors when the networks agree on most images.

The per-image predictions come from the project's protocol, recomputed here from the
checkpoints (nattools.evaluate's kNN-20 on the embedding and linear probe on the 2x2-pooled
features, same seeds): `predictions` returns them, `compare` turns two of them into a row.
The eval files in data/results hold only accuracies; the predictions are cached on disk (next to
the data set, keyed by the checkpoint's bytes and the protocol), so the chapters that use them
pay for one extraction.
"""
import hashlib
import os
from pathlib import Path

import torch
from scipy.stats import binomtest

from .. import data as D
from ..evaluate import Pixels, embed_and_pool, frozen, knn_predict, linear_predict, random_init

CACHE_VERSION = "1"


# The test -----------------------------------------------------------------------------------------
def mcnemar(a_correct, b_correct) -> dict:
    """a_correct, b_correct: (n,) booleans, the same images in the same order ->
    {n, acc_a, acc_b, diff (acc_a - acc_b), se (paired), a_only, b_only, p (exact, two-sided)}."""
    a, b = torch.as_tensor(a_correct).bool(), torch.as_tensor(b_correct).bool()
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two (n,) vectors of the same images, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = len(a)
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    disagree = a_only + b_only
    p = binomtest(a_only, disagree, 0.5).pvalue if disagree else 1.0
    se = max(disagree - (a_only - b_only) ** 2 / n, 0.0) ** 0.5 / n
    return {"n": n, "acc_a": float(a.float().mean()), "acc_b": float(b.float().mean()),
            "diff": (a_only - b_only) / n, "se": se, "a_only": a_only, "b_only": b_only, "p": float(p)}


def p_text(p: float) -> str:
    """A p-value in words a table can hold: 'p < 0.001', 'p = 0.03'."""
    return "p < 0.001" if p < 1e-3 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


@torch.inference_mode()
def features(model, images: torch.Tensor, pool: int = 2, batch: int = 500) -> tuple:
    """(N,3,H,W) images -> (embeddings (N,d), features pooled to pool x pool (N, C*pool*pool)), by
    nattools.evaluate's loop (channels_last: the same numbers, faster on a CPU)."""
    model = model.eval().to(memory_format=torch.channels_last)
    read = lambda m, x: embed_and_pool(m, x.contiguous(memory_format=torch.channels_last), pool)  # noqa: E731
    return tuple(frozen(model, images, read, batch_size=batch)[0])


class Split:
    """The evaluation images of a run's split, decoded once: train (memory and probe training set)
    and val, each (images, labels); `n_train` / `n_val` > 0 keep a seeded subset (small budgets)."""

    def __init__(self, cfg, dataset: str = None, n_train: int = 0, n_val: int = 0):
        from ..evaluate import eval_splits
        import dataclasses
        cfg = dataclasses.replace(cfg, dataset=dataset or cfg.dataset)
        parts = []
        for ds, n in zip(eval_splits(cfg), (n_train, n_val)):
            if n and n < len(ds):
                ds = D.subset(ds, n, seed=0)
            mem = D.InMemory(ds, progress=False)
            parts.append((mem.images, mem.labels))
        (self.x_train, self.y_train), (self.x_val, self.y_val) = parts
        self.cfg, self.n_classes = cfg, int(self.y_train.max()) + 1
        self.key = f"{cfg.dataset}|{cfg.val_fraction}|{n_train}|{n_val}|{len(self.y_train)}|{len(self.y_val)}"

    def dataset(self):
        """The training images as a dataset of (x, label, index) (for re-estimating BatchNorm)."""
        return torch.utils.data.TensorDataset(self.x_train, self.y_train, torch.arange(len(self.y_train)))


def cache_dir() -> Path:
    """Where predictions are kept between chapters: $NATTOOLS_CACHE, else beside the data sets."""
    return Path(os.environ.get("NATTOOLS_CACHE") or D.data_root() / "book-cache")


def _digest(*parts) -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"|")
    return h.hexdigest()[:24]


def predictions(which, split: Split, knn_k: int = 20, probe_epochs: int = 30, pool: int = 2) -> dict:
    """Per-image predictions of the project's two judges on split's validation images.
    which: a checkpoint path (the trained network), ("random", path) (that network at random
    initialisation, BatchNorm re-estimated on the training images, as `eval --baseline`) or
    ("pixels", input) (the front end's pixels, every pixel probed).
    -> {"knn": (n_val,) labels, "linear": (n_val,) labels, "labels": (n_val,) true labels}."""
    from ..checkpoint import load_checkpoint
    kind, path = ("trained", which) if isinstance(which, (str, Path)) else which
    source = Path(path).read_bytes() if kind != "pixels" else path
    key = _digest(kind, source, split.key, knn_k, probe_epochs, pool)
    file = cache_dir() / f"predictions-{key}.pt"
    if file.is_file():
        return torch.load(file, weights_only=True)
    if kind == "pixels":
        model, pool = Pixels(path), split.x_train.shape[-1]
    else:
        model, cfg = load_checkpoint(path)
        if kind == "random":
            model = random_init(cfg, split.dataset())
    etr, ftr = features(model, split.x_train, pool)
    eva, fva = features(model, split.x_val, pool)
    out = {"knn": knn_predict(etr, split.y_train, eva, k=knn_k),
           "linear": linear_predict(ftr, split.y_train, fva, split.n_classes, epochs=probe_epochs),
           "labels": split.y_val.clone()}
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, file.with_suffix(".tmp"))
    os.replace(file.with_suffix(".tmp"), file)
    return out


def compare(a: dict, b: dict, judge: str) -> dict:
    """McNemar's test of two `predictions` for one judge ("knn" or "linear")."""
    if not torch.equal(a["labels"], b["labels"]):
        raise ValueError("the two predictions are not on the same images")
    return mcnemar(a[judge] == a["labels"], b[judge] == b["labels"])


def rows(preds: dict, pairs) -> list:
    """[(label a, label b), ...] over preds {label: predictions} -> one row per pair and judge:
    {"a", "b", "judge", **mcnemar}, for a table."""
    out = []
    for a, b in pairs:
        if a in preds and b in preds:
            for judge, name in (("knn", "kNN-20"), ("linear", "linear probe")):
                out.append({"a": a, "b": b, "judge": name, **compare(preds[a], preds[b], judge)})
    return out
