import functools
import hashlib
import http.server
import pickle
import tarfile
import threading

import numpy as np
import pytest
import torch
from torchvision import datasets

from nattools import data as D


def test_digits_offline_with_fixed_split():
    train, val = D.load("digits", "train"), D.load("digits", "val")
    assert len(train) + len(val) == 1797 and len(val) == round(1797 * 0.1)
    assert not set(train.indices) & set(val.indices)
    assert D.load("digits", "val").indices == val.indices  # fixed seed, same split
    img, label = train[0]
    assert img.size == (32, 32) and 0 <= label < 10


def test_indexed_and_in_memory_return_the_index():
    base = D.load("digits", "val")
    ds = D.Indexed(base, D.stored_transform(32))
    x, y, i = ds[5]
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32) and i == 5
    mem = D.training_set(base, 32)
    assert isinstance(mem, D.InMemory) and len(mem) == len(base)
    x2, y2, i2 = mem[5]
    assert torch.equal(x2, x) and int(y2) == y and i2 == 5


def test_augment_shapes_range_and_reproducibility():
    x = torch.randint(0, 256, (8, 3, 40, 40), dtype=torch.uint8)
    a = D.augment(x, 32, 0.5, torch.Generator().manual_seed(0))
    b = D.augment(x, 32, 0.5, torch.Generator().manual_seed(0))
    c = D.augment(x, 32, 0.5, torch.Generator().manual_seed(1))
    assert a.shape == (8, 3, 32, 32) and a.dtype == torch.float32
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    # A left-to-right ramp stays monotone: rising if kept, falling if mirrored; about half are mirrored
    ramp = torch.linspace(0, 1, 32).expand(64, 3, 32, 32).contiguous()
    out = D.augment(ramp, 32, 0.5, torch.Generator().manual_seed(0))
    steps = out[:, 0, 16, 1:] - out[:, 0, 16, :-1]               # (64, 31)
    rising, falling = (steps >= -1e-6).all(1), (steps <= 1e-6).all(1)
    assert bool((rising ^ falling).all())
    assert 16 < int(falling.sum()) < 48
    # crops zoom in: the span of values seen is at most the full ramp, and at least sqrt(crop_min) of it
    span = out[:, 0, 16].amax(1) - out[:, 0, 16].amin(1)
    assert bool((span <= 1 + 1e-5).all()) and bool((span >= 0.5 ** 0.5 * 31 / 32 - 0.05).all())


def test_jitter_scales_brightness_and_contrast_after_the_same_crops():
    x = torch.randint(90, 150, (16, 3, 32, 32), dtype=torch.uint8)  # stays inside [0, 1] when jittered
    plain = D.augment(x, 32, 0.5, torch.Generator().manual_seed(0))
    jit = D.augment(x, 32, 0.5, torch.Generator().manual_seed(0), jitter=0.4)
    assert torch.equal(plain, D.augment(x, 32, 0.5, torch.Generator().manual_seed(0), jitter=0.0))
    assert 0 <= float(jit.min()) and float(jit.max()) <= 1
    # same crops and flips: per image, the jittered pixels are an affine map of the plain ones
    # (no clipping here), with a slope in [(1-j)^2, (1+j)^2]
    a, b = plain.flatten(1), jit.flatten(1)
    ac, bc = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    slope = (ac * bc).sum(1) / (ac * ac).sum(1)
    assert bool(((bc - slope[:, None] * ac).abs().amax(1) < 0.03).all())
    assert bool((slope > 0.6 ** 2 - 0.01).all()) and bool((slope < 1.4 ** 2 + 0.01).all())
    assert float(slope.std()) > 0.1                      # each image gets its own factors


def test_epoch_sampler_shards_and_resumes():
    s0 = list(D.EpochSampler(10, seed=0, epoch=3, rank=0, world=2))
    s1 = list(D.EpochSampler(10, seed=0, epoch=3, rank=1, world=2))
    assert len(s0) == len(s1) == 5 and sorted(s0 + s1) == list(range(10))
    assert list(D.EpochSampler(10, 0, 3, 0, 2, start=2)) == s0[2:]
    assert list(D.EpochSampler(10, 0, 4, 0, 2)) != s0


def test_cifar_jpeg_folder_via_env(tmp_path, monkeypatch, image_tree):
    image_tree(tmp_path / "cifar10-jpg" / "train", {c: 5 for c in ["airplane", "cat"]})
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path))
    train, val = D.load("cifar10", "train"), D.load("cifar10", "val")
    assert len(train) == 9 and len(val) == 1 and train.classes == ["airplane", "cat"]
    assert D.default_dataset(verbose=False) == "cifar10"


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="tar -xzf"):
        D.load("cifar10", "train")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load("imagefolder", "train", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load("mnist")


def test_default_dataset_falls_back_to_digits_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path))
    def offline(*a, **k):
        raise OSError("network unreachable")
    monkeypatch.setattr(datasets, "CIFAR10", offline)
    assert D.default_dataset() == "digits"
    assert "digits" in capsys.readouterr().out


