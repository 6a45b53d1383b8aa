"""The full-scale NAT step (AlexNet, 224 px) timed on synthetic batches.

`nat_step_timer` builds the model and optimiser once and returns a function
that times one training step, with or without re-solving the assignment. It
uses what the trainer uses on a GPU: bf16 autocast and channels_last, targets
generated on the device, the Hungarian algorithm on the CPU. `bench_alexnet`
prints the NAT step against the same step with fixed targets; `plan` uses the
timer to turn a few real steps into a time estimate.
"""
import statistics
import time

import torch

from .assign import Assignment
from .data import augment
from .models import build_model
from .targets import TargetStore


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def nat_step_timer(cfg, batch: int, device: str = None, n: int = None, images: torch.Tensor = None):
    """-> step(reassign: bool) -> seconds for one forward/assign/loss/backward/SGD step of
    cfg's model; n targets (default 8 batches). Each step's batch is drawn from `images`
    ((N, 3, L, L) uint8, augmented as in training, outside the timed part) or, without them,
    is one fixed random (batch, 3, S, S) tensor. step.solve_s lists the seconds each
    reassigning step spent solving and applying the assignment (the only extra work; on a
    GPU it also waits for the forward pass, since the solver reads z on the CPU)."""
    device = device or default_device()
    cuda = device.startswith("cuda")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device).train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    n = n or 8 * batch
    targets, assignment = TargetStore(n, cfg.d, cfg.seed).to(device), Assignment(n, n, cfg.seed)
    x = torch.rand(batch, 3, cfg.image_size, cfg.image_size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(cfg.seed)
    bf16 = cfg.bf16 and cuda  # bf16 autocast on GPUs only; the CPU path stays the fp32 reference

    def step(reassign: bool) -> float:
        nonlocal x
        idx = torch.randperm(n, generator=gen)[:batch]
        if images is not None:
            x = augment(images[idx % len(images)].to(device), cfg.image_size, cfg.crop_min, gen)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            z = model(x).float()
        if reassign:
            ta = time.perf_counter()
            assignment.apply(idx, assignment.solve(idx, z.detach(), targets))
            step.solve_s.append(time.perf_counter() - ta)
        loss = (z - targets[assignment.table[idx]]).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t

    step.solve_s = []
    return step


def bench_alexnet(batch: int = None, repeats: int = None, device: str = None, cfg=None) -> dict:
    """AlexNet 224 px NAT step vs the same step with fixed targets (interleaved, medians).
    Defaults: batch 256 and 10 repeats on a GPU; batch 8 and 3 repeats on a CPU (< 1 min)."""
    from .train import PRESETS, TrainConfig
    device = device or default_device()
    cpu = device == "cpu"
    batch = batch or (8 if cpu else 256)
    repeats = repeats or (3 if cpu else 10)
    cfg = cfg or TrainConfig(**PRESETS["imagenet"])
    step = nat_step_timer(cfg, batch, device)
    step(True), step(False)  # warm-up (cuDNN autotuning, allocator)
    nat, fixed = [], []
    for _ in range(repeats):
        nat.append(step(True))
        fixed.append(step(False))
    name = torch.cuda.get_device_name() if not cpu else f"cpu ({torch.get_num_threads()} threads)"
    figures = {"device": name,
               "model": cfg.model, "image_size": cfg.image_size, "d": cfg.d, "batch": batch, "repeats": repeats,
               "bf16": bool(cfg.bf16 and not cpu), "channels_last": not cpu,
               "nat_step_s": statistics.median(nat), "fixed_step_s": statistics.median(fixed)}
    figures["nat_images_per_s"] = batch / figures["nat_step_s"]
    figures["fixed_images_per_s"] = batch / figures["fixed_step_s"]
    figures["nat_over_fixed_time"] = figures["nat_step_s"] / figures["fixed_step_s"]
    print(f"AlexNet {cfg.image_size}px NAT step on {figures['device']}, batch {batch}, median of {repeats}: "
          f"NAT {figures['nat_images_per_s']:.1f} img/s, fixed targets {figures['fixed_images_per_s']:.1f} img/s, "
          f"NAT/fixed time {figures['nat_over_fixed_time']:.3f}")
    return figures
