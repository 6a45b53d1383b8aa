"""The benchmarks run (their figures are printed by `python -m nattools bench`, never asserted here)."""
import torch

import nattools
from nattools.bench import nat_vs_fixed, trainer_vs_bare


def test_bench_pieces_run_on_tiny_settings():
    cfg = nattools.TrainConfig(dataset="digits", width=8, d=16, batch_size=32, workers=0)
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    r = nat_vs_fixed(cfg, batch=16, repeats=2, images=images)
    assert r["nat_s"] > 0 and r["fixed_s"] > 0 and r["solve_s"] > 0
    assert r["parts"] == (r["fixed_s"] + r["solve_s"]) / r["fixed_s"]
    lo, hi = r["direct_ci"]
    assert lo <= r["direct"] <= hi
    r = trainer_vs_bare(cfg, steps=2, epochs=3)
    assert len(r["trainer_s"]) == len(r["bare_s"]) == 4  # epochs 2 and 3, two steps each
    assert r["ratio"] == sum(r["bare_s"]) / sum(r["trainer_s"]) > 0
    lo, hi = r["ci"]
    assert lo <= r["median"] <= hi
