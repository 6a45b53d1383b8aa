"""Run files for the study tests: results and eval files as the trainer and `eval` write them."""
import json

import pytest


def history(epochs=3):
    return [{"epoch": e, "loss": 1.5 / e, "changed": 0.9 / e, "uniformity": -3.0 - e / 10, "images_per_s": 100.0,
             "assign_s": 0.1, "epoch_s": 10.0, "lr": 0.05 / e, "reassigned": True} for e in range(1, epochs + 1)]


@pytest.fixture
def files(tmp_path):
    """A results file with its eval file beside it, and an eval-only pixel baseline."""
    res = {"name": "r1", "command": "python -m nattools train --name r1 --epochs 3", "n": 1000, "k": 1000,
           "world": 1, "config": {"batch_size": 64}, "wall_time_s": 125.0, "history": history()}
    ev = {"knn20_embed": 0.4112, "linear_features_2x2": 0.47, "uniformity_val": -3.6, "baseline": False,
          "command": "python -m nattools eval data/checkpoints/r1.pt --out r1_eval.json"}
    pixels = {"knn20_embed": 0.25, "linear_features_32x32": 0.30, "baseline": "pixels",
              "command": "python -m nattools eval data/checkpoints/r1.pt --baseline pixels"}
    (tmp_path / "r1.json").write_text(json.dumps(res))
    (tmp_path / "r1_eval.json").write_text(json.dumps(ev))
    (tmp_path / "pixels_eval.json").write_text(json.dumps(pixels))
    return tmp_path


@pytest.fixture
def write_run():
    """write_run(folder, name, knn, linear, n_val=2500, eval_file=True, **config): a results file (and,
    unless eval_file=False, its eval file) in folder."""
    return _write_run


@pytest.fixture
def make_history():
    return history


def _write_run(folder, name, knn, linear, n_val=2500, eval_file=True, **config):
    """A results file (and, unless eval_file=False, its eval file) in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"batch_size": 256, "epochs": 3, "input": "sobel", "out": f"/tmp/{name}", "name": name, **config}
    res = {"name": name, "command": f"python -m nattools train --name {name}", "n": 22500, "world": 1,
           "config": cfg, "wall_time_s": 60.0, "history": history()}
    (folder / f"{name}.json").write_text(json.dumps(res))
    if eval_file:
        ev = {"knn20_embed": knn, "linear_features_2x2": linear, "n_val": n_val, "n_train": 22500}
        (folder / f"{name}_eval.json").write_text(json.dumps(ev))
