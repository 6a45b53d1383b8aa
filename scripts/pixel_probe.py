"""Is the Sobel-pixel linear probe (eval's --baseline pixels) weak, or only untuned? The eval protocol's probe
(Adam, lr 1e-3, 30 epochs, no weight decay) was set for 2x2-pooled conv features; here it is tuned for the 2,048
raw Sobel pixels on a tuning split carved out of the training split (5,000 images, seed 0), then trained on the
whole training split with the chosen settings and scored once on the validation split.

    python scripts/pixel_probe.py --out data/results/pixel_probe.json
"""
import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

from nattools import config, evaluate
from nattools.checkpoint import write_atomic

GRID = {"lr": (1e-4, 1e-3), "weight_decay": (0.0, 1e-2, 1e-1)}


def main(out: str) -> None:
    cfg = config.TrainConfig(dataset="cifar10", val_fraction=0.1, workers=0)
    train, val = evaluate.eval_splits(cfg)
    pixels = evaluate.Pixels(cfg.input)
    _, ftr, ytr = evaluate.extract(pixels, train, pool=cfg.image_size, progress=False)  # (45000, 2048)
    _, fva, yva = evaluate.extract(pixels, val, pool=cfg.image_size, progress=False)
    order = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(0))
    tune, fit = order[:5000], order[5000:]
    grid = []
    for lr, wd in itertools.product(*GRID.values()):
        grid.append({"lr": lr, "weight_decay": wd,
                     "tuning_acc": evaluate.linear_probe(ftr[fit], ytr[fit], ftr[tune], ytr[tune], lr=lr,
                                                         weight_decay=wd)})
        print(grid[-1], flush=True)
    best = max(grid, key=lambda g: g["tuning_acc"])
    chosen = {"lr": best["lr"], "weight_decay": best["weight_decay"]}
    result = {"command": "python " + " ".join(sys.argv), "n_train": len(ytr), "n_val": len(yva), "grid": grid,
              "chosen": chosen, "val_acc_tuned": evaluate.linear_probe(ftr, ytr, fva, yva, **chosen),
              "val_acc_protocol": evaluate.linear_probe(ftr, ytr, fva, yva)}
    print(json.dumps({k: v for k, v in result.items() if k != "grid"}))
    write_atomic((json.dumps(result, indent=1) + "\n").encode(), Path(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    main(parser.parse_args().out)
