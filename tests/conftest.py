import os

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_cfg(tmp_path):
    """A few-second training config on scikit-learn's digits."""
    import nattools
    def make(**kw):
        base = dict(dataset="digits", limit=256, batch_size=32, epochs=2, width=8, d=16, workers=0,
                    out=str(tmp_path / "out"), name="tiny", eval_knn=False, reassign_every=1)
        base.update(kw)
        return nattools.TrainConfig(**base)
    return make


@pytest.fixture
def image_tree(tmp_path):
    """make(root, classes={'a': 3, 'b': 2}) writes small JPEGs in <root>/<class>/NNNN.jpg."""
    from PIL import Image
    import numpy as np
    def make(root, classes=None, size=32):
        classes = classes or {"cat": 4, "dog": 4}
        rng = np.random.default_rng(0)
        for c, count in classes.items():
            (root / c).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i:04d}.jpg")
        return root
    return make


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def cifar_batches(monkeypatch):
    """make(root, n_train, n_test) writes torchvision's CIFAR-10 files (root/cifar-10-batches-py: five
    training batches, test_batch, batches.meta) of random 32x32 images, and points torchvision's
    integrity check (md5 lists of datasets.CIFAR10) at these files, which are not the original ones."""
    import hashlib
    import pickle
    from pathlib import Path

    import numpy as np
    from torchvision import datasets

    def make(root, n_train=300, n_test=100):
        folder = Path(root) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)

        def write(name, entry):
            (folder / name).write_bytes(pickle.dumps(entry))
            return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

        def batch(n):   # rows of 3,072 bytes: the red plane, then green, then blue, as the original files
            return {"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
                    "labels": [int(v) for v in rng.integers(0, 10, n)]}

        sizes = [len(p) for p in np.array_split(np.arange(n_train), 5)]
        train = [write(f"data_batch_{i + 1}", batch(n)) for i, n in enumerate(sizes)]
        test = [write("test_batch", batch(n_test))]
        meta = write("batches.meta", {"label_names": CIFAR10_CLASSES})
        monkeypatch.setattr(datasets.CIFAR10, "train_list", train)
        monkeypatch.setattr(datasets.CIFAR10, "test_list", test)
        monkeypatch.setattr(datasets.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                                       "md5": meta[1]})
        return folder
    return make
