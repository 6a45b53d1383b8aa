"""Datasets that return (image, label, index), and the transforms NAT trains with. The index lets the
trainer look up each sample's target; labels are only used by evaluation and baselines. Data comes from
$NATTOOLS_DATA (default ~/.cache/nattools: `cifar10-jpg/train/<class>/*.jpg` or torchvision's
`cifar-10-batches-py`), else torchvision's download, else (offline) scikit-learn's bundled digits."""
import os
import socket
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms

from .config import DATASETS, ConfigError, UsageError

PROJECT_DATA = Path(__file__).resolve().parents[1] / "data"  # the project's checkpoints/ and results/
SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

SHARED_HINT = ("get it with: mkdir -p ~/.cache/nattools && tar -xzf "
               "../shared/data/cifar10-jpg-train50k.tar.gz -C ~/.cache/nattools "
               "(or set NATTOOLS_DATA to the folder that holds cifar10-jpg/), "
               "or pass --download on a machine with internet access")


TINY_HINT = ("get it with: tar -xzf ../shared/data/tinyimagenet-train.tar.gz -C ~/.cache/nattools, or pass "
             "--data_root FOLDER holding tiny-imagenet/train/ or train/ (the official layout's train/<wnid>/images/ "
             "works too)")


def data_root() -> Path:
    return Path(os.environ.get("NATTOOLS_DATA") or Path.home() / ".cache" / "nattools").expanduser()


class BadImage(UsageError, ValueError):
    """An image file that cannot be decoded."""


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB. Integer (I;16, I) and float (F) images are scaled, not clipped, from the smallest range
    that holds their values: [0, 1] (float only), 8-bit, 16-bit, else their maximum."""
    if img.mode.startswith("I") or img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        top = next(t for t in ((1.0,) if img.mode == "F" else ()) + (255.0, 65535.0, a.max()) if a.max() <= t)
        img = Image.fromarray(np.clip(a * (255 / max(top, 1e-12)), 0, 255).round().astype(np.uint8))
    return img.convert("RGB")


def load_image(path: str) -> Image.Image:
    """An image file as 8-bit RGB, or BadImage naming the file."""
    try:
        with open(path, "rb") as f:
            return to_rgb(Image.open(f))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise BadImage(f"cannot decode image file {path}: {e}. Delete or replace it.") from e


class ImageFiles(Dataset):
    """Image files and their labels (-1: unlabelled), as `image_folder` found them."""

    def __init__(self, samples: list, classes: list):
        self.samples, self.classes, self.targets = samples, classes, [y for _, y in samples]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return load_image(self.samples[i][0]), self.samples[i][1]


def _entries(folder: str, root: str, seen: set, deep: bool = False) -> tuple:
    """(image files, sub-folders) of a folder, by name: regular files only (never a pipe), nothing hidden
    (.thumbs/, ._x.jpg), no folder read twice, no link back into the data folder (a loop, or duplicates)."""
    files, subs = [], []
    for e in sorted(os.scandir(folder), key=lambda e: e.name):
        if e.name.startswith("."):
            continue
        real = os.path.realpath(e.path) if e.is_dir() else None
        if real and real not in seen and not (e.is_symlink() and (real + os.sep).startswith(root + os.sep)):
            subs.append(e.path)
            seen.add(real)
        elif not real and e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES:
            files.append(e.path)
    if deep:  # every image below: the folder's own, then each sub-folder's (ImageFolder's order)
        return files + [f for s in subs for f in _entries(s, root, seen, deep)[0]], []
    return files, subs


def image_folder(folder, classes: list = None):
    """The one reader of image folders: <class>/<image> trees (images at any depth of a class folder) or a
    flat folder of unlabelled images, never both. classes: number a val/ tree as its train/ (a class that
    train/ lacks is refused)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist; point --data_root at a folder of images, "
                                f"or of class sub-folders (ImageNet layout: train/<class>/*.JPEG)")
    root = os.path.realpath(folder)
    files, subs = _entries(folder, root, {root})
    names = [os.path.basename(s) for s in subs]
    unknown = sorted(set(names) - set(classes or names))
    if files and subs or unknown or classes and not subs:
        raise UsageError(f"data folder {folder} " + (f"has classes that train/ lacks: {', '.join(unknown[:5])}" if
                         unknown else "has no class folders, but train/ has" if classes else f"holds {len(files)} "
                         f"images beside sub-folders ({', '.join(names[:3])}): use a flat folder of images or "
                         f"<class>/<image> folders, not both"))
    if not files and not subs:
        raise FileNotFoundError(f"data folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) "
                                f"and no <class>/<image> sub-folders")
    if not subs:
        return ImageFiles([(f, -1) for f in files], [])
    index, samples, seen = {c: i for i, c in enumerate(classes or names)}, [], {root, *map(os.path.realpath, subs)}
    for s in subs:
        found = _entries(s, root, seen, deep=True)[0]
        if not found:
            raise FileNotFoundError(f"class folder {s} holds no images ({', '.join(IMAGE_SUFFIXES)}) at any "
                                    f"depth; add images or remove the folder")
        samples += [(f, index[os.path.basename(s)]) for f in found]
    return ImageFiles(samples, list(classes or names))


