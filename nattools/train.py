"""The training loop: config, data, model, targets, assignment, SGD, checkpoints.

Read `train` top to bottom: it is the whole method. A run's state lives in one
checkpoint (model, optimiser, assignment table, position); every random choice
is a function of (seed, epoch, step or sample index), so a resumed run takes
exactly the same steps as one that was never interrupted.
"""
import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from . import data as D
from .assign import Assignment
from .evaluate import uniformity
from .models import INPUTS, MODELS, build_model
from .targets import TargetStore, discrete_targets
from .plan import plan  # noqa: F401  (python -m nattools train --dry-run)


OBJECTIVES = ("nat", "square", "softmax")


@dataclass
class TrainConfig:
    """Defaults are the scaled-down CIFAR-10 recipe (small net, 32 px, Sobel), tuned on the
    validation split: data/results/tuning/README.md."""
    name: str = "cifar10_nat"
    dataset: str = "cifar10"        # cifar10 | digits | imagefolder | stl10
    data_root: str = ""             # folder of the data; default $NATTOOLS_DATA or ~/.cache/nattools
    download: bool = False          # let torchvision download the dataset
    val_fraction: float = 0.1       # carved out of train (where there is no official split)
    limit: int = 0                  # train on `limit` samples drawn with a fixed seed (0 = all)
    model: str = "small"            # small | alexnet
    width: int = 32                 # small net: conv widths w-2w-3w-3w-2w
    hidden: int = 512               # small net: width of the head's hidden layer (0 = none: pooled features -> linear)
    input: str = "sobel"            # sobel | grey | rgb
    image_size: int = 32
    crop_min: float = 0.2           # random crops keep at least this fraction of the area
    jitter: float = 0.0             # brightness and contrast jitter strength (0 = off), as ColorJitter's
    views: int = 1                  # augmented views of each image per step, all fitted to its one target
    d: int = 128                    # embedding / target dimension
    k: int = 0                      # number of targets; 0 = n (one per sample)
    objective: str = "nat"          # nat | square, softmax: supervised baselines that use labels (d = classes)
    targets: str = "sphere"         # sphere (continuous) | discrete (k_codes one-hot/codes)
    k_codes: int = 10
    epochs: int = 36                # what 75 minutes hold on a 2-core CPU for 50,000 images (tuning README)
    batch_size: int = 256
    lr: float = 0.05
    momentum: float = 0.9
    ema: float = 0.0                # keep an exponential moving average of the weights with this decay per
                                    # step (0 = off); the average is then the run's result (checkpoint, kNN)
    weight_decay: float = 2e-3
    schedule: str = "cosine"        # cosine | constant
    reassign_every: int = 3         # solve the assignment on every batch of every N-th epoch; 0 = never.
                                    # The paper's 3: in between, the network fits fixed targets
    seed: int = 0
    workers: int = 2
    device: str = "auto"            # auto | cpu | cuda
    bf16: bool = False              # bf16 autocast (GPU)
    out: str = "data"               # checkpoints/ and results/ go here
    ckpt_every: int = 0             # also checkpoint every N steps (0 = at the end of each epoch only)
    snapshot_every: int = 0         # also keep the weights of every N-th epoch: NAME_epochE.pt (0 = never)
    max_steps: int = 0              # stop after N steps in total (0 = run all epochs)
    resume: bool = True             # continue from out/checkpoints/name.pt if it exists
    eval_knn: bool = True           # kNN-20 on the validation split at the end

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.out) / "checkpoints" / f"{self.name}.pt"

    @property
    def results_path(self) -> Path:
        return Path(self.out) / "results" / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        return Path(self.out) / "results" / f"{self.name}.jsonl"

    def validate(self, n: int = None) -> "TrainConfig":
        """Raise ValueError naming the bad value and the fix; n = training-set size if known."""
        def bad(msg):
            raise ValueError(f"bad config: {msg}")
        if self.dataset not in D.DATASETS:
            bad(f"unknown dataset {self.dataset!r}; choose one of {D.DATASETS}")
        if self.model not in MODELS:
            bad(f"unknown model {self.model!r}; choose one of {MODELS}")
        if self.input not in INPUTS:
            bad(f"unknown input {self.input!r}; choose one of {INPUTS}")
        if self.objective not in OBJECTIVES:
            bad(f"unknown objective {self.objective!r}; choose one of {OBJECTIVES}")
        if self.targets not in ("sphere", "discrete"):
            bad(f"unknown targets {self.targets!r}; choose 'sphere' or 'discrete'")
        if self.schedule not in ("cosine", "constant"):
            bad(f"unknown schedule {self.schedule!r}; choose 'cosine' or 'constant'")
        if self.d < 2:
            bad(f"d={self.d}: targets live on the sphere S^(d-1), so d must be >= 2")
        if not self.lr > 0 or not math.isfinite(self.lr):
            bad(f"lr={self.lr}: the learning rate must be a positive number, e.g. --lr 0.05")
        if self.batch_size < 2:
            bad(f"batch_size={self.batch_size}: batch norm and the assignment need at least 2 samples per batch")
        if self.epochs < 1:
            bad(f"epochs={self.epochs}: train for at least 1 epoch")
        if not 0 <= self.ema < 1:
            bad(f"ema={self.ema}: the decay of the weight average must lie in [0, 1), e.g. 0.99; 0 = off")
        if not 0 <= self.jitter < 1:
            bad(f"jitter={self.jitter}: brightness and contrast factors are drawn from [1 - jitter, 1 + jitter], "
                "so jitter must lie in [0, 1), e.g. 0.4; 0 = off")
        if self.views < 1:
            bad(f"views={self.views}: each image needs at least 1 augmented view per step")
        if self.reassign_every < 0:
            bad(f"reassign_every={self.reassign_every}: use 0 (never) or a positive number of epochs")
        if self.model == "small" and self.width < 1:
            bad(f"width={self.width} must be positive")
        if self.model == "small" and self.hidden < 0:
            bad(f"hidden={self.hidden} must be 0 (no hidden layer) or positive")
        if n is not None:
            if self.batch_size > n:
                bad(f"batch_size={self.batch_size} > n={n} training samples; lower --batch_size")
            if self.k and self.k < n:
                bad(f"k={self.k} < n={n}: NAT needs one target per sample; set --k 0 (k = n) or larger")
            if self.targets == "discrete" and not 1 <= self.k_codes <= n:
                bad(f"k_codes={self.k_codes} must lie in [1, n={n}]")
        return self


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lr
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def should_reassign(cfg: TrainConfig, epoch: int) -> bool:
    return cfg.reassign_every > 0 and epoch % cfg.reassign_every == 0


