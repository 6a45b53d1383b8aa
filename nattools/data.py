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
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms

from .config import DATASETS, UsageError

PROJECT_DATA = Path(__file__).resolve().parents[1] / "data"  # the project's checkpoints/ and results/
SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

SHARED_HINT = ("get it with: mkdir -p ~/.cache/nattools && tar -xzf "
               "../shared/data/cifar10-jpg-train50k.tar.gz -C ~/.cache/nattools "
               "(or set NATTOOLS_DATA to the folder that holds cifar10-jpg/), "
               "or pass --download on a machine with internet access")


def data_root() -> Path:
    return Path(os.environ.get("NATTOOLS_DATA") or Path.home() / ".cache" / "nattools").expanduser()


class BadImage(UsageError, ValueError):
    """An image file that cannot be decoded."""


def load_image(path: str) -> Image.Image:
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise BadImage(f"cannot decode image file {path}: {e}. Delete or replace it.") from e


def _images_in(folder: Path) -> list:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class FlatFolder(Dataset):
    """A folder of unlabelled images (your own photos): NAT needs no labels. Label -1, no classes."""

    def __init__(self, folder: Path):
        self.samples = [(str(p), -1) for p in _images_in(folder)]
        self.targets, self.classes = [-1] * len(self.samples), []

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return load_image(self.samples[i][0]), -1


def image_folder(folder):
    """An ImageFolder tree (<class>/<image>) or a flat folder of unlabelled images; errors say what is wrong."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist; point --data_root at a folder of images, "
                                f"or of class sub-folders (ImageNet layout: train/<class>/*.JPEG)")
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        if _images_in(folder):
            return FlatFolder(folder)
        raise FileNotFoundError(f"data folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) "
                                f"and no <class>/<image> sub-folders")
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


def has_official_test(root=None) -> bool:
    """CIFAR-10 is torchvision's copy (val = the official test split), not the JPEG folder (val carved)."""
    base = Path(root).expanduser() if root else data_root()
    return not (base / "cifar10-jpg" / "train").is_dir()


