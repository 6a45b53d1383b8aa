"""Issue 20, faults round 2: nothing a run owns is overwritten, nothing is scored on its own training
images, every file is read as it is; signals and a full disk stop cleanly; errors are one line, early."""
import dataclasses
import errno
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nattools
from nattools import checkpoint as C
from nattools import data as D
from nattools.__main__ import main
from nattools.assign import Assignment
from nattools.config import ConfigError, UsageError
from nattools.targets import TargetStore

T = importlib.import_module("nattools.train")
ROOT = Path(__file__).resolve().parents[2]


def one_line_error(capsys, *words):
    """The error is one line, the last on stderr (progress bars before it end with a carriage return)."""
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in err and err.endswith(line + "\n"), err
    for w in words:
        assert str(w) in line, (w, line)
    return line


def no_tmp_files(folder):
    return not [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """One finished 1-epoch run on 40 images of 2 classes (val: 8 carved), shared by the eval tests."""
    root = tmp_path_factory.mktemp("a")
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / "imgs" / c).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "imgs" / c / f"{i:02d}.png")
    cfg = nattools.TrainConfig(dataset="imagefolder", data_root=str(root / "imgs"), val_fraction=0.2, image_size=16,
                               batch_size=8, epochs=1, width=4, hidden=0, d=8, workers=0, eval_knn=False,
                               out=str(root / "out"), name="a", snapshot_every=1)
    T.train(cfg, progress=False)
    return cfg


# eval never overwrites what it does not own, and never scores a run on its own training images -------

def test_eval_out_never_replaces_a_checkpoint_a_runs_results_or_a_folder(run_a, tmp_path, capsys):
    ckpt, results = run_a.checkpoint_path, run_a.results_path
    before = ckpt.read_bytes(), results.read_bytes()
    (tmp_path / "file").write_text("")
    for out, words in ((ckpt, ("never replaced",)), (results, ("never replaced",)), (tmp_path, ("is a folder",)),
                       ("", ("--out ''",)), (tmp_path / "file" / "e.json", ("is a file, not a folder",))):
        assert main(["eval", str(ckpt), "--probe_epochs", "0", "--out", str(out)]) == 2
        one_line_error(capsys, *words)
    assert (ckpt.read_bytes(), results.read_bytes()) == before
    assert main(["eval", str(ckpt), "--probe_epochs", "0", "--out", str(tmp_path / "e.json")]) == 0
    assert main(["eval", str(ckpt), "--probe_epochs", "0", "--out", str(tmp_path / "e.json")]) == 0  # its own