def build_targets(cfg: TrainConfig, k: int):
    """The target store: generated on demand (continuous) or a dense (k, d) tensor (discrete)."""
    if cfg.targets == "discrete":
        return discrete_targets(k, cfg.k_codes, cfg.d, seed=cfg.seed)
    return TargetStore(k, cfg.d, seed=cfg.seed)


def save_atomic(obj, path: Path) -> None:
    """Write to a temporary file, flush it to disk, then rename: a kill mid-save
    leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(text: str, path: Path) -> None:
    """The same for the JSON results and logs: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def versions() -> dict:
    import torchvision
    from . import __version__
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": torchvision.__version__, "nattools": __version__}


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if sha.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_checkpoint(path, device: str = "cpu"):
    """-> (model, cfg). Safe: weights_only=True, so loading never runs code from the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=device, weights_only=True)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in state["config"].items() if k in fields})
    model = build_model(cfg)
    model.load_state_dict(state.get("averaged", state["model"]))  # the weight average, if the run kept one
    return model.to(device).eval(), cfg


def _distributed(device: str):
    """(rank, world) under torchrun, else (0, 1). NCCL between GPUs, gloo on CPUs."""
    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _all_gather(t: torch.Tensor, world: int) -> list:
    """Every rank's t (the same shape on every rank), as CPU tensors in rank order."""
    if world == 1:
        return [t]
    if dist.get_backend() == "nccl":  # NCCL only moves CUDA tensors
        t = t.cuda()
    out = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(out, t)
    return [o.cpu() for o in out]


def _same_on_all_ranks(value, world: int, what: str) -> list:
    """Gather a small picklable value from every rank; raise on every rank if they differ."""
    values = [value]
    if world > 1:
        values = [None] * world
        dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise RuntimeError(f"ranks disagree on {what}: {values}")
    return values


def table_digest(assignment: Assignment) -> str:
    """A short fingerprint of the sample -> target table (equal tables, equal digests)."""
    return hashlib.sha256(assignment.table.numpy().tobytes()).hexdigest()[:16]


