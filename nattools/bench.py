"""Benchmarks that print ratios measured in one run (never timed unit tests): (a) the NAT step (forward,
batch assignment, loss, backward, SGD) against the same step with fixed targets, the price of learning
the assignment; (b) the trainer's images/s end to end (data, augmentation, logging, checkpoints) against
a bare loop of the same steps on tensors in memory. Every part runs on --device (default: the GPU if
there is one), at cfg.precision resolved there, and (c) the same fixed-target step in bf16 against fp32; the
full-scale step (AlexNet, 224 px, d = 4096, bf16) is timed by bench/gpu_check.sh."""
import statistics
import tempfile
import time

import torch

from .assign import Assignment
from .config import TrainConfig, UsageError
from .data import augment
from .models import build_model
from .step import nat_step
from .targets import TargetStore
from .train import resolve_precision, train


def default_device(device: str = "auto") -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device in (None, "auto") else device


def solvers() -> tuple:
    """The exact solvers this machine has: scipy, and lap where the package is installed."""
    try:
        import lap  # noqa: F401
        return ("scipy", "lap")
    except Exception:  # absent, or built for another numpy
        return ("scipy",)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ci(ratios: torch.Tensor, draws: int = 2000) -> tuple:
    """-> (median, (lo, hi)): the median of paired ratios and a bootstrap 95% interval of it."""
    pick = torch.randint(len(ratios), (draws, len(ratios)), generator=torch.Generator().manual_seed(0))
    boot = ratios[pick].median(1).values
    return float(ratios.median()), (float(boot.quantile(0.025)), float(boot.quantile(0.975)))


