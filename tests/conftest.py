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