# Named recipes; command-line options override them.
# imagenet: the paper's setting as this project's issue #5 gives it (Bojanowski & Joulin, ICML 2017,
# arXiv:1704.05310, and its code): AlexNet with batch norm on Sobel-filtered grey images, 224 px
# crops, SGD, batch 256, the assignment re-solved every 3 epochs, d = 4096. Not in that list, so
# our choices and not the paper's: epochs, lr 0.05 with a cosine schedule, crop scale, bf16.
# batch_size is per process: on 8 GPUs, --batch_size 32 keeps the paper's 256 images per step.
# stl10 is not in the paper: the small net at 96 px on the 100,000 unlabeled images, our recipe.
PRESETS = {
    "cifar10": {},
    "digits": {"name": "digits_nat", "dataset": "digits", "epochs": 5, "batch_size": 128, "workers": 0,
               "crop_min": 0.5},
    "stl10": {"name": "stl10_nat", "dataset": "stl10", "image_size": 96, "width": 64, "crop_min": 0.3,
              "epochs": 100, "batch_size": 256, "reassign_every": 3, "workers": 8},
    "imagenet": {"name": "imagenet_nat", "dataset": "imagefolder", "model": "alexnet", "input": "sobel",
                 "image_size": 224, "d": 4096, "crop_min": 0.08, "epochs": 100, "batch_size": 256,
                 "lr": 0.05, "momentum": 0.9, "reassign_every": 3, "workers": 8, "bf16": True,
                 "val_fraction": 0.0, "ckpt_every": 1000},
}

# Fields a resumed run must share with its checkpoint (others, like epochs or workers, may change).
DEFAULTS = dataclasses.asdict(TrainConfig())
RESUME_FIELDS = ("dataset", "limit", "val_fraction", "model", "width", "hidden", "input", "image_size", "d", "k",
                 "targets", "k_codes", "seed", "batch_size", "ema")


