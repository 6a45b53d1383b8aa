"""A command line that users cannot hurt themselves with: outputs, locks, resume checks, early and
readable errors, flags, unlabelled folders, and the history of a resumed epoch (issue 14)."""
import dataclasses
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import nattools
from nattools import data as D
from nattools.__main__ import main
from nattools.checkpoint import CheckpointError, RunLock, RunLocked, save_atomic
from nattools.config import UsageError
from nattools.step import Diverged

T = importlib.import_module("nattools.train")
ROOT = Path(__file__).resolve().parents[2]


# Outputs ----------------------------------------------------------------------------------------

def test_runs_go_to_a_git_ignored_runs_folder_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = nattools.TrainConfig(dataset="digits", limit=256, batch_size=32, epochs=1, width=8, d=16, workers=0,
                               eval_knn=False)
    assert cfg.out == "runs" and cfg.name == "digits_nat"
    T.train(cfg, progress=False)
    assert (tmp_path / "runs" / "checkpoints" / "digits_nat.pt").is_file()
    assert (tmp_path / "runs" / "results" / "digits_nat.json").is_file()
    out = capsys.readouterr().out
    assert "runs/checkpoints/digits_nat.pt" in out and "runs/results/digits_nat.json" in out  # says where
    assert "runs/" in (ROOT / ".gitignore").read_text().split()


def test_a_new_run_never_replaces_another_runs_checkpoint(tiny_cfg):
    cfg = tiny_cfg(epochs=1)
    T.train(cfg)
    before = cfg.checkpoint_path.read_bytes()
    with pytest.raises(UsageError, match=r"exists \(another run of this name\).*--overwrite"):
        T.train(dataclasses.replace(cfg, resume=False))
    assert cfg.checkpoint_path.read_bytes() == before
    T.train(dataclasses.replace(cfg, resume=False, overwrite=True))       # only on purpose
    assert cfg.checkpoint_path.read_bytes() != before


def test_the_committed_checkpoint_is_not_the_default_output():
    cfg = nattools.TrainConfig()
    assert not cfg.checkpoint_path.resolve().is_relative_to(ROOT / "data")


def test_temporary_files_are_unique_to_the_process(tmp_path, monkeypatch):
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(Path(a).name), real(a, b)))
    save_atomic({"x": 1}, tmp_path / "a.pt")
    assert seen == [f".a.pt.{os.getpid()}.tmp"]


# One run per name ---------------------------------------------------------------------------------

def test_a_second_process_on_the_same_run_is_refused(tiny_cfg):
    cfg = tiny_cfg(epochs=1)
    with RunLock(cfg.checkpoint_path):
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            T.train(cfg)


def test_a_killed_run_leaves_no_stuck_lock(tiny_cfg):
    cfg = tiny_cfg(epochs=1)
    code = ("import sys, time; from nattools.checkpoint import RunLock; "
            f"lock = RunLock({str(cfg.checkpoint_path)!r}).__enter__(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(RunLocked):
        T.train(cfg)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert T.train(cfg)["epochs_done"] == 1


# Resume checks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("change", [dict(crop_min=0.5), dict(lr=0.1), dict(objective="square", d=10),
                                    dict(weight_decay=0.0), dict(reassign_every=2), dict(epochs=3),
                                    dict(seed=1), dict(views=2)])
def test_resume_names_every_changed_setting(tiny_cfg, change):
    cfg = tiny_cfg(epochs=2, max_steps=4)
    T.train(cfg)
    first = next(iter(change))
    with pytest.raises(UsageError, match=rf"cannot resume .*{first}: .* in the checkpoint, .* now"):
        T.train(dataclasses.replace(cfg, max_steps=0, **change))


def test_resume_on_other_images_is_refused(tiny_cfg, tmp_path, image_tree):
    a = image_tree(tmp_path / "a", {"x": 20, "y": 20})
    image_tree(tmp_path / "b", {"x": 20, "y": 20})                       # the same files...
    from PIL import Image
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "b" / "x" / "0000.jpg")  # ...but one
    cfg = tiny_cfg(dataset="imagefolder", data_root=str(a), limit=0, batch_size=8, epochs=2, max_steps=2)
    T.train(cfg)
    with pytest.raises(UsageError, match="the training images"):
        T.train(dataclasses.replace(cfg, data_root=str(tmp_path / "b"), max_steps=0))
    assert T.train(dataclasses.replace(cfg, max_steps=0))["epochs_done"] == 2   # the same images resume


