"""`python -m nattools train ... --dry-run`: what a run will cost, before it starts. The plan counts steps,
sizes the memory (model, optimiser, a rough activation figure, the assignment table; targets cost nothing
per row), and turns a few real steps of the model on synthetic batches, on this machine, into a time
estimate. It needs no dataset: where the folder is missing it says so and uses the known size."""
import os
import time
from pathlib import Path

import torch

from . import data as D
from .bench import default_device, nat_step_timer
from .config import ConfigError
from .models import build_model
from .train import resolve_precision

# Training-set sizes of the datasets the presets are for (used when the data is not here).
KNOWN_SIZES = {"imagefolder": ("ImageNet ILSVRC-2012 train", 1_281_167), "stl10": ("STL-10 unlabeled", 100_000),
               "cifar10": ("CIFAR-10 train", 50_000), "digits": ("scikit-learn digits", 1_797),
               "tinyimagenet": ("Tiny ImageNet train", 100_000)}


def dataset_size(cfg) -> tuple:
    """-> (n training samples, where the figure comes from)."""
    name, known = KNOWN_SIZES[cfg.dataset]
    if cfg.dataset == "imagefolder":
        root = Path(cfg.data_root).expanduser() if cfg.data_root else None
        if root is None or not root.is_dir():
            return known, (f"{name}: {known:,} images (known size; data folder "
                           f"{'not given (--data_root)' if root is None else str(root) + ' is missing'})")
        n = len(D.load(cfg.dataset, "train", str(root), cfg.val_fraction))  # the trainer's reader and split
        return n, f"counted in {root / 'train' if (root / 'train').is_dir() else root}"
    try:
        n = len(D.load(cfg.dataset, "train", cfg.data_root or None, cfg.val_fraction, download=False))
        return n, f"{name}: loaded"
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        return known, f"{name}: {known:,} (known size; not found here: {str(e).split(';')[0]})"


def activation_bytes(model, cfg, bytes_per_value: int) -> int:
    """Rough activation memory of one sample kept for backward: the outputs of every leaf module."""
    total = 0

    def hook(_, __, out):
        nonlocal total
        total += out.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model.eval()(torch.rand(2, 3, cfg.image_size, cfg.image_size))
    finally:
        for h in handles:
            h.remove()
    return total // 2 * bytes_per_value


def _sig(x: float) -> float:
    return float(f"{x:.3g}")


def plan(cfg, world: int = None, measure_steps: int = 2, measure_batch: int = None, device: str = None) -> dict:
    """The plan of a run as a dict (printed as JSON by --dry-run). Times a few real steps on
    `device` (default: the GPU if there is one) with a batch of cfg.batch_size (AlexNet on a CPU: 8)."""
    world = world or int(os.environ.get("WORLD_SIZE", 1))
    n, n_source = dataset_size(cfg)
    k = cfg.k or n
    if cfg.limit:
        n = min(n, cfg.limit)
    per_rank = n // world
    steps = per_rank // cfg.batch_size
    if steps == 0:
        raise ConfigError(f"{world} processes x batch_size {cfg.batch_size} > n={n} samples; lower --batch_size")
    reassign_epochs = sum(1 for e in range(cfg.epochs) if cfg.reassign_every and e % cfg.reassign_every == 0)

    model = build_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    device = device or default_device()
    cuda, precision = device.startswith("cuda"), resolve_precision(cfg.precision, device)
    act = activation_bytes(model, cfg, 2 if precision == "bf16" else 4) * cfg.batch_size * cfg.views
    mb = 2 ** -20
    memory = {
        "model_mb": params * 4 * mb, "grads_mb": params * 4 * mb,
        "sgd_momentum_mb": params * 4 * mb if cfg.momentum else 0.0,
        "activations_per_gpu_mb_rough": act * mb,
        "assignment_table_mb": (n + k) * 8 * mb,      # table (n) + owner (k), int64, on every rank
        "targets_per_row_bytes": 0,                    # generated from (seed, id): TargetStore
        "targets_batch_mb": cfg.batch_size * cfg.d * 4 * mb, "dense_targets_would_be_mb": k * cfg.d * 4 * mb,
    }

    batch = measure_batch or (min(8, cfg.batch_size) if cfg.model == "alexnet" and not cuda else cfg.batch_size)
    step = nat_step_timer(cfg, batch, device)
    step(True)  # warm-up
    t = time.perf_counter()
    nat = [step(True) for _ in range(measure_steps)]
    fixed = [step(False) for _ in range(measure_steps)]
    measured_s = time.perf_counter() - t
    nat_ips, fixed_ips = batch / min(nat), batch / min(fixed)
    images = n * cfg.epochs * cfg.views                # what the run feeds the model (every view)
    reassign_images = per_rank * world * reassign_epochs * cfg.views
    seconds_one = reassign_images / nat_ips + (images - reassign_images) / fixed_ips
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name() if cuda else f"CPU ({threads} thread{'s' if threads > 1 else ''})"
    return {
        "config": {f: getattr(cfg, f) for f in ("name", "dataset", "model", "image_size", "d", "batch_size",
                                                "views", "epochs", "reassign_every", "lr", "precision")},
        "precision": f"{precision} (--precision {cfg.precision} on {device})",
        "n": n, "n_source": n_source, "k": k, "world": world,
        "steps_per_epoch_per_rank": steps, "total_steps": steps * cfg.epochs,
        "epochs_with_reassignment": reassign_epochs,
        "parameters": params, "memory": {key: round(v, 1) for key, v in memory.items()},
        "throughput": {"device": name, "precision": precision, "batch": batch, "steps_timed": measure_steps,
                       "nat_step_ms": round(1e3 * min(nat), 1), "fixed_step_ms": round(1e3 * min(fixed), 1),
                       "nat_images_per_s": round(nat_ips, 2), "fixed_images_per_s": round(fixed_ips, 2),
                       "seconds_spent_measuring": round(measured_s, 1),
                       "what": "fastest of a few real NAT steps (forward, Hungarian, loss, backward, SGD) "
                               "on synthetic batches; data loading not included"},
        "estimate": {"what": f"hours for the whole run on devices like this {name}, assuming linear scaling",
                     "epoch_hours_on_1": _sig(seconds_one / cfg.epochs / 3600),
                     **{f"hours_on_{g}": _sig(seconds_one / g / 3600) for g in sorted({1, 8, 64, world})}},
    }
