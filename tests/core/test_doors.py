"""The ways in: which data the library finds (NATTOOLS_DATASET, torchvision's CIFAR-10 files), the
run settings a checkpoint brings from the machine it ran on, and Binder's requirements."""
import os
import re
from pathlib import Path

import pytest
import torch
from torchvision import datasets

import nattools
from nattools import config, data as D, evaluate
from nattools.config import UsageError

ROOT = Path(__file__).resolve().parents[2]


def no_download(*args, **kwargs):
    raise AssertionError("default_dataset tried a download")


def test_nattools_dataset_names_the_data_set_with_no_search_and_no_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path))
    monkeypatch.setattr(datasets, "CIFAR10", no_download)
    monkeypatch.setenv("NATTOOLS_DATASET", "digits")
    assert D.default_dataset() == "digits" and "NATTOOLS_DATASET" in capsys.readouterr().out
    monkeypatch.setenv("NATTOOLS_DATASET", " CIFAR10 ")
    assert D.default_dataset(verbose=False) == "cifar10"
    monkeypatch.setenv("NATTOOLS_DATASET", "mnist")
    with pytest.raises(UsageError, match="NATTOOLS_DATASET='mnist': choose cifar10 or digits"):
        D.default_dataset()
    assert not list(tmp_path.iterdir())                          # nothing was written where data goes


def test_torchvision_cifar10_files_load_with_their_official_test_split(tmp_path, monkeypatch, cifar_batches):
    """Door (c): torchvision's cifar-10-batches-py (what --download gives on Binder, Colab, a laptop)."""
    cifar_batches(tmp_path, n_train=300, n_test=100)
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path))
    monkeypatch.delenv("NATTOOLS_DATASET", raising=False)
    assert D.default_dataset(verbose=False) == "cifar10" and D.held_out("cifar10") == "the official test split"
    train, val = D.load("cifar10", "train"), D.load("cifar10", "val", val_fraction=0.1)
    assert isinstance(train, datasets.CIFAR10) and (len(train), len(val)) == (300, 100)   # val: the test batch
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    x, y, idx, classes = D.sample("cifar10", 8, "val", seed=0)
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert int(y.max()) < 10 and len(set(idx.tolist())) == 8


def test_a_run_trains_and_is_scored_on_torchvision_cifar10_files(tmp_path, monkeypatch, cifar_batches, tiny_cfg):
    cifar_batches(tmp_path / "data", n_train=256, n_test=64)
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path / "data"))
    cfg = tiny_cfg(dataset="cifar10", limit=0, epochs=1, eval_knn=True)
    results = nattools.train(cfg)
    assert results["n"] == 256 and 0 <= results["knn20_val"] <= 1
    scored = evaluate.evaluate_checkpoint(cfg.checkpoint_path, probe_epochs=1)
    assert scored["split"] == "the official test split" and scored["n_val"] == 64


def test_a_checkpoint_brings_no_run_settings_from_the_machine_it_ran_on(tiny_cfg, monkeypatch):
    """A checkpoint made on a GPU machine says device='cuda', workers=8 and its own folders; here they
    are this machine's (on_this_machine), and `eval` scores it with at most as many workers as it has cores."""
    cfg = tiny_cfg(epochs=1, limit=128)
    nattools.train(cfg)
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    state["config"].update(device="cuda", workers=8, out="/elsewhere/runs", precision="bf16",
                           decode="device")  # a setting since removed: dropped on load
    torch.save(state, cfg.checkpoint_path)
    _, saved = nattools.load_checkpoint(cfg.checkpoint_path)
    here = config.on_this_machine(saved, limit=64)
    assert saved.device == "cuda" and here.device == "auto" and here.workers == config.DEFAULTS["workers"]
    assert (here.out, here.precision, here.data_root) == ("runs", "auto", "")
    assert (here.name, here.d, here.width, here.seed, here.limit) == (saved.name, 16, 8, saved.seed, 64)
    seen = {}
    real = evaluate.extract

    def spy(*args, **kwargs):
        seen["workers"] = kwargs["workers"]
        return real(*args, **{**kwargs, "workers": 0})

    monkeypatch.setattr(evaluate, "extract", spy)
    evaluate.evaluate_checkpoint(cfg.checkpoint_path, probe_epochs=1)
    assert seen["workers"] == min(8, os.cpu_count())


def pins(text: str) -> dict:
    return dict(re.findall(r"^(torch|torchvision)==(\S+)", text, re.M))


def test_binder_installs_the_cpu_wheels_of_the_pinned_torch():
    """repo2docker reads binder/ before the root's files: the CPU builds of exactly the root's pins, from
    PyTorch's CPU index, then the root's requirements (whose pins these +cpu builds satisfy)."""
    root = (ROOT / "requirements.txt").read_text()
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    assert pins(binder) == {name: f"{version}+cpu" for name, version in pins(root).items()}
    assert set(pins(root)) == {"torch", "torchvision"}
    assert re.search(r"^--extra-index-url https://download.pytorch.org/whl/cpu$", binder, re.M)
    assert re.search(r"^-r \.\./requirements\.txt$", binder, re.M) and re.search(r"^-e \.$", root, re.M)
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == (ROOT / "runtime.txt").read_text().strip() \
        == "python-3.11"