def test_a_checkpoint_from_before_the_restructuring_loads_and_resumes(tmp_path):
    """tests/core/fixtures/checkpoint_v0.1.pt was written by nattools 0.1.0 (commit 8a9306f), stopped by
    max_steps in the middle of epoch 2; it loads, and the run resumes to its end."""
    fixture = Path(__file__).parent / "fixtures" / "checkpoint_v0.1.pt"
    state = torch.load(fixture, weights_only=True)
    assert state["versions"]["nattools"] == "0.1.0" and (state["epoch"], state["step"]) == (1, 4)
    model, cfg = nattools.load_checkpoint(fixture)
    assert model.embed(torch.rand(2, 3, 32, 32)).shape == (2, 16)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / f"{cfg.name}.pt").write_bytes(fixture.read_bytes())
    res = T.train(dataclasses.replace(cfg, out=str(tmp_path), max_steps=0))
    assert res["epochs_done"] == 2 and len(res["history"]) == 2


# Errors: early and readable ------------------------------------------------------------------------

def test_out_that_is_a_file_fails_before_any_work(tiny_cfg, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        T.train(tiny_cfg(out=str(tmp_path / "file")))
    with pytest.raises(UsageError, match="--out"):
        T.train(tiny_cfg(out=str(tmp_path / "file" / "below")))


def test_undecodable_validation_image_fails_before_training(tiny_cfg, tmp_path, image_tree):
    root = image_tree(tmp_path / "imgs", {"a": 20, "b": 20})
    val = D.load("imagefolder", "val", str(root), 0.1)
    bad = Path(val.dataset.samples[val.indices[0]][0])
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    cfg = tiny_cfg(dataset="imagefolder", data_root=str(root), limit=0, batch_size=8, eval_knn=True)
    with pytest.raises(UsageError, match=bad.name):
        T.train(cfg)
    assert not cfg.checkpoint_path.exists()


def test_a_diverging_run_says_lower_the_learning_rate(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(epochs=1)
    real = T.Run.build.__func__

    def poisoned(cls, *a, **k):
        run = real(cls, *a, **k)
        with torch.no_grad():
            run.model.head[-1].weight.fill_(float("nan"))
        return run
    monkeypatch.setattr(T.Run, "build", classmethod(poisoned))
    with pytest.raises(Diverged, match=r"diverged.*Lower --lr \(now 0.05\)"):
        T.train(cfg)


def test_eval_of_nan_weights_is_an_error(tiny_cfg):
    cfg = tiny_cfg(epochs=1)
    T.train(cfg)
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    state["model"]["head.3.weight"].fill_(float("nan"))
    torch.save(state, cfg.checkpoint_path)
    with pytest.raises(CheckpointError, match="non-finite weights.*diverged"):
        nattools.load_checkpoint(cfg.checkpoint_path)


@pytest.mark.parametrize("content,message", [(b"PK\x03\x04 truncated", "truncated or not a PyTorch checkpoint"),
                                             (None, "not a nattools checkpoint")])
def test_unreadable_checkpoints_name_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "broken.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err


def test_command_line_errors_are_one_line_without_traceback(capsys):
    assert main(["train", "--crop_min", "2", "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: crop_min=2.0: must be in (0, 1]" and "Traceback" not in err
    with pytest.raises(UsageError):
        main(["--debug", "train", "--crop_min", "2", "--dataset", "digits"])


def test_device_cuda_without_a_gpu_is_a_clear_error(tiny_cfg, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UsageError, match="sees no CUDA GPU"):
        T.train(tiny_cfg(device="cuda"))


def test_empty_name_and_negative_probe_epochs_on_the_command_line(capsys):
    assert main(["train", "--name", "", "--dataset", "digits"]) == 2
    assert "--name must not be empty" in capsys.readouterr().err
    assert main(["eval", "x.pt", "--probe_epochs", "-1"]) == 2
    assert "--probe_epochs -1: must be >= 0" in capsys.readouterr().err


# Flags, help, eval ----------------------------------------------------------------------------------

def test_boolean_options_are_flags_and_help_shows_choices():
    out = subprocess.run([sys.executable, "-m", "nattools", "train", "--help"], capture_output=True, text=True,
                         cwd=ROOT).stdout
    for flag in ("--download", "--no-resume", "--no-eval_knn", "--overwrite"):
        assert flag in out
    for choices in ("{small,alexnet}", "{sobel,grey,rgb}", "{nat,square,softmax,deepcluster,sela}", "{sphere,discrete}",
                    "{cosine,constant}", "{auto,cpu,cuda}"):
        assert choices in out
    assert "in (0, 1]" in out  # crop_min's range


def test_eval_takes_data_root_reads_the_split_from_the_checkpoint_and_prints_percent(tiny_cfg, tmp_path, capsys,
                                                                                  image_tree):
    root = image_tree(tmp_path / "imgs", {"a": 30, "b": 30})
    cfg = tiny_cfg(dataset="imagefolder", data_root=str(root), limit=0, batch_size=8, epochs=1, val_fraction=0.2)
    T.train(cfg)
    moved = tmp_path / "moved"
    root.rename(moved)                                     # the data moved: --data_root says where it is now
    assert main(["eval", str(cfg.checkpoint_path), "--probe_epochs", "1", "--data_root", str(moved),
                 "--out", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"knn20_embed: \d+\.\d\d %", out) and "validation (0.2 of train" in out
    assert json.loads((tmp_path / "e.json").read_text())["n_val"] == 12


def test_eval_never_scores_a_run_on_images_it_trained_on(tiny_cfg, capsys):
    cfg = tiny_cfg(epochs=1, val_fraction=0.0)
    T.train(cfg)
    assert main(["eval", str(cfg.checkpoint_path)]) == 2
    assert "no held-out" in capsys.readouterr().err
    assert main(["eval", str(cfg.checkpoint_path), "--val_fraction", "0.1"]) == 2
    assert "--val_fraction is for the baselines" in capsys.readouterr().err
    assert main(["eval", str(cfg.checkpoint_path), "--baseline", "--val_fraction", "0.1", "--probe_epochs", "0"]) == 0


def test_a_flat_folder_of_unlabelled_images_trains_and_eval_says_it_needs_labels(tiny_cfg, tmp_path, image_tree,
                                                                                 capsys):
    tree = image_tree(tmp_path / "tree", {"any": 40})
    flat = tmp_path / "photos"
    (tree / "any").rename(flat)
    cfg = tiny_cfg(dataset="imagefolder", data_root=str(flat), limit=0, batch_size=8, epochs=1)
    assert T.train(cfg)["n"] == 36                       # 40 images, 4 held out
    assert main(["eval", str(cfg.checkpoint_path)]) == 2
    assert "needs labelled images" in capsys.readouterr().err


# History after a resume ----------------------------------------------------------------------------

class Killed(Exception):
    pass


def test_a_mid_epoch_resume_ends_with_the_same_history(tiny_cfg, tmp_path):
    ref = T.train(tiny_cfg(out=str(tmp_path / "ref"), ckpt_every=3))
    cut = tiny_cfg(out=str(tmp_path / "cut"), ckpt_every=3)

    def kill(step, loss):
        if step == 14:
            raise Killed
    with pytest.raises(Killed):
        T.train(cut, on_step=kill)
    res = T.train(cut)
    keys = ("epoch", "loss", "changed", "uniformity", "lr", "reassigned")
    assert [{k: h[k] for k in keys} for h in res["history"]] == [{k: h[k] for k in keys} for h in ref["history"]]


# The README ----------------------------------------------------------------------------------------

def test_the_readme_library_example_runs_as_written(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## The library\n.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})


def test_the_core_needs_none_of_the_books_packages():
    """plotly and ipywidgets serve the book's wing only: the core imports and runs without them."""
    code = ("import sys; sys.modules.update(plotly=None, ipywidgets=None, IPython=None)\n"
            "import pkgutil, importlib, nattools\n"
            "for m in pkgutil.iter_modules(nattools.__path__):\n"
            "    if not m.ispkg and m.name != '__main__': importlib.import_module('nattools.' + m.name)\n"
            "from nattools.__main__ import parser; parser()\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
