"""Command line: python -m nattools train | eval | bench  (each with --help).

Every TrainConfig field is an option: python -m nattools train --dataset digits --epochs 3
"""
import argparse
import dataclasses
import json
import shlex
import sys

from .train import PRESETS, TrainConfig


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a named recipe, then apply overrides")
    for f in dataclasses.fields(TrainConfig):
        kind = _bool if f.type in (bool, "bool") else type(f.default)
        p.add_argument(f"--{f.name}", type=kind, default=None, metavar=type(f.default).__name__.upper(),
                       help=f"default {f.default!r}")


def config_from_args(args) -> TrainConfig:
    base = dict(PRESETS[args.preset]) if args.preset else {}
    base.update({f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name) is not None})
    return TrainConfig(**base)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m nattools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_train = sub.add_parser("train", help="train NAT; writes OUT/checkpoints/NAME.pt and OUT/results/NAME.json")
    add_config_options(p_train)
    p_train.add_argument("--dry-run", action="store_true", help="print the plan (steps, memory, time) and exit")
    p_eval = sub.add_parser("eval", help="kNN and linear probe of a checkpoint on the validation split")
    p_eval.add_argument("checkpoint")
    p_eval.add_argument("--baseline", nargs="?", const="random", choices=("random", "pixels"), default=None,
                        help="instead of the checkpoint: 'random' (default) = its architecture at random init, "
                             "BN statistics re-estimated; 'pixels' = the front end's pixels as features")
    p_eval.add_argument("--probe_epochs", type=int, default=30)
    p_eval.add_argument("--val_fraction", type=float, default=None,
                        help="carve this validation split instead of the run's own")
    p_eval.add_argument("--out", default=None, help="write the figures to this JSON file")
    p_eval.add_argument("--device", default="cpu", help="cpu | cuda")
    p_bench = sub.add_parser("bench", help="assignment overhead and trainer throughput, as ratios")
    p_bench.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    p_bench.add_argument("--repeats", type=int, default=21, help="ABBA pairs of NAT and fixed-target steps per batch size")
    p_bench.add_argument("--trainer_steps", type=int, default=20, help="steps per epoch of the trainer run")
    p_bench.add_argument("--trainer_epochs", type=int, default=4, help="epochs of the trainer run (the first: warm-up)")
    p_bench.add_argument("--dataset", default=None, help="dataset for the trainer benchmark (default: the book's)")
    p_bench.add_argument("--alexnet", action="store_true", help="also time the AlexNet 224 px NAT step")
    args = parser.parse_args(argv)

    if args.cmd == "train":
        cfg = config_from_args(args)
        if args.dry_run:
            from .train import plan
            print(json.dumps(plan(cfg), indent=1))
            return 0
        from .train import train
        command = "python -m nattools " + " ".join(shlex.quote(a) for a in argv)
        res = train(cfg, command=command)
        print(json.dumps({k: res[k] for k in ("name", "epochs_done", "wall_time_s") if k in res}
                         | ({"knn20_val": res["knn20_val"]} if "knn20_val" in res else {})))
    elif args.cmd == "eval":
        from .evaluate import evaluate_checkpoint
        figures = evaluate_checkpoint(args.checkpoint, baseline=args.baseline, probe_epochs=args.probe_epochs,
                                      val_fraction=args.val_fraction, device=args.device)
        figures["command"] = "python -m nattools " + " ".join(shlex.quote(a) for a in argv)
        print(json.dumps(figures, indent=1))
        if args.out:
            from pathlib import Path
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(figures, indent=1))
    elif args.cmd == "bench":
        from .bench import run_bench
        run_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
