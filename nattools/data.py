"""Datasets that return (image, label, index), and the transforms NAT trains with.

Where data comes from, in order: the folder in $NATTOOLS_DATA (default
~/.cache/nattools), holding `cifar10-jpg/train/<class>/*.jpg` or torchvision's
`cifar-10-batches-py`; torchvision's download (on a connected machine); and,
offline, scikit-learn's bundled digits. The index lets the trainer look up each
sample's target; labels are only ever used by evaluation and baselines.
"""
import os
import socket
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms

DATASETS = ("cifar10", "digits", "imagefolder", "stl10")
SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

SHARED_HINT = ("get it with: mkdir -p ~/.cache/nattools && tar -xzf "
               "../shared/data/cifar10-jpg-train25k.tar.gz -C ~/.cache/nattools "
               "(or set NATTOOLS_DATA to the folder that holds cifar10-jpg/), "
               "or pass --download on a machine with internet access")


def data_root() -> Path:
    """The project's data folder: $NATTOOLS_DATA, else ~/.cache/nattools."""
    return Path(os.environ.get("NATTOOLS_DATA") or Path.home() / ".cache" / "nattools").expanduser()


def load_image(path: str) -> Image.Image:
    """Open an image as RGB, naming the file if it cannot be decoded."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ValueError(f"cannot decode image file {path}: {e}. Delete or replace it.") from e


def image_folder(folder) -> datasets.ImageFolder:
    """An ImageFolder tree (<class>/<image>), with errors that say what is wrong."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist; point --data_root at a folder "
                                f"of class sub-folders (ImageNet layout: train/<class>/*.JPEG)")
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"data folder {folder} has no class sub-folders; expected <class>/<image> files")
    for c in classes:
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in c.iterdir()):
            raise FileNotFoundError(f"class folder {c} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                                    f"add images or remove the folder")
    return datasets.ImageFolder(str(folder), loader=load_image)


class Digits(Dataset):
    """scikit-learn's 1,797 8x8 digits as 32x32 RGB PIL images: always available offline."""

    def __init__(self, size: int = 32):
        from sklearn.datasets import load_digits
        d = load_digits()
        self.images = (d.images * (255.0 / 16.0)).astype(np.uint8)   # (1797, 8, 8)
        self.targets = d.target.tolist()
        self.classes = [str(i) for i in range(10)]
        self.size = size

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i]).resize((self.size, self.size), Image.BILINEAR).convert("RGB")
        return img, self.targets[i]


def carve(ds, split: str, val_fraction: float, seed: int = 0):
    """A fixed validation split carved out of a training set (same seed, same split)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(round(len(ds) * val_fraction))
    sub = Subset(ds, sorted(perm[:n_val]) if split == "val" else sorted(perm[n_val:]))
    sub.classes, sub.targets = ds.classes, [ds.targets[i] for i in sub.indices]
    return sub


def _cifar_torchvision(root: Path, train: bool, download: bool):
    try:
        return datasets.CIFAR10(str(root), train=train, download=download)
    except RuntimeError as e:  # "Dataset not found or corrupted"
        raise FileNotFoundError(f"CIFAR-10 not found under {root}: {SHARED_HINT}") from e


def load(name: str, split: str = "train", root=None, val_fraction: float = 0.1, download: bool = False):
    """The base dataset (PIL image, label) for a name and split.

    cifar10: the JPEG ImageFolder copy (val carved out of train with a fixed
    seed) if present, else torchvision's copy (val = the official test split).
    imagefolder: root/train and root/val if present (ImageNet), else root
    itself with a carved val split. digits: carved val split. stl10: the
    unlabeled split for training, its labelled train split for 'val'.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    base = Path(root).expanduser() if root else data_root()
    if name == "digits":
        return carve(Digits(), split, val_fraction)
    if name == "cifar10":
        jpg = base / "cifar10-jpg" / "train"
        if jpg.is_dir():
            return carve(image_folder(jpg), split, val_fraction)
        return _cifar_torchvision(base, split == "train", download)
    if name == "stl10":
        try:
            return datasets.STL10(str(base), split="unlabeled" if split == "train" else "train", download=download)
        except RuntimeError as e:
            raise FileNotFoundError(f"STL-10 not found under {base}; pass --download on a connected machine") from e
    if not root:
        raise ValueError("dataset 'imagefolder' needs --data_root, the folder that holds train/ (and val/)")
    if (base / "train").is_dir():
        if (base / "val").is_dir():
            return image_folder(base / split)
        return carve(image_folder(base / "train"), split, val_fraction)
    return carve(image_folder(base), split, val_fraction)


def default_dataset(verbose: bool = True, download_timeout: float = 10.0) -> str:
    """The book's dataset: CIFAR-10 where it can be had (local copy, then
    torchvision's download), else scikit-learn's digits. Says which it chose."""
    root = data_root()
    found = (root / "cifar10-jpg" / "train").is_dir() or (root / "cifar-10-batches-py").is_dir()
    how = f"found under {root}"
    if not found:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(download_timeout)
        try:
            datasets.CIFAR10(str(root), train=True, download=True)
            found, how = True, f"downloaded to {root}"
        except Exception:  # offline: fall back to the bundled digits
            pass
        finally:
            socket.setdefaulttimeout(old)
    name = "cifar10" if found else "digits"
    if verbose:
        print(f"dataset: CIFAR-10 ({how})" if found else
              f"dataset: scikit-learn digits (CIFAR-10 not available offline; {SHARED_HINT})")
    return name


def train_transform(size: int = 32, crop_min: float = 0.5):
    """Random crop (a fraction >= crop_min of the area, resized to size) and horizontal flip."""
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(crop_min, 1.0), antialias=True),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
    ])


def eval_transform(size: int = 32):
    """Deterministic: resize the short side (to 8/7 of size above 64 px, as ImageNet's 256->224) and centre crop."""
    return transforms.Compose([
        transforms.Resize(size if size <= 64 else size * 8 // 7, antialias=True),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
    ])


def seed_of(*parts) -> int:
    """A seed that is a fixed function of (seed, epoch, index or step, ...)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


class Indexed(Dataset):
    """Wraps a (image, label) dataset to return (x, label, index).

    Accepts either an index or an (index, epoch) pair; with the pair, the random
    augmentation is seeded by (seed, epoch, index), so a sample's crop does not
    depend on worker, rank or where a resumed run restarted.
    """

    def __init__(self, base, transform, seed: int = 0):
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        i, epoch = key if isinstance(key, tuple) else (key, None)
        img, label = self.base[i]
        if epoch is None:
            return self.transform(img), label, i
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_of(self.seed, epoch, i))
            return self.transform(img), label, i


class EpochSampler(torch.utils.data.Sampler):
    """Yields (index, epoch) pairs: a shuffle fixed by (seed, epoch), this rank's
    share of it (as DistributedSampler), starting at sample `start`."""

    def __init__(self, n: int, seed: int, epoch: int, rank: int = 0, world: int = 1, start: int = 0):
        self.n, self.seed, self.epoch, self.rank, self.world, self.start = n, seed, epoch, rank, world, start
        self.per_rank = n // world

    def __len__(self):
        return self.per_rank - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)[: self.per_rank * self.world]
        mine = perm[self.rank:: self.world][self.start:]
        return iter([(i, self.epoch) for i in mine.tolist()])