def load(name: str, split: str = "train", root=None, val_fraction: float = 0.1, download: bool = False):
    """The base dataset (PIL image, label) for a name and split. cifar10: the JPEG ImageFolder copy (val
    carved out of train with a fixed seed) if present, else torchvision's (val = the official test split).
    imagefolder: root/train and root/val (ImageNet), else root with a carved val split. digits: a carved
    val split. stl10: the unlabeled split for training, its labelled train split for 'val'."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    base = Path(root).expanduser() if root else data_root()
    if name == "digits":
        return carve(Digits(), split, val_fraction)
    if name == "cifar10":
        if not has_official_test(base):
            return carve(image_folder(base / "cifar10-jpg" / "train"), split, val_fraction)
        try:
            return datasets.CIFAR10(str(base), train=split == "train", download=download)
        except RuntimeError as e:  # "Dataset not found or corrupted"
            raise FileNotFoundError(f"CIFAR-10 not found under {base}: {SHARED_HINT}") from e
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


def sample(name: str, n: int, split: str = "train", seed: int = 0, size: int = 32, root=None,
           val_fraction: float = 0.1, limit: int = 0):
    """n images of a split drawn with a fixed seed (of the `limit` images a run trained on, with --limit),
    through the eval transform -> x (n,3,size,size) in [0,1], labels (n,), idx (n,) (positions in the set
    the trainer indexes: rows of its assignment table, for the training split), class names."""
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


class EncodedFiles(Dataset):
    """An image folder's files as (their bytes (1-D uint8), label, index): the workers only read files, and
    `decode_batch` decodes them on the training device at load_size(size), as stored_transform does."""

    def __init__(self, base, size: int):
        def files(ds):
            if isinstance(ds, Subset):
                inner = files(ds.dataset)
                return [inner[i] for i in ds.indices]
            if not hasattr(ds, "samples"):
                raise UsageError(f"decoding on the device needs an image folder of JPEGs; {type(ds).__name__} "
                                 f"has no files: use --decode workers")
            return [(str(p), y) for p, y in ds.samples]
        self.files, self.size = files(base), size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return torch.from_numpy(np.fromfile(self.files[i][0], dtype=np.uint8)), self.files[i][1], i


def collate_encoded(batch) -> tuple:
    """-> ((every file's bytes in one tensor, their lengths), labels, idx): one tensor per batch
    crosses from a worker (a tensor per file would take a file descriptor each)."""
    datas, labels, idx = zip(*batch)
    return (torch.cat(datas), torch.tensor([len(d) for d in datas])), torch.tensor(labels), torch.tensor(idx)


def _decode_one(data: torch.Tensor, device) -> torch.Tensor:
    """A file the batched decoder refused: alone on `device`, else PIL (a PNG named .jpg, CMYK)."""
    from torchvision.io import ImageReadMode, decode_jpeg
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        import io
        try:
            return transforms.PILToTensor()(Image.open(io.BytesIO(data.numpy().tobytes())).convert("RGB")).to(device)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise BadImage(f"cannot decode an image file of {len(data)} bytes: {e}") from e


def decode_batch(datas: list, size: int, device="cpu") -> torch.Tensor:
    """JPEG files' bytes -> (B, 3, L, L) uint8 on `device`, L = load_size(size), as stored_transform
    makes them from PIL images (short side to L, bilinear and antialiased; centre crop): decoded in
    one batched call (nvJPEG on a GPU, in hardware on A100/H100), resized in one call per size."""
    from torchvision.io import ImageReadMode, decode_jpeg
    L = load_size(size)
    try:
        imgs = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        imgs = [_decode_one(d, device) for d in datas]
    out, by_shape = torch.empty(len(imgs), 3, L, L, dtype=torch.uint8, device=device), {}
    for i, im in enumerate(imgs):
        by_shape.setdefault(tuple(im.shape[1:]), []).append(i)
    for (h, w), ids in by_shape.items():
        hw = (L, int(L * w / h)) if h <= w else (int(L * h / w), L)                 # Resize(L)
        x = torch.nn.functional.interpolate(torch.stack([imgs[i] for i in ids]).float(), hw, mode="bilinear",
                                            antialias=True, align_corners=False)
        top, left = int(round((hw[0] - L) / 2.0)), int(round((hw[1] - L) / 2.0))   # CenterCrop(L)
        out[torch.tensor(ids, device=device)] = x[:, :, top:top + L, left:left + L].round_().clamp_(0, 255).byte()
    return out


def decoded_batches(loader, size: int, device="cpu", ahead: int = 2):
    """(x (B,3,L,L) uint8 on device, labels, idx) from a loader of EncodedFiles batches, decoded
    `ahead` batches in advance by a thread, on its own CUDA stream on a GPU: decoding overlaps the
    training step, whose stream waits for each batch's event only."""
    import collections
    import contextlib
    from concurrent.futures import ThreadPoolExecutor
    stream = torch.cuda.Stream(device) if torch.device(device).type == "cuda" else None

    def work(batch):
        (flat, sizes), labels, idx = batch
        with torch.cuda.stream(stream) if stream else contextlib.nullcontext():
            x = decode_batch(list(flat.split(sizes.tolist())), size, device)
            return x, labels, idx, stream.record_event() if stream else None

    def ready(future):
        x, labels, idx, done = future.result()
        if stream:
            torch.cuda.current_stream(device).wait_event(done)
            x.record_stream(torch.cuda.current_stream(device))  # x's memory is in use on the step's stream
        return x, labels, idx

    with ThreadPoolExecutor(1) as pool:
        pending = collections.deque()
        for batch in loader:
            pending.append(pool.submit(work, batch))
            if len(pending) > ahead:
                yield ready(pending.popleft())
        while pending:
            yield ready(pending.popleft())


def batches(ds, sampler, batch_size: int, workers: int = 0, device: str = "cpu"):
    """Full batches (x (B,3,L,L) uint8 on `device`, labels (B,), idx (B,)) in the sampler's order. An
    InMemory set is indexed as one tensor (wherever it lives): no per-sample calls and no workers, which
    would cost a GPU step several times over. EncodedFiles: workers read files, `decode_batch` decodes."""
    if isinstance(ds, EncodedFiles):
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=True,
                                             num_workers=workers, collate_fn=collate_encoded)
        return decoded_batches(loader, ds.size, device)
    if isinstance(ds, InMemory):
        order = torch.tensor(list(sampler), dtype=torch.long)
        return ((ds.images[i.to(ds.images.device)].to(device, non_blocking=True), ds.labels[i], i)
                for i in order.split(batch_size) if len(i) == batch_size)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=True,
                                       num_workers=workers, pin_memory=str(device).startswith("cuda"))


def training_set(base, image_size: int, workers: int = 0, cache_bytes: float = 2e9, progress: bool = True):
    """(uint8 image, label, index) for training; held in memory when it fits in cache_bytes."""
    ds = Indexed(base, stored_transform(image_size))
    if len(ds) * 3 * load_size(image_size) ** 2 <= cache_bytes:
        return InMemory(ds, workers, progress=progress)
    return ds


class EpochSampler(torch.utils.data.Sampler):
    """A shuffle fixed by (seed, epoch), this rank's share (as DistributedSampler), from `start` (resuming)."""

    def __init__(self, n: int, seed: int, epoch: int, rank: int = 0, world: int = 1, start: int = 0):
        self.n, self.seed, self.epoch, self.rank, self.world, self.start = n, seed, epoch, rank, world, start
        self.per_rank = n // world

    def __len__(self):
        return self.per_rank - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(seed_of(self.seed, self.epoch))
        perm = torch.randperm(self.n, generator=g)[: self.per_rank * self.world]
        return iter(perm[self.rank:: self.world][self.start:].tolist())
