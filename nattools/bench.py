"""Benchmarks that print ratios measured in one run (never timed unit tests).

(a) The NAT step (forward, batch assignment, loss, backward, SGD) against the
    same step with fixed targets: the price of learning the assignment.
(b) The trainer's images/s end to end (data loading, augmentation, logging)
    against a bare loop of the same steps on tensors already in memory.
"""
import statistics
import tempfile
import time

import torch

from .bench_gpu import nat_step_timer
from .models import build_model
from .targets import TargetStore
from .train import TrainConfig, train


def median_ci(ratios: torch.Tensor, draws: int = 2000) -> tuple:
    """-> (median, (lo, hi)): the median of paired ratios and a bootstrap 95% interval of it."""
    pick = torch.randint(len(ratios), (draws, len(ratios)), generator=torch.Generator().manual_seed(0))
    boot = ratios[pick].median(1).values
    return float(ratios.median()), (float(boot.quantile(0.025)), float(boot.quantile(0.975)))


def nat_vs_fixed(cfg: TrainConfig, batch: int, repeats: int = 21, images: torch.Tensor = None) -> dict:
    """A NAT step against a fixed-target step, measured two ways.

    direct: NAT and fixed steps alternate in ABBA order (linear drifts of the machine cancel),
    and each pair gives a ratio; -> its median and a bootstrap 95% interval of that median.
    On a shared 2-core machine single steps scatter by +-10-20%, so the interval is wide.
    parts: the two steps run the same code except the assignment's solve-and-apply, which is
    timed inside every NAT step; -> (fixed + solve) / fixed from their medians, a far less
    noisy estimate of the same ratio. `images`: real training images (see nat_step_timer)."""
    step = nat_step_timer(cfg, batch, device="cpu", n=4 * batch, images=images)
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


def bare_step(cfg: TrainConfig, n_batches: int = 4):
    """-> step() -> seconds of one forward/backward/SGD step of cfg's model on tensors already
    in memory, with fixed targets: the bare loop that the trainer is held against."""
    torch.manual_seed(0)
    model = build_model(cfg).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    xs = [torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size) for _ in range(n_batches)]
    c = TargetStore(cfg.batch_size, cfg.d)[torch.arange(cfg.batch_size)]

    def step() -> float:
        t = time.perf_counter()
        loss = (model.embed(xs[step.count % n_batches]) - c).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step.count += 1
        return time.perf_counter() - t

    step.count = 0
    return step


def trainer_vs_bare(cfg: TrainConfig, steps: int, epochs: int = 4) -> dict:
    """The real trainer (loader, augmentation, assignment, logging, checkpoints) on `steps`
    batches per epoch, with one bare step run after each of its steps (from `on_step`): the
    two alternate step by step, so drifts of the machine hit both alike. The first epoch is a
    warm-up; a trainer step's time runs from the end of the previous bare step, so epoch ends
    (checkpoint, log) count too. -> seconds per step of each, and trainer img/s / bare img/s
    (from their sums; per-step ratios: median and bootstrap 95% interval)."""
    bare = bare_step(cfg)
    bare(), bare()  # warm-up
    trainer_s, bare_s, last = [], [], [0.0]

    def on_step(global_step, loss):
        if global_step > steps:
            trainer_s.append(time.perf_counter() - last[0])
            bare_s.append(bare())
        last[0] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        run = TrainConfig(**{**cfg.__dict__, "limit": steps * cfg.batch_size, "epochs": epochs, "out": out,
                             "name": "bench", "resume": False, "eval_knn": False})
        train(run, on_step=on_step, command="bench")
    median, ci = median_ci(torch.tensor(bare_s) / torch.tensor(trainer_s))
    return {"trainer_s": trainer_s, "bare_s": bare_s, "ratio": sum(bare_s) / sum(trainer_s),
            "median": median, "ci": ci}


def run_bench(args) -> dict:
    from .data import default_dataset, load, subset, training_set
    dataset = args.dataset or default_dataset()
    cfg = TrainConfig(dataset=dataset)
    images = training_set(subset(load(dataset, "train", val_fraction=cfg.val_fraction), 4096),
                          cfg.image_size, progress=False).images  # real batches: the solver's speed depends on z
    figures = {}
    print(f"(a) NAT step vs fixed-target step, model {cfg.model} (width {cfg.width}), "
          f"{cfg.image_size} px, d={cfg.d}, {torch.get_num_threads()} threads, {dataset} images, "
          f"{args.repeats} ABBA pairs")
    for b in args.batches:
        r = nat_vs_fixed(cfg, b, args.repeats, images)
        figures[f"nat_over_fixed_b{b}"] = r["parts"]
        figures[f"nat_over_fixed_direct_b{b}"] = r["direct"]
        lo, hi = r["direct_ci"]
        print(f"  batch {b:5d}: NAT {r['nat_s'] * 1e3:7.1f} ms  fixed {r['fixed_s'] * 1e3:7.1f} ms  "
              f"solve {r['solve_s'] * 1e3:6.1f} ms  |  ratio (fixed + solve) / fixed {r['parts']:.4f}  "
              f"direct {r['direct']:.4f} [95% {lo:.3f}, {hi:.3f}]")
    r = trainer_vs_bare(cfg, args.trainer_steps, args.trainer_epochs)
    figures["trainer_over_bare"] = r["ratio"]
    lo, hi = r["ci"]
    print(f"(b) trainer vs bare loop on {dataset}, batch {cfg.batch_size}, {len(r['bare_s'])} alternating steps: "
          f"trainer {cfg.batch_size * len(r['trainer_s']) / sum(r['trainer_s']):.0f} img/s, "
          f"bare {cfg.batch_size * len(r['bare_s']) / sum(r['bare_s']):.0f} img/s, ratio {r['ratio']:.3f} "
          f"(per step: median {r['median']:.3f} [95% {lo:.3f}, {hi:.3f}])")
    if getattr(args, "alexnet", False):
        from .bench_gpu import bench_alexnet
        figures.update({f"alexnet_{k}": v for k, v in bench_alexnet().items()})
    return figures
