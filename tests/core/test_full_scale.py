"""Issue 5's bad inputs give clear errors; the dry-run plan works without the dataset."""
import contextlib
import importlib
import json

import numpy as np
import pytest
from PIL import Image

from nattools.__main__ import main
from nattools.config import UsageError
from nattools.plan import dataset_size, plan
from nattools.train import PRESETS, TrainConfig, train

T = importlib.import_module("nattools.train")  # the module (nattools.train is also the function's name)


def write_images(folder, count, size=16, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:03d}{suffix}")


def folder_cfg(root, tmp_path, **kw):
    base = dict(name="tiny_folder", dataset="imagefolder", data_root=str(root), image_size=16, batch_size=2,
                epochs=1, width=4, d=8, workers=0, val_fraction=0.0, eval_knn=False, out=str(tmp_path / "out"))
    return TrainConfig(**{**base, **kw})


def test_folder_without_images_is_named(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images .* and no <class>/<image> sub-folders"):
        train(folder_cfg(root, tmp_path))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match=r"class folder .*notes holds no images"):
        train(folder_cfg(root, tmp_path))


def test_empty_class_folder_is_named(tmp_path):
    root = tmp_path / "data"
    write_images(root / "train" / "cat", 4, suffix=".jpg")
    (root / "train" / "dog").mkdir()
    with pytest.raises(FileNotFoundError, match=r"dog holds no images"):
        train(folder_cfg(root, tmp_path))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(folder_cfg(tmp_path / "nowhere", tmp_path))


def test_more_processes_than_samples(tmp_path, monkeypatch):
    """As torchrun with 4 processes would see it; the check comes before any collective."""
    root = tmp_path / "data"
    write_images(root / "a", 3)
    monkeypatch.setattr(T.distributed, "group", lambda device: contextlib.nullcontext((device, 0, 4)))
    with pytest.raises(ValueError, match=r"4 process\(es\) x batch_size 2 .* only n=3; lower --batch_size or use "
                                         r"fewer processes"):
        train(folder_cfg(root, tmp_path))
    with pytest.raises(ValueError, match="4 processes x batch_size 2 > n=3"):
        plan(folder_cfg(root, tmp_path), world=4)


def test_checkpoint_from_another_config(tmp_path):
    cfg = TrainConfig(dataset="digits", limit=64, batch_size=16, epochs=1, width=4, d=8, workers=0,
                      max_steps=1, eval_knn=False, name="other", out=str(tmp_path / "out"))
    train(cfg)
    assert cfg.checkpoint_path.is_file()
    other = TrainConfig(**{**cfg.__dict__, "d": 16, "max_steps": 0})
    with pytest.raises(UsageError, match=r"other settings \(d: 8 in the checkpoint, 16 now\).*another --name"):
        train(other)


def test_imagenet_plan_without_the_dataset(tmp_path):
    cfg = TrainConfig(**PRESETS["imagenet"], data_root=str(tmp_path / "imagenet"))
    n, source = dataset_size(cfg)
    assert n == 1_281_167 and "missing" in source
    root = tmp_path / "imagenet"
    write_images(root / "train" / "n01", 3)
    write_images(root / "train" / "n02", 2)
    write_images(root / "val" / "n01", 1)
    assert dataset_size(cfg) == (5, f"counted in {root / 'train'}")


def test_dry_run_plan_counts_steps_and_memory(capsys):
    assert main(["train", "--preset", "digits", "--limit", "1000", "--batch_size", "100", "--epochs", "6",
                 "--reassign_every", "3", "--width", "4", "--d", "8", "--dry-run"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["n"] == 1000 and p["steps_per_epoch_per_rank"] == 10 and p["total_steps"] == 60
    assert p["epochs_with_reassignment"] == 2  # epochs 0 and 3
    assert p["memory"]["targets_per_row_bytes"] == 0
    assert p["memory"]["assignment_table_mb"] == round(2 * 1000 * 8 / 2**20, 1)
    assert p["throughput"]["nat_images_per_s"] > 0 and p["estimate"]["hours_on_8"] > 0
    assert p["throughput"]["device"]  # says where it measured


def test_plan_counts_every_view():
    """views=2 feeds the network each image twice per step: twice the activations."""
    from nattools import TrainConfig
    one, two = (plan(TrainConfig(dataset="digits", limit=1000, batch_size=100, width=4, d=8, views=v), measure_steps=1)
                for v in (1, 2))
    a1, a2 = (p["memory"]["activations_per_gpu_mb_rough"] for p in (one, two))
    assert a1 > 0.5 and abs(a2 - 2 * a1) <= 0.1
    assert two["config"]["views"] == 2