def test_eval_refuses_another_folder_and_a_changed_one_whose_split_moved(run_a, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(run_a.data_root, other)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(other / "cat" / "00.png")          # one image differs
    assert main(["eval", str(run_a.checkpoint_path), "--probe_epochs", "0", "--data_root", str(other)]) == 2
    one_line_error(capsys, "cannot be scored on these images", "32 in the checkpoint, 32 now")
    snapshot = run_a.checkpoint_path.with_name("a_epoch1.pt")                          # a snapshot: the same
    assert main(["eval", str(snapshot), "--probe_epochs", "0", "--data_root", str(other)]) == 2
    one_line_error(capsys, "cannot be scored on these images")
    grown = tmp_path / "grown"
    shutil.copytree(run_a.data_root, grown)
    shutil.copy(grown / "cat" / "00.png", grown / "cat" / "20.png")                     # one image more
    assert main(["eval", str(run_a.checkpoint_path), "--probe_epochs", "0", "--data_root", str(grown)]) == 2
    one_line_error(capsys, "32 in the checkpoint, 33 now", "split then moves")


def test_val_folder_classes_are_numbered_as_trains_and_the_run_names_the_split(tiny_cfg, tmp_path, image_tree):
    root = tmp_path / "data"
    image_tree(root / "train", {"cat": 12, "dog": 12})
    image_tree(root / "val", {"dog": 4})
    val = D.load("imagefolder", "val", str(root))
    assert val.classes == ["cat", "dog"] and set(val.targets) == {1}                   # dog is train's dog
    cfg = tiny_cfg(dataset="imagefolder", data_root=str(root), limit=0, batch_size=8, epochs=1, eval_knn=True)
    assert T.train(cfg, progress=False)["knn20_split"] == f"the folder {root / 'val'}"
    figures = nattools.evaluate.evaluate_checkpoint(cfg.checkpoint_path, probe_epochs=0)
    assert figures["split"] == f"the folder {root / 'val'}"
    image_tree(root / "val", {"bird": 2})
    with pytest.raises(UsageError, match="has classes that train/ lacks: bird"):
        D.load("imagefolder", "val", str(root))


def test_eval_with_another_val_fraction_for_a_baseline_blames_the_option(run_a, capsys):
    assert main(["eval", str(run_a.checkpoint_path), "--baseline", "random", "--val_fraction", "0"]) == 2
    one_line_error(capsys, "--val_fraction 0 leaves no held-out images")


# image folders: one reader -----------------------------------------------------------------------------

def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    files = {"i16.png": Image.fromarray((ramp * 65535).astype(np.uint16)),            # I;16 (or I)
             "i32.tif": Image.fromarray((ramp * 65535).astype(np.int32)),             # I
             "f.tif": Image.fromarray(ramp.astype(np.float32)),                       # F in [0, 1]
             "f255.tif": Image.fromarray((ramp * 255).astype(np.float32)),            # F already 8-bit
             "grey.png": Image.fromarray((ramp * 255).astype(np.uint8))}              # L: as before
    for name, img in files.items():
        img.save(tmp_path / name)
        assert Image.open(tmp_path / name).mode in ("I;16", "I", "F", "L")
        rgb = np.asarray(D.load_image(str(tmp_path / name)), dtype=np.float64)
        assert rgb.shape == (64, 64, 3) and abs(rgb.mean() - 127.5) < 1.5 and rgb.min() == 0 and rgb.max() == 255, name


def test_the_reader_skips_symlink_loops_hidden_folders_and_pipes_and_reads_nested_class_folders(tmp_path, image_tree):
    root = image_tree(tmp_path / "tree", {"cat": 3, "dog": 3})
    os.symlink("..", root / "cat" / "loop")                        # a loop
    os.symlink(root / "dog", root / "cat" / "dogs")               # the same images twice
    image_tree(root / ".thumbs", {"x": 2})                        # hidden: not a class
    shutil.copy(root / "cat" / "0000.jpg", root / "cat" / ".hidden.jpg")
    os.mkfifo(root / "cat" / "pipe.jpg")                          # would block forever if opened
    image_tree(root / "bird" / "sub", {"deep": 2})               # images only below bird/sub/deep
    ds = D.image_folder(root)
    assert ds.classes == ["bird", "cat", "dog"] and len(ds) == 8
    assert sorted(ds.targets) == [0, 0, 1, 1, 1, 2, 2, 2]
    assert not any("pipe" in p or "/." in p for p, _ in ds.samples)


def test_a_flat_folder_with_a_sub_folder_is_refused_naming_both(tmp_path, image_tree):
    flat = image_tree(tmp_path / "photos", {"thumbnails": 2})
    for i in range(40):
        shutil.copy(flat / "thumbnails" / "0000.jpg", flat / f"{i:03d}.jpg")
    with pytest.raises(UsageError, match=r"holds 40 images beside sub-folders \(thumbnails\)"):
        D.image_folder(flat)


def test_a_decompression_bomb_is_named_and_so_is_a_bad_file_in_a_worker(tmp_path, image_tree, monkeypatch):
    root = image_tree(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / "b" / "0001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(D.BadImage) as e:
        D.check_decodes(D.image_folder(root), workers=2)
    assert "0001.jpg" in str(e.value) and "\n" not in str(e.value) and "Traceback" not in str(e.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)       # 32 x 32 > 2 x 100: a "bomb"
    with pytest.raises(D.BadImage, match=r"0000.jpg.*decompression bomb"):
        D.load_image(str(root / "a" / "0000.jpg"))


# runs never overwrite runs ---------------------------------------------------------------------------

def test_snapshots_never_replace_another_runs_checkpoint(tiny_cfg):
    other = tiny_cfg(name="tiny_epoch1", epochs=1)
    T.train(other, progress=False)
    before = other.checkpoint_path.read_bytes()
    with pytest.raises(UsageError, match="tiny_epoch1.pt is not a file this command writes"):
        T.train(tiny_cfg(snapshot_every=1), progress=False)
    assert other.checkpoint_path.read_bytes() == before
    with pytest.raises(C.CheckpointError, match="holds weights only"):        # and a snapshot never resumes
        other.checkpoint_path.unlink()
        T.train(tiny_cfg(name="mine", snapshot_every=1), progress=False)
        T.train(tiny_cfg(name="mine_epoch1", epochs=1), progress=False)


def test_a_deleted_run_folder_cannot_let_a_second_process_write_the_same_checkpoint(tiny_cfg):
    cfg = tiny_cfg(epochs=1)
    second = []

    def delete_and_start_another(step, loss):
        if step == 3:
            shutil.rmtree(cfg.out)
            second.append(C.RunLock(cfg.checkpoint_path).__enter__())          # as another process would
            cfg.checkpoint_path.write_bytes(b"the other run's checkpoint")
    try:
        with pytest.raises(C.RunLocked, match="was deleted during this run and another process"):
            T.train(cfg, on_step=delete_and_start_another, progress=False)
    finally:
        second[0].__exit__()
    assert cfg.checkpoint_path.read_bytes() == b"the other run's checkpoint"
    cfg2 = tiny_cfg(epochs=1, name="alone")                       # deleted, no one else: it goes on
    res = T.train(cfg2, on_step=lambda s, l: s == 3 and shutil.rmtree(cfg2.out), progress=False)
    assert res["epochs_done"] == 1 and cfg2.checkpoint_path.is_file()


def test_a_resumed_run_records_every_segment_and_a_finished_one_is_kept(tiny_cfg, capsys):
    cfg = tiny_cfg(max_steps=10)
    first = T.train(cfg, progress=False)
    done = T.train(dataclasses.replace(cfg, max_steps=0), progress=False)
    assert len(done["segments_s"]) == 2 and done["wall_time_s"] == pytest.approx(sum(done["segments_s"]))
    assert done["wall_time_s"] > first["wall_time_s"]
    before = cfg.results_path.read_bytes()
    assert T.train(dataclasses.replace(cfg, max_steps=0), progress=False) == done
    assert cfg.results_path.read_bytes() == before and "are kept as they are" in capsys.readouterr().out


# outputs ------------------------------------------------------------------------------------------------

def test_out_empty_is_refused_and_out_tilde_expands(tiny_cfg, tmp_path, monkeypatch, capsys):
    assert main(["train", "--preset", "digits", "--out", ""]) == 2
    one_line_error(capsys, "out='': must be a folder, not ''")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = tiny_cfg(epochs=1, out="~/x")
    T.train(cfg, progress=False)
    assert (tmp_path / "home" / "x" / "checkpoints" / "tiny.pt").is_file() and not Path("~").exists()


def test_results_never_hold_nan(tiny_cfg):
    cfg = tiny_cfg(epochs=1, val_fraction=0.0, eval_knn=True)
    res = T.train(cfg, progress=False)
    saved = json.loads(cfg.results_path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert res["knn20_val"] is None and saved["knn20_val"] is None


# library -----------------------------------------------------------------------------------------------

def test_the_library_refuses_what_it_cannot_mean():
    with pytest.raises(TypeError, match="integer n, d"):
        TargetStore(4, 2.7)
    a = Assignment(3, 3)
    for table in ([0, 0, 0], [0, 1, 5], [0, 1]):
        with pytest.raises(ValueError, match="not a one-to-one table"):
            a.load_state_dict({**a.state_dict(), "table": torch.tensor(table)})
    with pytest.raises(ValueError, match="n >= 1"):
        D.sample("digits", -1)
    model = nattools.build_model(nattools.TrainConfig(width=4, d=8))
    with pytest.raises(TypeError, match=r"float images in \[0, 1\].*uint8"):
        model.embed(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


# signals ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_real_signal_saves_at_a_step_boundary_and_says_resume(tmp_path, sig, code):
    args = [sys.executable, "-m", "nattools", "train", "--preset", "digits", "--limit", "512", "--batch_size", "32",
            "--epochs", "500", "--width", "4", "--d", "8", "--no-eval_knn", "--out", str(tmp_path), "--name", "s"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    for line in proc.stdout:
        if line.startswith("epoch 1:"):
            break
    os.killpg(proc.pid, sig)                                      # as Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code and "Traceback" not in err, err[-3000:]
    assert "resume with the same command" in err.strip().splitlines()[-1]
    assert no_tmp_files(tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "s.pt", weights_only=True)
    assert state["epoch"] >= 1 and f"epoch {state['epoch']}, step {state['step']}" in err


def test_a_signal_mid_epoch_saves_there_and_the_resumed_run_is_bit_identical(tiny_cfg, tmp_path):
    ref = T.train(tiny_cfg(out=str(tmp_path / "ref")), progress=False)
    cut = tiny_cfg(out=str(tmp_path / "cut"))
    with pytest.raises(C.Interrupted, match=r"SIGINT: .*cut/checkpoints/tiny.pt holds epoch 1, step 5; resume"):
        T.train(cut, on_step=lambda s, l: s == 13 and os.kill(os.getpid(), signal.SIGINT), progress=False)
    assert no_tmp_files(tmp_path)
    res = T.train(cut, progress=False)
    assert [h["loss"] for h in res["history"]] == [h["loss"] for h in ref["history"]]
    a, b = (torch.load(c.checkpoint_path, weights_only=True) for c in (tiny_cfg(out=str(tmp_path / "ref")), cut))
    assert torch.equal(a["assignment"]["table"], b["assignment"]["table"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_signal_during_a_save_lets_it_finish_and_a_second_one_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    C.save_atomic({"v": 1}, path)
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (os.kill(os.getpid(), signal.SIGTERM), real_fsync(fd)))
    with C.signals(), pytest.raises(C.Interrupted) as e:
        C.save_atomic({"v": 2}, path)                             # the write ends, then the signal stops it
    assert e.value.signum == signal.SIGTERM and torch.load(path)["v"] == 2 and no_tmp_files(tmp_path)

    def twice(fd):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(os, "fsync", twice)
    with C.signals(), pytest.raises(C.Interrupted):
        C.save_atomic({"v": 3}, path)
    assert torch.load(path)["v"] == 2 and no_tmp_files(tmp_path)


# a full disk -----------------------------------------------------------------------------------------

def test_a_full_disk_is_said_before_training_and_a_failed_write_leaves_no_temporary(tiny_cfg, monkeypatch, capsys):
    cfg = tiny_cfg(epochs=1)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(C.NoSpace, match=r"no space left on /\S* for \S*tiny.pt \(.* bytes needed, 1,000 free\)"):
        T.train(cfg, progress=False)
    assert not cfg.checkpoint_path.exists()
    monkeypatch.setattr(shutil, "disk_usage", real)
    T.train(cfg, progress=False)
    before = cfg.checkpoint_path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(C.NoSpace, match="no space left on"):
        C.save_atomic({"v": 1}, cfg.checkpoint_path)
    assert cfg.checkpoint_path.read_bytes() == before and no_tmp_files(cfg.out)


# tracebacks where one line is wanted, and late failures that come first ---------------------------------

TINY = ["--limit", "256", "--batch_size", "32", "--epochs", "1", "--width", "4", "--d", "8", "--workers", "0"]


@pytest.mark.parametrize("args,words", [
    (["--dataset", "imagefolder"], ["needs --data_root"]),
    (["--preset", "digits", "--name", "n" * 248], ["at most 200"]),
])
def test_command_line_errors_are_one_line(args, words, capsys, tmp_path):
    assert main(["train", *args, "--out", str(tmp_path)]) == 2
    one_line_error(capsys, *words)


def test_download_offline_is_one_line(monkeypatch, tmp_path, capsys):
    def offline(*a, **k):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(D.datasets, "CIFAR10", offline)
    assert main(["train", "--data_root", str(tmp_path), "--download", "--out", str(tmp_path), *TINY]) == 2
    one_line_error(capsys, "CIFAR-10 not found", "no network")


def test_a_checkpoint_path_that_is_a_folder_is_refused_before_work(tmp_path, capsys):
    (tmp_path / "checkpoints" / "c.pt").mkdir(parents=True)
    assert main(["train", "--preset", "digits", *TINY, "--out", str(tmp_path), "--name", "c"]) == 2
    one_line_error(capsys, "c.pt is a folder")


def test_a_checkpoint_with_an_invalid_config_is_named(run_a, tmp_path, capsys):
    state = torch.load(run_a.checkpoint_path, weights_only=True)
    state["config"]["crop_min"] = 7.0
    torch.save(state, tmp_path / "bad.pt")
    assert main(["eval", str(tmp_path / "bad.pt")]) == 2
    one_line_error(capsys, "bad.pt holds an invalid config", "crop_min=7.0")


@pytest.mark.parametrize("args,words", [(["--batches", "0"], ["--batches 0: must be >= 2"]),
                                        (["--batches", "16", "-5"], ["--batches -5"]),
                                        (["--repeats", "0"], ["--repeats 0: must be >= 1"]),
                                        (["--dataset", "foo"], ["unknown dataset 'foo'"]),
                                        (["--trainer_epochs", "0"], ["--trainer_epochs 0", "warm-up"]),
                                        (["--trainer_epochs", "1"], ["--trainer_epochs 1", "warm-up"])])
def test_bench_arguments_are_checked_first(args, words, capsys):
    assert main(["bench", "--device", "cpu", *args]) == 2
    one_line_error(capsys, *words)


@pytest.mark.parametrize("classes,words", [({"a": 40}, ["unlabelled", "--no-eval_knn"]),
                                           ({"a": 6, "b": 6}, ["20 in the train split", "here 10"])])
def test_a_knn_that_cannot_work_is_refused_before_training(tiny_cfg, tmp_path, image_tree, classes, words):
    root = image_tree(tmp_path / "imgs", classes)
    if len(classes) == 1:
        (root / "a").rename(tmp_path / "flat")
        root = tmp_path / "flat"
    cfg = tiny_cfg(dataset="imagefolder", data_root=str(root), limit=0, batch_size=4, eval_knn=True, val_fraction=0.2)
    with pytest.raises(ConfigError) as e:
        T.train(cfg, progress=False)
    assert all(w in str(e.value) for w in words) and not cfg.checkpoint_path.exists()