class Digits(Dataset):
    """scikit-learn's 1,797 8x8 digits as 32x32 RGB PIL images: always available offline."""

    def __init__(self, size: int = 32):
        from sklearn.datasets import load_digits
        d = load_digits()
        self.images = (d.images * (255.0 / 16.0)).astype(np.uint8)   # (1797, 8, 8)
        self.targets, self.classes, self.size = d.target.tolist(), [str(i) for i in range(10)], size

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


def load(name: str, split: str = "train", root=None, val_fraction: float = 0.1, download: bool = False):
    """The base dataset (PIL image, label) for a name and split. cifar10: the JPEG ImageFolder copy (val
    carved out of train with a fixed seed) if present, else torchvision's (val = the official test split).
    imagefolder: root/train and root/val (ImageNet), else root with a carved val split. digits: a carved
    val split. stl10: the unlabeled split for training, its labelled train split for 'val'."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {SPLITS}")
    base = Path(root).expanduser() if root else data_root()
    if name == "digits":
        return carve(Digits(), split, val_fraction)
    if name == "cifar10":
        if (base / "cifar10-jpg" / "train").is_dir():  # else torchvision's copy, with its official test split
            return carve(image_folder(base / "cifar10-jpg" / "train"), split, val_fraction)
        try:
            return datasets.CIFAR10(str(base), train=split == "train", download=download)
        except (RuntimeError, OSError) as e:  # "Dataset not found or corrupted", or offline (URLError)
            raise FileNotFoundError(f"CIFAR-10 not found under {base} ({e}): {SHARED_HINT}") from e
    if name == "stl10":
        try:
            return datasets.STL10(str(base), split="unlabeled" if split == "train" else "train", download=download)
        except RuntimeError as e:
            raise FileNotFoundError(f"STL-10 not found under {base}; pass --download on a connected machine") from e
    if name == "tinyimagenet":  # the shared archive's train/<wnid>/*.JPEG or the official train/<wnid>/images/
        folder = next((p for p in (base / "tiny-imagenet" / "train", base / "train") if p.is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f"Tiny ImageNet not found under {base} (tiny-imagenet/train/<wnid>/): "
                                    f"{TINY_HINT}")
        return carve(image_folder(folder), split, val_fraction)  # no official split here: carved, as CIFAR's JPEGs
    if not root:
        raise ConfigError("dataset 'imagefolder' needs --data_root, the folder that holds train/ (and val/)")
    if (base / "train").is_dir():
        if (base / "val").is_dir():  # val's classes are numbered as train's
            train = image_folder(base / "train")
            return train if split == "train" else image_folder(base / "val", train.classes)
        return carve(image_folder(base / "train"), split, val_fraction)
    return carve(image_folder(base), split, val_fraction)


def held_out(name: str, root=None, val_fraction: float = 0.1) -> str:
    """Which images load(name, 'val') gives, in words ('' if none: a carved split of 0)."""
    base = Path(root).expanduser() if root else data_root()
    if name == "cifar10" and not (base / "cifar10-jpg" / "train").is_dir():
        return "the official test split"
    if name == "stl10":
        return "STL-10's labelled train split"
    if name == "imagefolder" and root and (base / "train").is_dir() and (base / "val").is_dir():
        return f"the folder {base / 'val'}"
    return f"validation ({val_fraction:g} of train, seed 0)" if val_fraction > 0 else ""


def default_dataset(verbose: bool = True, download_timeout: float = 10.0) -> str:
    """The book's dataset: CIFAR-10 where it can be had (local copy, then download), else the digits.
    NATTOOLS_DATASET=digits (or cifar10) names it instead: no search, no download attempt, so CI's
    offline run is quick and the same on every machine."""
    forced = os.environ.get("NATTOOLS_DATASET", "").strip().lower()
    if forced:
        if forced not in ("cifar10", "digits"):
            raise UsageError(f"NATTOOLS_DATASET={forced!r}: choose cifar10 or digits, or unset it")
        if verbose:
            print(f"dataset: {forced} (set by NATTOOLS_DATASET)")
        return forced
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


def load_size(image_size: int) -> int:
    """Side of the stored training images: the crop size up to 64 px, 8/7 of it above (ImageNet's 256 for 224)."""
    return image_size if image_size <= 64 else image_size * 8 // 7


def eval_transform(size: int = 32):
    """Deterministic: resize the short side to load_size(size), centre crop, float in [0, 1]."""
    return transforms.Compose([transforms.Resize(load_size(size), antialias=True), transforms.CenterCrop(size),
                               transforms.ToTensor()])


def stored_transform(size: int = 32):
    """Training images as stored before augmentation: (3, L, L) uint8, L = load_size(size)."""
    return transforms.Compose([transforms.Resize(load_size(size), antialias=True),
                               transforms.CenterCrop(load_size(size)), transforms.PILToTensor()])


def augment(x: torch.Tensor, size: int, crop_min: float = 0.5, generator: torch.Generator = None,
            jitter: float = 0.0) -> torch.Tensor:
    """Random resized crop + horizontal flip (+ brightness and contrast jitter) for a whole batch at once:
    x (B,3,L,L) uint8 or float in [0,1] -> (B,3,size,size) float in [0,1]. As torchvision's
    RandomResizedCrop(scale=(crop_min, 1), ratio=(3/4, 4/3)) and RandomHorizontalFlip, but one affine
    resampling for the batch: on 2 CPU cores per-image transforms cost a fifth of a step, this about 1%.
    `generator` makes it reproducible. jitter > 0 scales each image's brightness and contrast by factors
    from [1 - jitter, 1 + jitter], as ColorJitter: both scale the Sobel gradients, so an image's own
    contrast stops being a cue that singles it out."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    b, dev = x.shape[0], x.device
    gdev = generator.device if generator is not None else dev  # draws happen where the generator lives
    u = torch.rand(b, 4, generator=generator, device=gdev).to(dev)
    area = crop_min + (1 - crop_min) * u[:, 0]
    log_ratio = (u[:, 1] * 2 - 1) * torch.log(torch.tensor(4 / 3, device=dev))
    w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1)   # crop width / image width
    h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1)
    cx, cy = (u[:, 2] * 2 - 1) * (1 - w), (u[:, 3] * 2 - 1) * (1 - h)  # crop centre, inside the image
    flip = torch.where(torch.rand(b, generator=generator, device=gdev).to(dev) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
    grid = torch.nn.functional.affine_grid(theta, (b, x.shape[1], size, size), align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if jitter > 0:  # drawn after the crops, so jitter=0 leaves every earlier draw as it was
        f = 1 + (torch.rand(b, 2, generator=generator, device=gdev).to(dev) * 2 - 1) * jitter  # (B,2)
        x = (x * f[:, 0].view(b, 1, 1, 1)).clamp_(0, 1)                                   # brightness
        grey = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
        mean = grey.mean(dim=(1, 2, 3), keepdim=True)                                     # (B,1,1,1)
        x = (mean + (x - mean) * f[:, 1].view(b, 1, 1, 1)).clamp_(0, 1)                    # contrast
    return x


def subset(ds, limit: int, seed: int = 0):
    """`limit` samples drawn with a fixed seed (kept in index order), not the first ones:
    image folders are sorted by class, so a prefix would hold a single class."""
    keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:limit]
    sub = Subset(ds, keep.sort().values.tolist())
    sub.classes = getattr(ds, "classes", [])
    if hasattr(ds, "targets"):
        sub.targets = [ds.targets[i] for i in sub.indices]
    return sub


def labelled_subset(ds, per_class: int, seed: int = 0):
    """per_class images of every class, drawn with a seed, in index order (0: every image); raises naming a
    class that holds fewer."""
    if not getattr(ds, "classes", None):
        raise UsageError("labelled images needed (<class>/<image> folders): this data set has no classes")
    if per_class == 0:
        return ds
    targets, g, keep = torch.as_tensor(ds.targets), torch.Generator().manual_seed(seed), []
    for c, name in enumerate(ds.classes):
        members = torch.nonzero(targets == c).flatten()
        if len(members) < per_class:
            raise UsageError(f"labels_per_class={per_class}: class {name!r} has only {len(members)} training images")
        keep.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    sub = Subset(ds, torch.cat(keep).sort().values.tolist())
    sub.classes, sub.targets = ds.classes, [ds.targets[i] for i in sub.indices]
    return sub


def sample(name: str, n: int, split: str = "train", seed: int = 0, size: int = 32, root=None,
           val_fraction: float = 0.1, limit: int = 0):
    """n images of a split drawn with a fixed seed (of the `limit` images a run trained on, with --limit),
    through the eval transform -> x (n,3,size,size) in [0,1], labels (n,), idx (n,) (positions in the set
    the trainer indexes: rows of its assignment table, for the training split), class names."""
    if n < 1:
        raise ValueError(f"sample needs n >= 1 images, got n={n}")
    base = load(name, split, root, val_fraction)
    if limit:
        base = subset(base, limit)
    idx = torch.randperm(len(base), generator=torch.Generator().manual_seed(seed))[: min(n, len(base))]
    tf = eval_transform(size)
    xs, ys = zip(*[(tf(base[i][0]), base[i][1]) for i in idx.tolist()])
    return torch.stack(xs), torch.tensor(ys), idx, list(base.classes)


def check_decodes(ds, workers: int = 0) -> None:
    """Decode every image of a (PIL image, label) dataset now; raises naming the first bad file."""
    loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=workers, collate_fn=len)
    for _ in loader:
        pass


def seed_of(*parts) -> int:
    """A seed that is a fixed function of (seed, epoch, step, rank, ...)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


class Indexed(Dataset):
    """Wraps an (image, label) dataset to return (transform(image), label, index)."""

    def __init__(self, base, transform):
        self.base, self.transform = base, transform

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        img, label = self.base[i]
        return self.transform(img), label, i


class InMemory(Dataset):
    """(x, label, index) decoded once into one tensor (25,000 CIFAR images: 77 MB): a batch is then a tensor index."""

    def __init__(self, dataset, workers: int = 0, desc: str = "decoding images", progress: bool = True):
        from tqdm.auto import tqdm
        xs, ys = [], []
        loader = torch.utils.data.DataLoader(dataset, batch_size=512, num_workers=workers)
        for x, y, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
            xs.append(x)
            ys.append(torch.as_tensor(y))
        self.images, self.labels = torch.cat(xs), torch.cat(ys)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i], i


