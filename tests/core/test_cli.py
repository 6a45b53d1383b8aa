import json
import subprocess

import pytest
import sys

from nattools.__main__ import main


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "nattools", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and all(c in out.stdout for c in ("train", "eval", "bench"))
    out = subprocess.run([sys.executable, "-m", "nattools", "train", "--help"], capture_output=True, text=True)
    assert "--reassign_every" in out.stdout and "--preset" in out.stdout


def test_train_then_eval_from_the_command_line(tmp_path, capsys):
    args = ["train", "--preset", "digits", "--limit", "256", "--batch_size", "32", "--epochs", "1",
            "--width", "8", "--d", "16", "--out", str(tmp_path), "--name", "cli", "--no-eval_knn"]
    assert main(args) == 0
    res = json.loads((tmp_path / "results" / "cli.json").read_text())
    assert res["command"].startswith("python -m nattools train --preset digits")
    assert res["config"]["width"] == 8 and res["config"]["dataset"] == "digits"
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "checkpoints" / "cli.pt"), "--probe_epochs", "2",
                 "--out", str(tmp_path / "eval.json")]) == 0
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert 0 < figures["knn20_embed"] <= 1 and 0 < figures["linear_features_2x2"] <= 1
    # the raw-pixel baseline: no network, the probe sees every Sobel pixel (2 x 32 x 32)
    assert main(["eval", str(tmp_path / "checkpoints" / "cli.pt"), "--baseline", "pixels", "--probe_epochs", "2",
                 "--out", str(tmp_path / "pixels.json")]) == 0
    pixels = json.loads((tmp_path / "pixels.json").read_text())
    assert pixels["baseline"] == "pixels" and 0 < pixels["linear_features_32x32"] <= 1
    assert pixels["knn20_embed"] != figures["knn20_embed"]


def test_bad_option_value_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--eval_knn", "maybe"])
    assert e.value.code == 2 and "unrecognized arguments: maybe" in capsys.readouterr().err