def nat_step_timer(cfg, batch: int, device: str = None, n: int = None, images: torch.Tensor = None,
                   precision: str = None):
    """-> step(reassign: bool, split=False) -> seconds of one forward/assign/loss/backward/SGD step of cfg's
    model (the trainer's own `nat_step`), n targets (default 8 batches), each batch drawn from `images`
    ((N,3,L,L) uint8, augmented outside the timed part) or one fixed random (batch,3,S,S) tensor.
    step.solve_s: each reassigning step's seconds solving and applying the assignment (on a GPU it also
    waits for the forward pass: the solver reads the scores on the CPU). split=True also syncs after the
    forward pass and `nat_step`, and appends (forward, nat_step, backward + SGD) seconds to
    step.split[reassign]. step.assignment.solver picks the solver. precision: 'fp32' or 'bf16' (default:
    cfg.precision resolved on device, as the trainer does); step.precision says which."""
    device = default_device(device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    n = n or 8 * batch
    targets, assignment = TargetStore(n, cfg.d, cfg.seed).to(device), Assignment(n, n, cfg.seed)
    x = torch.rand(batch, 3, cfg.image_size, cfg.image_size, device=device)
    gen = torch.Generator().manual_seed(cfg.seed)
    precision = precision or resolve_precision(cfg.precision, device)

    def step(reassign: bool, split: bool = False) -> float:
        nonlocal x
        idx = torch.randperm(n, generator=gen)[:batch]
        if images is not None:
            x = augment(images[idx % len(images)].to(device), cfg.image_size, cfg.crop_min, gen)
        x = x.contiguous(memory_format=torch.channels_last)
        sync(device)
        t = [time.perf_counter()]
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16"):
            z = model(x).float()
        if split:
            sync(device), t.append(time.perf_counter())
        out = nat_step(z, idx, assignment, targets, reassign)
        if split:
            sync(device), t.append(time.perf_counter())
        if reassign:
            step.solve_s.append(out.solve_s)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sync(device)
        t.append(time.perf_counter())
        if split:
            step.split[reassign].append([b - a for a, b in zip(t, t[1:])])
        return t[-1] - t[0]

    step.solve_s, step.split, step.assignment, step.precision = [], {True: [], False: []}, assignment, precision
    return step


def bf16_vs_fp32(cfg: TrainConfig, batch: int, repeats: int = 5, device: str = "cpu") -> dict:
    """The same fixed-target step in fp32 and in bf16 autocast, in ABBA order -> seconds of each (medians)
    and fp32 / bf16 (the speed-up; below 1 where bf16 is emulated) from the per-pair ratios."""
    steps = {p: nat_step_timer(cfg, batch, device, precision=p) for p in ("fp32", "bf16")}
    for s in steps.values():
        s(False)  # warm-up
    times = {"fp32": [], "bf16": []}
    for r in range(repeats):
        for p in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            times[p].append(steps[p](False))
    median, ci = median_ci(torch.tensor(times["fp32"]) / torch.tensor(times["bf16"]))
    return {"fp32_s": statistics.median(times["fp32"]), "bf16_s": statistics.median(times["bf16"]),
            "speedup": median, "ci": ci}


def nat_vs_fixed(cfg: TrainConfig, batch: int, repeats: int = 21, images: torch.Tensor = None,
                 device: str = "cpu") -> dict:
    """A NAT step against a fixed-target step, two ways. direct: the two alternate in ABBA order (linear
    drifts of the machine cancel) and each pair gives a ratio -> its median and a bootstrap 95% interval
    (wide: on a shared 2-core machine single steps scatter by +-10-20%). parts: the steps differ only in
    the assignment's solve-and-apply, timed inside every NAT step -> (fixed + solve) / fixed from their
    medians, a far less noisy estimate of the same ratio. `images`: real training images (see nat_step_timer)."""
    step = nat_step_timer(cfg, batch, device=device, n=4 * batch, images=images)
    step(True), step(False)  # warm-up
    step.solve_s.clear()
    nat, fixed = [], []
    for r in range(repeats):
        order = (True, False) if r % 2 == 0 else (False, True)
        t = {reassign: step(reassign) for reassign in order}
        nat.append(t[True])
        fixed.append(t[False])
    direct, direct_ci = median_ci(torch.tensor(nat) / torch.tensor(fixed))
    fixed_s, solve_s = statistics.median(fixed), statistics.median(step.solve_s)
    return {"nat_s": statistics.median(nat), "fixed_s": fixed_s, "solve_s": solve_s,
            "direct": direct, "direct_ci": direct_ci, "parts": (fixed_s + solve_s) / fixed_s}


def trainer_vs_bare(cfg: TrainConfig, steps: int, epochs: int = 4, device: str = "cpu") -> dict:
    """The real trainer (loader, augmentation, assignment, logging, checkpoints) on `steps` batches per
    epoch, with one bare step run after each of its steps (from `on_step`): the two alternate, so drifts
    of the machine hit both alike. The first epoch is a warm-up; a trainer step's time runs from the end
    of the previous bare step, so epoch ends (checkpoint, log) count too. -> seconds per step of each,
    and trainer img/s / bare img/s (from their sums; per-step ratios: median and bootstrap 95% interval)."""
    step = nat_step_timer(cfg, cfg.batch_size, device)  # the bare step: fixed targets, tensors in memory
    step(False), step(False)  # warm-up
    trainer_s, bare_s, last = [], [], [0.0]

    def on_step(global_step, loss):
        if global_step > steps:
            trainer_s.append(time.perf_counter() - last[0])
            bare_s.append(step(False))
        last[0] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        run = TrainConfig(**{**cfg.__dict__, "limit": steps * cfg.batch_size, "epochs": epochs, "out": out,
                             "name": "bench", "resume": False, "eval_knn": False, "device": device})
        train(run, on_step=on_step, command="bench")
    median, ci = median_ci(torch.tensor(bare_s) / torch.tensor(trainer_s))
    return {"trainer_s": trainer_s, "bare_s": bare_s, "ratio": sum(bare_s) / sum(trainer_s), "median": median, "ci": ci}


def run_bench(args) -> dict:
    from .data import default_dataset, load, subset, training_set
    for option, value, low, why in (("--batches", min(args.batches), 2, ""), ("--repeats", args.repeats, 1, ""),
                                    ("--trainer_steps", args.trainer_steps, 1, ""),
                                    ("--trainer_epochs", args.trainer_epochs, 2, " (the first epoch is a warm-up)")):
        if value < low:
            raise UsageError(f"{option} {value}: must be >= {low}{why}")
    device = default_device(getattr(args, "device", "auto"))
    dataset = args.dataset or default_dataset()
    cfg = TrainConfig(dataset=dataset)
    images = training_set(subset(load(dataset, "train", val_fraction=cfg.val_fraction), 4096),
                          cfg.image_size, progress=False).images  # real batches: the solver's speed depends on z
    figures = {"device": device}
    print(f"(a) NAT step vs fixed-target step on {device} in {resolve_precision(cfg.precision, device)}, "
          f"model {cfg.model} (width {cfg.width}), "
          f"{cfg.image_size} px, d={cfg.d}, {torch.get_num_threads()} threads, {dataset} images, "
          f"{args.repeats} ABBA pairs")
    for b in args.batches:
        r = nat_vs_fixed(cfg, b, args.repeats, images, device)
        figures[f"nat_over_fixed_b{b}"] = r["parts"]
        figures[f"nat_over_fixed_direct_b{b}"] = r["direct"]
        lo, hi = r["direct_ci"]
        print(f"  batch {b:5d}: NAT {r['nat_s'] * 1e3:7.1f} ms  fixed {r['fixed_s'] * 1e3:7.1f} ms  "
              f"solve {r['solve_s'] * 1e3:6.1f} ms  |  ratio (fixed + solve) / fixed {r['parts']:.4f}  "
              f"direct {r['direct']:.4f} [95% {lo:.3f}, {hi:.3f}]")
    batch, repeats = min(args.batches), getattr(args, "precision_repeats", 5)
    r = bf16_vs_fp32(cfg, batch, repeats, device)
    figures["bf16_speedup"] = r["speedup"]
    lo, hi = r["ci"]
    print(f"(c) bf16 autocast vs fp32, fixed-target step, batch {batch}, {repeats} ABBA "
          f"pairs: fp32 {r['fp32_s'] * 1e3:.0f} ms, bf16 {r['bf16_s'] * 1e3:.0f} ms, fp32 / bf16 {r['speedup']:.3f} "
          f"[95% {lo:.3f}, {hi:.3f}]; native bf16 here: {'yes' if resolve_precision('auto', device) == 'bf16' else 'no'}")
    r = trainer_vs_bare(cfg, args.trainer_steps, args.trainer_epochs, device)
    figures["trainer_over_bare"] = r["ratio"]
    lo, hi = r["ci"]
    print(f"(b) trainer vs bare loop on {dataset}, {device}, batch {cfg.batch_size}, {len(r['bare_s'])} "
          f"alternating steps: trainer {cfg.batch_size * len(r['trainer_s']) / sum(r['trainer_s']):.0f} img/s, "
          f"bare {cfg.batch_size * len(r['bare_s']) / sum(r['bare_s']):.0f} img/s, ratio {r['ratio']:.3f} "
          f"(per step: median {r['median']:.3f} [95% {lo:.3f}, {hi:.3f}])")
    return figures