def batches(ds, sampler, batch_size: int, workers: int = 0, device: str = "cpu"):
    """Full batches (x (B,3,L,L) uint8 on `device`, labels (B,), idx (B,)) in the sampler's order. An
    InMemory set is indexed as one tensor (wherever it lives): no per-sample calls and no workers, which
    would cost a GPU step several times over."""
    if isinstance(ds, InMemory):
        order = torch.tensor(list(sampler), dtype=torch.long)
        return ((ds.images[i.to(ds.images.device)].to(device, non_blocking=True), ds.labels[i], i)
                for i in order.split(batch_size) if len(i) == batch_size)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=True,
                                       num_workers=workers, pin_memory=str(device).startswith("cuda"))


def training_images(base, cfg, progress: bool = True):
    """A run's training set as its trainer holds it (so, the same fingerprint): cfg.limit images, as
    `training_set`."""
    base = subset(base, cfg.limit) if cfg.limit else base
    return training_set(base, cfg.image_size, cfg.workers, progress=progress)


def training_set(base, image_size: int, workers: int = 0, cache_bytes: float = 2e9, progress: bool = True):
    """(uint8 image, label, index) for training; held in memory when it fits in cache_bytes."""
    ds = Indexed(base, stored_transform(image_size))
    if len(ds) * 3 * load_size(image_size) ** 2 <= cache_bytes:
        return InMemory(ds, workers, progress=progress)
    return ds


class EpochSampler(torch.utils.data.Sampler):
    """A shuffle fixed by (seed, epoch), this rank's share (as DistributedSampler), from `start` (resuming)."""

    def __init__(self, n: int, seed: int, epoch: int, rank: int = 0, world: int = 1, start: int = 0, order=None):
        self.n, self.seed, self.epoch, self.rank, self.world, self.start = n, seed, epoch, rank, world, start
        self.per_rank, self.order = n // world, order  # order: the epoch's n ids, given (DeepCluster's sampling)

    def __len__(self):
        return self.per_rank - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(seed_of(self.seed, self.epoch))
        perm = (torch.randperm(self.n, generator=g) if self.order is None else self.order)[: self.per_rank * self.world]
        return iter(perm[self.rank:: self.world][self.start:].tolist())
