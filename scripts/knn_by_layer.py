"""Where does a checkpoint's kNN margin come from? kNN-20 (cosine, majority vote; the eval
protocol's train and validation splits) on every stage of the head, for the trained network,
the same network with its BatchNorm statistics re-estimated on whole training images (the
trainer's running statistics come from crops), and the network at random initialisation
(nattools.evaluate.random_init: statistics re-estimated, as `eval --baseline`).

    python scripts/knn_by_layer.py data/checkpoints/cifar10_nat_val.pt [--out FILE.json]

Stages: pooled conv features 1x1 and 2x2 (`model.features`), the head's hidden layer (after
its ReLU; the small net), and the embedding (`model.embed`). Each also standardised per
dimension with the training split's mean and standard deviation.
"""
import argparse
import copy
import json
import sys

import torch.nn.functional as F

from nattools import evaluate
from nattools.checkpoint import load_checkpoint


def stages(model, dataset, batch_size: int = 512):
    """{stage: (N, D) tensor}, labels (N,) for a dataset of (x, label, index)."""
    def read(m, x):
        f = m.features(x)                                            # (b, C, h, w)
        h = m.head[:-1](f)                                           # everything but the last linear layer
        return F.adaptive_avg_pool2d(f, 1).flatten(1), F.adaptive_avg_pool2d(f, 2).flatten(1), h, \
            F.normalize(m.head[-1](h), dim=1)                        # the last = model.embed(x)
    outs, labels = evaluate.frozen(model, dataset, read, batch_size=batch_size)
    return dict(zip(("features_1x1", "features_2x2", "hidden", "embed"), outs)), labels


def knn_table(model, train, val) -> dict:
    a, ya = stages(model, train)
    b, yb = stages(model, val)
    row = {}
    for k in a:
        row[k] = evaluate.knn_accuracy(a[k], ya, b[k], yb)
        mean, std = a[k].mean(0), a[k].std(0) + 1e-6
        row[k + "_standardised"] = evaluate.knn_accuracy((a[k] - mean) / std, ya, (b[k] - mean) / std, yb)
    return row


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    model, cfg = load_checkpoint(args.checkpoint)
    train, val = evaluate.eval_splits(cfg)
    networks = {
        "trained": model,
        "trained, BN re-estimated": evaluate.reestimate_bn(copy.deepcopy(model), train, seed=cfg.seed),
        "random init": evaluate.random_init(cfg, train),
    }
    table = {name: knn_table(m, train, val) for name, m in networks.items()}
    cols = list(next(iter(table.values())))
    print(f"kNN-20 (%) on {len(val)} validation images, {len(train)} training images as memory; {args.checkpoint}")
    print(f"{'':<26}" + "".join(f"{c.replace('_standardised', ' std'):>17}" for c in cols))
    for name, row in table.items():
        print(f"{name:<26}" + "".join(f"{100 * row[c]:17.2f}" for c in cols))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"checkpoint": args.checkpoint, "command": " ".join(["python", "scripts/knn_by_layer.py"] + argv),
                       "n_train": len(train), "n_val": len(val), "knn20": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
