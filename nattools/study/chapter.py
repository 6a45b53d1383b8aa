"""What a chapter needs besides its figures: its sample of images (`Sample`), its heavy measurements
read from data/results/book when they were made from the same inputs (`stored`), and a checker of the
sentences its text makes (`claims`)."""
import dataclasses
import hashlib
import os

import torch

from .plotting import small_budget
from .runs import data_dir


class Sample:
    """nattools.data.sample's n images (same seed, same images), decoded only when asked for: the
    labels come from the data set's list, so a chapter that reads its measurements from a stored
    file opens only the images it shows. sample[i] -> (3,size,size) in [0,1]; images() -> all."""

    def __init__(self, name: str, n: int, split: str = "train", seed: int = 0, size: int = 32, root=None,
                 val_fraction: float = 0.1, limit: int = 0):
        from .. import data as D
        base = D.load(name, split, root, val_fraction)
        base = D.subset(base, limit) if limit else base
        self.idx = torch.randperm(len(base), generator=torch.Generator().manual_seed(seed))[: min(n, len(base))]
        self.labels = torch.as_tensor(base.targets)[self.idx]
        self.classes, self.shape = list(base.classes), (len(self.idx), 3, size, size)
        self.key = (name, split, len(base), size, self.idx, self.labels)   # what `stored` compares
        self._base, self._transform, self._decoded = base, D.eval_transform(size), {}

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, i: int) -> torch.Tensor:
        if i not in self._decoded:
            self._decoded[i] = self._transform(self._base[int(self.idx[i])][0])
        return self._decoded[i]

    def images(self, rows=None) -> torch.Tensor:
        return torch.stack([self[int(i)] for i in (range(len(self)) if rows is None else rows)])


def digest(*parts) -> str:
    """A digest of what a measurement depends on: tensors, modules (their weights and buffers),
    dataclasses, numbers, strings, and lists, tuples and dicts of them."""
    h = hashlib.sha256()

    def feed(p):
        if isinstance(p, torch.nn.Module):
            p = p.state_dict()
        if dataclasses.is_dataclass(p):
            p = dataclasses.asdict(p)
        if torch.is_tensor(p):
            h.update(repr((p.dtype, tuple(p.shape))).encode() + p.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(p, (dict, list, tuple)):
            items = sorted(p.items(), key=lambda kv: str(kv[0])) if isinstance(p, dict) else enumerate(p)
            for k, v in items:
                feed(str(k)), feed(v)
        else:
            h.update(repr(p).encode())
        h.update(b"|")

    feed(parts)
    return h.hexdigest()[:24]


def stored(name: str, key, compute):
    """A chapter's heavy measurement: read from data/results/book/NAME.pt when it was made from the
    same inputs (`key`, compared as a `digest`), else computed now by `compute()` (a dict of tensors,
    numbers, strings, lists). NATTOOLS_STORE=1 writes what was computed there, with the commit: that
    is how the committed files were made. -> (value, True if it was read from the file)."""
    from ..checkpoint import git_commit, save_atomic
    path, key = data_dir() / "results" / "book" / f"{name}.pt", digest(key)
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        if saved.get("key") == key:
            return saved["value"], True
    value = compute()
    if os.environ.get("NATTOOLS_STORE"):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic({"key": key, "value": value, "commit": git_commit()}, path)
    return value, False


def claims(dataset: str):
    """A chapter's checker of the sentences its text makes, `claim(holds, sentence)`, each called by
    a hidden cell. As the book is built (CIFAR-10 at the full budget) a false claim raises, so the
    build fails instead of printing a false sentence; on other data or budgets the page says that
    the sentence does not hold for this run."""
    book = dataset == "cifar10" and not small_budget()

    def claim(holds, sentence: str) -> None:
        if bool(holds):
            return
        if book:
            raise AssertionError(f"the text says: {sentence}")
        print(f"(on this run, not the book's: not so that {sentence})")
    return claim