def test_corrupt_image_is_named(tmp_path, image_tree):
    root = image_tree(tmp_path / "imgs", {"a": 2, "b": 2})
    bad = root / "b" / "0001.jpg"
    bad.write_bytes(b"not a jpeg at all")
    ds = D.load("imagefolder", "train", root=root, val_fraction=0.0)
    with pytest.raises(ValueError, match="0001.jpg"):
        [ds[i] for i in range(len(ds))]


def test_empty_class_folder_is_an_error(tmp_path, image_tree):
    root = image_tree(tmp_path / "imgs", {"a": 2})
    (root / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        D.load("imagefolder", "train", root=root)


def _fake_cifar_archive(folder):
    """A tiny archive with the layout of cifar-10-python.tar.gz (2 images per batch)."""
    rng = np.random.default_rng(0)
    src = folder / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 255, (2, 3072), dtype=np.uint8), "labels": [0, 1]}
        (src / name).write_bytes(pickle.dumps(batch))
    (src / "batches.meta").write_bytes(pickle.dumps({"label_names": ["airplane", "automobile"]}))
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    md5 = lambda p: hashlib.md5(p.read_bytes()).hexdigest()
    return archive, {n: md5(src / n) for n in names + ["batches.meta"]}, md5(archive)


@pytest.fixture
def local_http(tmp_path):
    """A file server on 127.0.0.1 for tmp_path, stopped after the test."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_torchvision_download_path_on_local_files(tmp_path, monkeypatch, local_http):
    """The real download code (fetch, checksum, extract, load) against a local server."""
    archive, md5s, tgz_md5 = _fake_cifar_archive(tmp_path)
    C = datasets.CIFAR10
    monkeypatch.setattr(C, "url", f"{local_http}/{archive.name}")
    monkeypatch.setattr(C, "tgz_md5", tgz_md5)
    monkeypatch.setattr(C, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(C, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setitem(C.meta, "md5", md5s["batches.meta"])
    root = tmp_path / "cache"
    monkeypatch.setenv("NATTOOLS_DATA", str(root))
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        D.load("cifar10", "train", download=False)
    train = D.load("cifar10", "train", download=True)
    test = D.load("cifar10", "val")  # torchvision's copy: val is the official test split
    assert len(train) == 10 and len(test) == 2
    assert (root / "cifar-10-batches-py").is_dir()


def test_subset_draws_from_every_class_of_a_sorted_folder(tmp_path, image_tree):
    ds = D.image_folder(image_tree(tmp_path / "tree", {"a": 10, "b": 10, "c": 10}))
    sub = D.subset(ds, 9)
    labels = [ds.targets[i] for i in sub.indices]
    assert len(sub) == 9 and len(set(sub.indices)) == 9 and sub.indices == sorted(sub.indices)
    assert set(labels) == {0, 1, 2}               # a prefix would be class "a" only
    assert D.subset(ds, 9).indices == sub.indices  # seeded


@pytest.mark.parametrize("nested", [False, True])
def test_tinyimagenet_reads_the_shared_and_the_official_layout(tmp_path, image_tree, nested, monkeypatch):
    """The shared archive's tiny-imagenet/train/<wnid>/*.JPEG, or the official train/<wnid>/images/*.JPEG:
    the same classes and images; a validation split carved with a fixed seed, disjoint from train."""
    from nattools import data as D
    root = tmp_path / "root"
    train = root / "tiny-imagenet" / "train" if not nested else root / "train"
    for wnid in ("n01443537", "n01629819"):  # image_tree(root, {c: n}) writes root/c/NNNN.jpg
        image_tree(train / wnid, classes={"images": 10}, size=64) if nested else \
            image_tree(train, classes={wnid: 10}, size=64)
    tr = D.load("tinyimagenet", "train", root, val_fraction=0.2)
    va = D.load("tinyimagenet", "val", root, val_fraction=0.2)
    assert tr.classes == va.classes == ["n01443537", "n01629819"]
    assert len(tr) == 16 and len(va) == 4 and not set(tr.indices) & set(va.indices)
    assert sorted(tr.targets + va.targets) == [0] * 10 + [1] * 10
    monkeypatch.setenv("NATTOOLS_DATA", str(root))
    assert len(D.load("tinyimagenet", "val", val_fraction=0.2)) == 4   # found through $NATTOOLS_DATA too
    with pytest.raises(FileNotFoundError, match="Tiny ImageNet not found.*tinyimagenet-train.tar.gz"):
        D.load("tinyimagenet", "train", tmp_path / "nowhere")
