"""Two CPU processes (gloo) train NAT with torchrun, exactly as a user would on GPUs.

Checks: both ranks end with the same sample -> target table, it is one-to-one,
the weights and the table moved, and the 2-process checkpoint (stopped
mid-epoch) resumes on 1 process. About 30-60 s on 2 busy CPU cores.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from nattools import build_model
from nattools.assign import Assignment
from nattools.config import TrainConfig
from nattools.distributed import table_digest

# 256 digits, 2 ranks x 32 per step = 4 steps per epoch per rank; k > n so free targets
# are handed out too (the case where two ranks could grab the same target).
ARGS = ["--preset", "digits", "--limit", "256", "--batch_size", "32", "--k", "300", "--epochs", "2",
        "--width", "8", "--d", "16", "--workers", "0", "--no-eval_knn", "--seed", "3", "--reassign_every", "1"]


def _run(cmd, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    proc = subprocess.run(cmd + ARGS + ["--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """2-process run stopped by max_steps in the middle of epoch 2 -> (out dir, results, checkpoint)."""
    out = tmp_path_factory.mktemp("ddp")
    # "-m --": torchrun's own parser would otherwise take "--d" for one of its options.
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "-m", "--", "nattools", "train", "--max_steps", "6"], out)
    cfg = TrainConfig(**{**json.loads((out / "results" / "digits_nat.json").read_text())["config"]})
    results = json.loads(cfg.results_path.read_text())
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    return out, cfg, results, state


def test_ranks_hold_identical_one_to_one_table(two_ranks):
    _, cfg, results, state = two_ranks
    assert results["world"] == 2
    digests = results["table_digests"]  # each rank's own fingerprint, gathered at the end
    assert len(digests) == 2 and digests[0] == digests[1]
    table = state["assignment"]["table"]
    a = Assignment(256, 300)
    a.load_state_dict(state["assignment"])
    assert table_digest(a) == digests[0]  # the checkpoint holds that same table
    assert len(table) == 256 and len(torch.unique(table)) == 256  # one-to-one
    assert int(table.min()) >= 0 and int(table.max()) < 300


def test_training_moved(two_ranks):
    _, cfg, results, state = two_ranks
    assert (state["epoch"], state["step"], state["world"]) == (1, 2, 2)  # 4 + 2 steps per rank
    start = Assignment(256, 300, seed=cfg.seed).table
    assert (state["assignment"]["table"] != start).float().mean() > 0.3  # the assignment was re-solved
    torch.manual_seed(cfg.seed)
    init = build_model(cfg).state_dict()
    moved = [name for name, w in state["model"].items()
             if w.is_floating_point() and not torch.equal(w, init[name])]
    assert any(name.endswith("weight") for name in moved)
    assert results["history"][0]["loss"] > 0 and 0 < results["history"][0]["changed"] <= 1


def test_resume_two_rank_checkpoint_on_one_process(two_ranks, tmp_path):
    out, cfg, _, state = two_ranks
    proc = _run([sys.executable, "-m", "nattools", "train"], out)
    # 2 ranks x 2 steps x 32 = 128 samples of epoch 2 were done: step 4 of 8 on one process
    assert "at epoch 1, step 4" in proc.stdout
    results = json.loads(cfg.results_path.read_text())
    assert results["world"] == 1 and results["epochs_done"] == 2 and len(results["history"]) == 2
    final = torch.load(cfg.checkpoint_path, weights_only=True)
    table = final["assignment"]["table"]
    assert len(torch.unique(table)) == 256
    assert not torch.equal(table, state["assignment"]["table"])  # training went on from there