def train(cfg: TrainConfig, on_step=None, command: str = None, progress: bool = True) -> dict:
    """Train NAT as cfg says; returns the results dict (also written to cfg.results_path).

    on_step(global_step, loss) is called after every optimiser step (tests use it
    to simulate a kill). progress=False drops the per-epoch bar and keeps the one
    line per epoch (a book page keeps neither stderr nor closed progress widgets)."""
    cfg.validate()
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    own_group = not dist.is_initialized()
    rank, world = _distributed(device)
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    start_time = time.time()

    # Data: (x, label, index); labels are never used by the loss.
    base = D.load(cfg.dataset, "train", cfg.data_root or None, cfg.val_fraction, cfg.download)
    if cfg.objective != "nat" and cfg.d != len(base.classes):
        raise ValueError(f"bad config: objective {cfg.objective!r} predicts the {len(base.classes)} classes; "
                         f"set --d {len(base.classes)}")
    if cfg.limit:
        base = D.subset(base, cfg.limit)
    train_set = D.training_set(base, cfg.image_size, cfg.workers, progress=progress and rank == 0)  # (uint8 image, label, index)
    n = len(train_set)
    if isinstance(train_set, D.InMemory) and device.startswith("cuda"):
        train_set.images = train_set.images.to(device)  # 50,000 CIFAR images: 150 MB, gathered on the GPU
    if world > 1 and n < world * cfg.batch_size:  # every rank needs a full batch per step
        raise ValueError(f"bad config: {world} processes x batch_size {cfg.batch_size} = {world * cfg.batch_size} "
                         f"samples per step, but the training set has only n={n}"
                         + (" (more processes than samples)" if world > n else "")
                         + "; use fewer processes (--nproc_per_node) or a smaller --batch_size")
    cfg.validate(n)
    k = cfg.k or n
    steps_per_epoch = (n // world) // cfg.batch_size
    total_steps = steps_per_epoch * cfg.epochs

    # Model, targets, assignment, optimiser.
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device, memory_format=torch.channels_last)  # faster convs on CPUs and GPUs
    targets = build_targets(cfg, k).to(device)  # a TargetStore then generates rows on the device
    assignment = Assignment(n, k, seed=cfg.seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    averaged = None  # the moving average of the weights (BatchNorm statistics included), if cfg.ema
    if cfg.ema:
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    epoch, step_in_epoch, history = 0, 0, []

    ckpt = cfg.checkpoint_path
    if cfg.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        saved = {**DEFAULTS, **state["config"]}  # fields added since the checkpoint was written: defaults
        diff = [f"{f}: {saved.get(f)!r} in checkpoint, {getattr(cfg, f)!r} now"
                for f in RESUME_FIELDS if saved.get(f) != getattr(cfg, f)]
        if diff:
            raise ValueError(f"checkpoint {ckpt} is from another config ({'; '.join(diff)}); "
                             f"use another --name or --resume false")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        assignment.load_state_dict(state["assignment"])
        if averaged is not None:
            averaged.module.load_state_dict(state["averaged"])
            averaged.n_averaged.fill_(1)  # > 0: go on averaging (0 would restart from a copy)
        epoch, step_in_epoch, history = state["epoch"], state["step"], state["history"]
        if step_in_epoch and state.get("world", 1) != world:  # mid-epoch, another number of processes:
            seen = step_in_epoch * cfg.batch_size * state.get("world", 1)  # a prefix of the epoch's shuffle
            step_in_epoch = seen // (cfg.batch_size * world)           # (EpochSampler interleaves ranks)
        if rank == 0:
            print(f"resuming {ckpt} at epoch {epoch}, step {step_in_epoch}")
    # Every rank must start from the same point (with several machines, --out on a disk they all see).
    _same_on_all_ranks((epoch, step_in_epoch, table_digest(assignment)), world, "where to start (epoch, step, table)")
    net = model
    if world > 1:  # averages gradients; BN statistics stay per rank, running buffers follow rank 0
        ids = [torch.device(device)] if device.startswith("cuda") else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    final_model = model if averaged is None else averaged.module  # the weights the run hands out

    def checkpoint(epoch, step):
        if rank == 0:
            extra = {} if averaged is None else {"averaged": averaged.module.state_dict()}
            save_atomic({"config": dataclasses.asdict(cfg), "model": model.state_dict(), **extra,
                         "optimizer": opt.state_dict(), "assignment": assignment.state_dict(),
                         "epoch": epoch, "step": step, "world": world, "history": history,
                         "versions": versions()}, ckpt)

    global_step = epoch * steps_per_epoch + step_in_epoch
    while epoch < cfg.epochs:
        model.train()
        reassign = should_reassign(cfg, epoch) and cfg.objective == "nat"
        sampler = D.EpochSampler(n, cfg.seed, epoch, rank, world, start=step_in_epoch * cfg.batch_size)
        loader = D.batches(train_set, sampler, cfg.batch_size, cfg.workers, device)
        sums = {"loss": 0.0, "changed": 0, "seen": 0, "assign_s": 0.0}
        z_sample = []
        t0 = time.time()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=rank != 0 or not progress,
                   initial=step_in_epoch, total=steps_per_epoch, leave=False)
        for x, y, idx in bar:
            step_seed = D.seed_of(cfg.seed, epoch, step_in_epoch, rank)  # randomness = f(position)
            torch.manual_seed(step_seed)                                    # dropout
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, global_step, total_steps)
            x = x.to(device, non_blocking=True)
            if cfg.views > 1:  # the batch, views times over; one draw of crops and flips for all
                x = x.repeat(cfg.views, 1, 1, 1)                              # (v*b, 3, L, L)
            x = D.augment(x, cfg.image_size, cfg.crop_min,
                          torch.Generator(device).manual_seed(step_seed), jitter=cfg.jitter)  # (v*b,3,S,S) float
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=cfg.bf16):
                z_views = net(x, normalize=cfg.objective != "softmax").float()  # (v*b, d), unit rows
            z_views = z_views.view(cfg.views, len(idx), -1)                      # (v, b, d)
            # one point per image: its views' mean, back on the sphere (the view itself when v = 1)
            z = F.normalize(z_views.mean(0), dim=1) if cfg.views > 1 else z_views[0]  # (b, d)
            if cfg.objective == "nat":
                if reassign:  # 2. re-solve the batch's assignment before the loss
                    ta = time.perf_counter()
                    new = assignment.solve(idx, z.detach(), targets, rank, world)
                    for i, t in zip(_all_gather(idx, world), _all_gather(new, world)):
                        sums["changed"] += assignment.apply(i, t)
                    sums["assign_s"] += time.perf_counter() - ta
                c = targets[assignment.table[idx]].to(device, non_blocking=True)  # (b, d)
                loss = (z_views - c).pow(2).sum(2).mean()                         # 3. ||z - c||^2, every view
            else:  # supervised baselines: the labels give the targets
                y = torch.as_tensor(y, device=device).repeat(cfg.views)
                z_all = z_views.flatten(0, 1)                                     # (v*b, d)
                loss = F.cross_entropy(z_all, y) if cfg.objective == "softmax" else \
                    (z_all - F.one_hot(y, cfg.d).float()).pow(2).sum(1).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at epoch {epoch}, step {step_in_epoch}; stopped. The last good "
                    f"checkpoint {ckpt} is kept. Lower --lr (now {cfg.lr}) or check the input images.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if averaged is not None:
                averaged.update_parameters(model)
            step_in_epoch += 1
            global_step += 1
            sums["loss"] += loss.item()
            sums["seen"] += len(idx)
            if sum(len(z_) for z_ in z_sample) < 2048:
                z_sample.append(z.detach().float().cpu())
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if on_step is not None:
                on_step(global_step, loss.item())
            if cfg.ckpt_every and global_step % cfg.ckpt_every == 0 and step_in_epoch < steps_per_epoch:
                checkpoint(epoch, step_in_epoch)
            if cfg.max_steps and global_step >= cfg.max_steps:
                break
        bar.close()
        steps = max(1, sums["seen"] // cfg.batch_size)
        dt = time.time() - t0
        z_sample = torch.cat(z_sample) if z_sample else torch.zeros(0, cfg.d)
        if step_in_epoch < steps_per_epoch:  # stopped early by max_steps
            checkpoint(epoch, step_in_epoch)
            break
        history.append({"epoch": epoch + 1, "loss": sums["loss"] / steps,
                        "changed": sums["changed"] / max(1, sums["seen"] * world),  # changes counted on all ranks
                        "uniformity": uniformity(z_sample) if len(z_sample) > 1 else float("nan"),
                        "images_per_s": sums["seen"] * world / dt, "assign_s": sums["assign_s"],
                        "epoch_s": dt, "lr": lr_at(cfg, global_step, total_steps), "reassigned": reassign})
        epoch, step_in_epoch = epoch + 1, 0
        checkpoint(epoch, 0)
        if rank == 0 and cfg.snapshot_every and epoch % cfg.snapshot_every == 0:  # weights only, for studies
            save_atomic({"config": dataclasses.asdict(cfg), "model": final_model.state_dict(), "epoch": epoch},
                        ckpt.with_name(f"{cfg.name}_epoch{epoch}.pt"))
        if rank == 0:
            # the whole log from `history` (resumed with the checkpoint), so that a fresh run never
            # continues the log of an earlier run with the same name
            write_text_atomic("".join(json.dumps(h) + "\n" for h in history), cfg.log_path)
            h = history[-1]
            print(f"epoch {h['epoch']}: loss {h['loss']:.4f}  changed {h['changed']:.3f}  "
                  f"uniformity {h['uniformity']:.3f}  {h['images_per_s']:.0f} img/s")

    # Every rank must end with the same table (checked); this also holds every rank here
    # until all have finished training, so rank 0's evaluation below keeps nobody at a collective.
    digests = _same_on_all_ranks(table_digest(assignment), world, "the assignment table")
    results = {"name": cfg.name, "command": command or " ".join(sys.argv), "config": dataclasses.asdict(cfg),
               "commit": git_commit(), "versions": versions(), "n": n, "k": k, "world": world,
               "wall_time_s": time.time() - start_time, "epochs_done": epoch, "history": history}
    results["table_digests"] = digests  # one per rank, all equal
    if rank == 0 and cfg.eval_knn and epoch == cfg.epochs:
        results["knn20_val"] = evaluate_knn(final_model, cfg, device)
    if rank == 0:
        write_text_atomic(json.dumps(results, indent=1), cfg.results_path)
    if world > 1 and own_group:
        dist.destroy_process_group()
    return results


def evaluate_knn(model, cfg: TrainConfig, device: str = "cpu", k: int = 20) -> float:
    """kNN-20 (cosine) on the embedding: train split as memory, val split as queries
    (nan when the run has no validation split)."""
    from .evaluate import evaluate_model
    if cfg.val_fraction == 0 and not (cfg.dataset == "cifar10" and D.has_official_test(cfg.data_root or None)):
        return float("nan")
    return evaluate_model(model, cfg, knn_k=k, probe_epochs=0, device=device)[f"knn{k}_embed"]
