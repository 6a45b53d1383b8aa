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


def nat_vs_fixed(cfg: TrainConfig, batch: int, repeats: int = 5):
    """Median seconds of a NAT step and of a fixed-target step, interleaved so
    that machine noise hits both alike. -> (nat_s, fixed_s)."""
    step = nat_step_timer(cfg, batch, device="cpu", n=4 * batch)
    step(True), step(False)  # warm-up
    nat, fixed = [], []
    for _ in range(repeats):
        nat.append(step(True))
        fixed.append(step(False))
    return statistics.median(nat), statistics.median(fixed)


def bare_loop(cfg: TrainConfig, steps: int, n_batches: int = 4) -> float:
    """images/s of forward/backward/SGD on pre-loaded tensors with fixed targets."""
    torch.manual_seed(0)
    model = build_model(cfg).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    xs = [torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size) for _ in range(n_batches)]
    c = TargetStore(cfg.batch_size, cfg.d)[torch.arange(cfg.batch_size)]
    t = time.perf_counter()
    for s in range(steps):
        loss = (model.embed(xs[s % n_batches]) - c).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * cfg.batch_size / (time.perf_counter() - t)


def trainer_throughput(cfg: TrainConfig, steps: int, epochs: int = 3) -> list:
    """images/s of the real trainer in each warm epoch of `steps` batches (the first
    is dropped): loader, augmentation, assignment, checkpoint-free logging included."""
    with tempfile.TemporaryDirectory() as out:
        run = TrainConfig(**{**cfg.__dict__, "limit": steps * cfg.batch_size, "epochs": epochs, "out": out,
                             "name": "bench", "resume": False, "eval_knn": False})
        history = train(run, command="bench")["history"]
    return [h["images_per_s"] for h in history[1:]]


def run_bench(args) -> dict:
    from .data import default_dataset
    cfg = TrainConfig()
    figures = {}
    print(f"(a) NAT step vs fixed-target step, model {cfg.model} (width {cfg.width}), "
          f"{cfg.image_size} px, d={cfg.d}, {torch.get_num_threads()} threads")
    for b in args.batches:
        nat, fixed = nat_vs_fixed(cfg, b, args.repeats)
        figures[f"nat_over_fixed_b{b}"] = nat / fixed
        print(f"  batch {b:5d}: NAT {nat * 1e3:8.1f} ms  fixed {fixed * 1e3:8.1f} ms  ratio {nat / fixed:.4f}")
    dataset = args.dataset or default_dataset()
    cfg = TrainConfig(dataset=dataset)
    bare, trainer = [], []
    for _ in range(args.rounds):  # alternate, so that drifts of the machine hit both
        bare.append(bare_loop(cfg, args.trainer_steps))
        trainer += trainer_throughput(cfg, args.trainer_steps)
    t, b = statistics.median(trainer), statistics.median(bare)
    figures["trainer_over_bare"] = t / b
    print(f"(b) trainer vs bare loop on {dataset}, batch {cfg.batch_size}, {args.rounds} rounds: "
          f"trainer median {t:.0f} img/s {[round(v) for v in trainer]}, "
          f"bare median {b:.0f} img/s {[round(v) for v in bare]}, ratio {t / b:.3f}")
    if getattr(args, "alexnet", False):
        from .bench_gpu import bench_alexnet
        figures.update({f"alexnet_{k}": v for k, v in bench_alexnet().items()})
    return figures
