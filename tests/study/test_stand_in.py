"""Chapter 9's runs on whatever data a reader has: a checkpoint's table is used only for the images it
indexes, a stand-in is trained otherwise, always on this machine's device (8 committed checkpoints were
trained on a GPU and say device='cuda'), and the chapters say which copy of the data they read."""
import torch
from scipy.optimize import linear_sum_assignment

import nattools
from nattools import data
from nattools.evaluate import embed
from nattools.study import coverage, plotting, training
from nattools.targets import TargetStore
from nattools.train import pick_device

GPU_MACHINE = dict(device="cuda", workers=3, out="/elsewhere/runs", data_root="/elsewhere/data", precision="bf16")


def rewrite(path, table=None, **config):
    """Change a checkpoint's stored config (and table) in place, as another machine would have written it."""
    state = torch.load(path, weights_only=True)
    state["config"].update(config)
    if table is not None:
        state["assignment"]["table"] = table
    torch.save(state, path)


def fitted_run(tiny_cfg):
    """A tiny digits run whose table holds, for each image, the target its network puts it nearest (as a
    long run's table does; a 1-epoch run's does not), written by 'a GPU machine'."""
    cfg = tiny_cfg(epochs=1, limit=128)
    nattools.train(cfg)
    model, _ = nattools.load_checkpoint(cfg.checkpoint_path)
    x, _, idx, _ = data.sample("digits", 128, "train", limit=128)                # every image of the run
    z = embed(model, x, batch_stats=True)                                         # (128, 16)
    _, cols = linear_sum_assignment((z @ TargetStore(128, 16, seed=cfg.seed).all().T).numpy(), maximize=True)
    table = torch.empty(128, dtype=torch.long)
    table[idx] = torch.as_tensor(cols)
    rewrite(cfg.checkpoint_path, table, **GPU_MACHINE)
    return cfg


def spy_on_training(monkeypatch):
    """Record the config each stand-in trains with (and train it for real)."""
    seen = []
    real = training.train

    def train(cfg, **kwargs):
        seen.append(cfg)
        return real(cfg, **kwargs)

    monkeypatch.setattr(training, "train", train)
    return seen


def test_the_images_of_a_run_keep_its_table_and_this_machine_s_settings(tiny_cfg, monkeypatch, capfd):
    cfg = fitted_run(tiny_cfg)
    seen = spy_on_training(monkeypatch)
    model, here, stored = coverage.load_run(cfg.checkpoint_path, "digits")
    assert not seen and stored["stand_in"] is None and "stand-in" not in capfd.readouterr().out
    assert torch.equal(stored["table"], coverage.run_table(cfg.checkpoint_path)["table"])
    assert coverage.table_gap(model, here, stored) > 5
    assert (here.device, here.workers, here.data_root, here.out, here.precision) == ("auto", 2, "", "", "auto")
    assert (here.name, here.d, here.limit, here.seed) == (cfg.name, 16, 128, cfg.seed)


def test_a_stand_in_trains_on_this_machine_when_the_checkpoint_says_cuda(tiny_cfg, monkeypatch, capfd):
    """The images here in another order than the run's (torchvision's files against the JPEGs it
    trained on): same data set, same number, but its table is not theirs."""
    cfg = fitted_run(tiny_cfg)
    table = coverage.run_table(cfg.checkpoint_path)["table"]
    rewrite(cfg.checkpoint_path, table[torch.randperm(128, generator=torch.Generator().manual_seed(1))])
    model, _ = nattools.load_checkpoint(cfg.checkpoint_path)
    _, saved = nattools.load_checkpoint(cfg.checkpoint_path)
    assert saved.device == "cuda" and coverage.table_gap(model, saved, coverage.run_table(cfg.checkpoint_path)) < 5
    seen = spy_on_training(monkeypatch)
    capfd.readouterr()
    model, stand, stored = coverage.load_run(cfg.checkpoint_path, "digits", epochs=1, limit=64, batch_size=32)
    out = capfd.readouterr()
    assert len(seen) == 1 and seen[0].device == "auto" and seen[0].workers == 0 and seen[0].precision == "auto"
    assert pick_device(seen[0].device) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "another order" in out.out and "a stand-in's, not this run's" in out.out and out.err == ""
    assert max(len(line) for line in out.out.splitlines()) <= 100                 # fits a book page
    assert stored["stand_in"] and stored["n"] == 64 and stand.name == f"{cfg.name}_stand_in"
    assert (stand.device, stand.out, stand.data_root) == ("auto", "", "")


def test_a_checkpoint_of_a_data_set_not_here_gets_a_stand_in_on_this_machine(tiny_cfg, capfd):
    cfg = tiny_cfg(epochs=1, limit=128)
    nattools.train(cfg)
    rewrite(cfg.checkpoint_path, dataset="cifar10", **GPU_MACHINE)   # ConfigError 'cuda' before, on a CPU
    model, stand, stored = coverage.load_run(cfg.checkpoint_path, "digits", epochs=1, limit=64, batch_size=32)
    assert "was trained on cifar10" in capfd.readouterr().out and stand.dataset == "digits"
    assert stand.device == "auto" and stored["n"] == 64


def test_torchvision_cifar10_gets_a_stand_in_for_a_committed_gpu_run(tmp_path, monkeypatch, cifar_batches, capfd):
    """Door (c) in chapter 9: cifar10_nat_d3.pt was trained on a GPU on the 50,000 JPEGs."""
    cifar_batches(tmp_path, n_train=300, n_test=50)
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path))
    path = coverage.D.PROJECT_DATA / "checkpoints" / "cifar10_nat_d3.pt"
    assert nattools.load_checkpoint(path)[1].device == "cuda"
    r = coverage.measure(path, "cifar10", 40, epochs=1, limit=256)
    out = capfd.readouterr().out
    assert "50,000 images of cifar10, and the copy here gives 300" in out and r["stored"]["stand_in"]
    assert r["stored"]["n"] == 256 and r["cfg"].d == 3 and r["cfg"].device == "auto" and r["z"].shape == (40, 3)


def test_each_chapter_says_which_copy_of_the_data_it_reads(tmp_path, monkeypatch, capsys, image_tree, cifar_batches):
    monkeypatch.setenv("NATTOOLS_DATASET", "digits")
    assert plotting.pick_dataset() == "digits"
    assert capsys.readouterr().out.startswith("dataset: scikit-learn's digits (set by NATTOOLS_DATASET")
    monkeypatch.delenv("NATTOOLS_DATASET")
    image_tree(tmp_path / "jpg" / "cifar10-jpg" / "train", {"cat": 5, "dog": 4})
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path / "jpg"))
    assert plotting.pick_dataset() == "cifar10"
    out = capsys.readouterr().out
    assert "CIFAR-10 as JPEG files: 9 training images" in out and "carved out" in out and str(tmp_path) not in out
    cifar_batches(tmp_path / "tv", n_train=300, n_test=50)
    monkeypatch.setenv("NATTOOLS_DATA", str(tmp_path / "tv"))
    assert plotting.pick_dataset() == "cifar10"
    out = capsys.readouterr().out
    assert "torchvision's copy: 300 training images" in out and "official test split" in out
