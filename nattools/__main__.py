"""Command line: python -m nattools train | eval | bench  (each with --help).

Every TrainConfig field is an option:  python -m nattools train --preset digits --epochs 3
Errors are one line (exit status 2); --debug shows the traceback. Ctrl-C or SIGTERM: training saves the
run at the next step boundary and exits with 130 or 143; the same command resumes it.
"""
import argparse
import dataclasses
import json
import shlex
import sys

from .config import PRESETS, TrainConfig, UsageError


def add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, with its meaning, choices or range, and default."""
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a named recipe, then apply overrides")
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if f.type in (bool, "bool"):
            p.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=None,
                           help=f"{meta['help']} (default: {'on' if f.default else 'off'})")
            continue
        rule = f"; {meta['rule']}" if meta["rule"] else ""
        p.add_argument(f"--{f.name}", type=type(f.default), default=None, choices=meta["choices"],
                       metavar=None if meta["choices"] else type(f.default).__name__.upper(),
                       help=f"{meta['help']}{rule} (default: {f.default!r})")


def config_from_args(args) -> TrainConfig:
    if args.name == "":
        raise UsageError("--name must not be empty (leave it out for the default, DATASET_nat)")
    base = dict(PRESETS[args.preset]) if args.preset else {}
    base.update({f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name) is not None})
    return TrainConfig(**base).validate()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nattools", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the whole traceback of an error")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train NAT; writes OUT/checkpoints/NAME.pt and OUT/results/NAME.json")
    add_config_options(t)
    t.add_argument("--bf16", action="store_const", const="bf16", dest="precision",
                   help="alias of --precision bf16 (kept from earlier versions)")
    t.add_argument("--dry-run", action="store_true", help="print the plan (steps, memory, time) and exit")
    e = sub.add_parser("eval", help="kNN-20 and linear probe of a checkpoint on its held-out split, in %%")
    e.add_argument("checkpoint")
    e.add_argument("--baseline", nargs="?", const="random", choices=("random", "pixels"), default=None,
                   help="instead of the checkpoint: 'random' (the default) = its network at random init, BN "
                        "statistics re-estimated; 'pixels' = the front end's pixels as features")
    e.add_argument("--probe_epochs", type=int, default=30, help="epochs of the linear probe (>= 0; 0 = kNN only)")
    e.add_argument("--data_root", default=None, help="where the run's data is on this machine")
    e.add_argument("--val_fraction", type=float, default=None,
                   help="baselines only: carve this validation split instead of the run's")
    e.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    e.add_argument("--out", default=None, help="also write the figures (fractions of 1) to this JSON file")
    e.add_argument("--dataset", default=None, help="another data set than the checkpoint's (transfer): kNN-20 and the "
                   "linear probe on its validation split, learning from its labelled training images")
    e.add_argument("--labels_per_class", type=int, default=0, help="learn from this many labelled images per class "
                   "(0 = all), on --dataset or the checkpoint's own")
    f = sub.add_parser("finetune", help="fine-tune every layer of a checkpoint (or its random init) on N labelled "
                       "images per class; accuracy on the target's validation split, in %%")
    f.add_argument("checkpoint")
    f.add_argument("--random_init", action="store_true", help="start from the weights the checkpoint's run started from")
    from .transfer import FinetuneConfig
    for fld in dataclasses.fields(FinetuneConfig):  # dataset, val_fraction: the checkpoint's, unless given
        f.add_argument(f"--{fld.name}", type=type(fld.default), default=None, help=f"(default: {fld.default!r})")
    f.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    f.add_argument("--out", default=None, help="also write the figures to this JSON file")
    b = sub.add_parser("bench", help="assignment overhead and trainer throughput, as ratios")
    b.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    b.add_argument("--repeats", type=int, default=21, help="ABBA pairs of NAT and fixed-target steps per batch size")
    b.add_argument("--trainer_steps", type=int, default=20, help="steps per epoch of the trainer run")
    b.add_argument("--trainer_epochs", type=int, default=4, help="epochs of the trainer run (the first: warm-up)")
    b.add_argument("--precision_repeats", type=int, default=5, help="ABBA pairs of bf16 and fp32 steps")
    b.add_argument("--dataset", default=None, help="dataset for the trainer benchmark (default: the book's)")
    b.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="run every part on this device (auto: the GPU if there is one)")
    return p


def run(args, argv) -> int:
    command = "python -m nattools " + " ".join(shlex.quote(a) for a in argv)
    if args.cmd == "train":
        cfg = config_from_args(args)
        if args.dry_run:
            from .plan import plan
            print(json.dumps(plan(cfg), indent=1))
            return 0
        from .train import train
        res = train(cfg, command=command)
        summary = {k: res[k] for k in ("name", "epochs_done", "wall_time_s") if k in res}
        if res.get("knn20_val") is not None:
            summary["knn20_val_pct"] = round(100 * res["knn20_val"], 2)
        print(json.dumps(summary))
    elif args.cmd in ("finetune", "eval") and (args.cmd == "finetune" or args.dataset or args.labels_per_class):
        out = checked_out(args.out)
        figures = transfer_command(args)
        figures["command"] = command
        print(f"{'finetuned' if args.cmd == 'finetune' else 'frozen'} {'random init of ' * bool(figures.get('random_init') or figures.get('baseline'))}"
              f"{args.checkpoint} on {figures['n_labelled']:,} labelled {figures['protocol']['dataset']} images, scored "
              f"on {figures['n_val']:,} validation images:")
        for key in ("accuracy", "knn20_embed", "linear_features_2x2"):
            if key in figures:
                print(f"  {key}: {100 * figures[key]:.2f} %")
        write_out(figures, out)
    elif args.cmd == "eval":
        if args.probe_epochs < 0:
            raise UsageError(f"--probe_epochs {args.probe_epochs}: must be >= 0")
        if args.val_fraction is not None and not 0 <= args.val_fraction < 1:
            raise UsageError(f"--val_fraction {args.val_fraction}: must be in [0, 1)")
        from .evaluate import evaluate_checkpoint
        from .train import pick_device
        out = checked_out(args.out)
        figures = evaluate_checkpoint(args.checkpoint, baseline=args.baseline, probe_epochs=args.probe_epochs,
                                      val_fraction=args.val_fraction, device=pick_device(args.device),
                                      data_root=args.data_root)
        figures["command"] = command
        what = f"{args.baseline} baseline of " if args.baseline else ""
        print(f"{what}{args.checkpoint} on {figures['split']} ({figures['n_val']} images):")
        for key, value in figures.items():
            if key.startswith(("knn", "linear")):
                print(f"  {key}: {100 * value:.2f} %")
        write_out(figures, out)
    elif args.cmd == "bench":
        from .bench import run_bench
        run_bench(args)
    return 0


def checked_out(path):
    """--out of eval and finetune, checked before any work: it may replace only a figures file of theirs."""
    from .checkpoint import check_output, contents
    own = ({"checkpoint", "baseline"}, {"protocol", "n_labelled"})
    return None if path is None else check_output(path, replaces=lambda p: any(k <= set(contents(p)) for k in own))


def write_out(figures: dict, out) -> None:
    if out:
        from .checkpoint import json_text, write_text_atomic
        write_text_atomic(json_text(figures), out)
        print(f"wrote {out}")


def transfer_command(args) -> dict:
    """finetune, or eval --dataset: the transfer protocol (nattools.transfer) on the target data set."""
    from . import transfer
    from .train import pick_device
    random = bool(getattr(args, "random_init", False) or getattr(args, "baseline", None) == "random")
    net, cfg = transfer.start(args.checkpoint, random)
    names = [f.name for f in dataclasses.fields(transfer.FinetuneConfig)]
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    given.setdefault("dataset", cfg.dataset)
    if given["dataset"] == cfg.dataset:  # the checkpoint's own data: its own held-out split
        given.setdefault("val_fraction", cfg.val_fraction)
        given.setdefault("data_root", cfg.data_root)
    fcfg = transfer.FinetuneConfig(**given).validate()
    device = pick_device(args.device)
    if args.cmd == "finetune":
        return {"random_init": random, **transfer.finetune(net, cfg, fcfg, device, progress=True)}
    if args.baseline == "pixels":
        raise UsageError("--baseline pixels with --dataset: not available; use random, or leave it out")
    return {"baseline": args.baseline or False, **transfer.frozen(net, cfg, fcfg, random, device, args.probe_epochs)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    from .checkpoint import Interrupted, signals
    try:
        with signals():
            return run(args, argv)
    except (UsageError, OSError) as e:  # OSError: a file, a disk or the network, said in one line
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(e, file=sys.stderr)
        return 128 + e.signum


if __name__ == "__main__":
    sys.exit(main())
