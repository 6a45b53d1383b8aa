"""The training loop. Read `train` top to bottom: set up, resume, run the epochs, write the results; the
method itself is one call per batch, `nat_step`. A run's whole state lives in one checkpoint, and every
random choice is a function of (seed, epoch, step or sample index), so a resumed run takes exactly the
steps of one that was never interrupted."""
import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from . import data as D
from . import distributed
from .assign import Assignment
from .checkpoint import (CheckpointError, Interrupted, RunLock, check_output, contents,
                         data_digest, data_mismatch, git_commit, json_text, pending_signal, read_state,
                         resume_differences, save_atomic, signals, stop_at_steps, versions, write_text_atomic)
from .checkpoint import load_checkpoint  # noqa: F401  (nattools.train.load_checkpoint, as before)
from .config import PRESETS, SUCCESSORS, ConfigError, TrainConfig, UsageError  # noqa: F401  (PRESETS: as before)
from .deepcluster import DeepCluster
from .evaluate import evaluate_model, uniformity
from .models import build_model
from .step import Diverged, nat_step
from .sela import SeLa
from .targets import TargetStore, discrete_targets


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lr
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def should_reassign(cfg: TrainConfig, epoch: int) -> bool:
    return cfg.objective in ("nat",) + SUCCESSORS and cfg.reassign_every > 0 and epoch % cfg.reassign_every == 0


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda': PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                          "use --device cpu or auto")
    return device


def native_bf16(device: str) -> bool:
    """Does the device compute bf16 natively? A CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX (on
    other CPUs bf16 autocast is emulated: about 11x slower than fp32 on an AVX2-only EPYC)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(precision: str, device: str) -> str:
    """'auto' -> 'bf16' where the device computes it natively, else 'fp32'; 'fp32' and 'bf16' as asked."""
    return ("bf16" if native_bf16(device) else "fp32") if precision == "auto" else precision


def build_targets(cfg: TrainConfig, k: int):
    """The target store: generated on demand (continuous) or a dense (k, d) tensor (discrete)."""
    if cfg.targets == "discrete":
        return discrete_targets(k, cfg.k_codes, cfg.d, seed=cfg.seed)
    return TargetStore(k, cfg.d, seed=cfg.seed)


@dataclasses.dataclass
class Run:
    """What a run trains and checkpoints."""
    cfg: TrainConfig
    model: torch.nn.Module
    targets: object                 # TargetStore, or a (k, d) tensor for discrete targets
    assignment: Assignment
    opt: torch.optim.Optimizer
    averaged: AveragedModel = None  # the moving average of the weights (BatchNorm statistics too), if cfg.ema
    digest: str = ""                # fingerprint of the training images
    precision: str = "fp32"         # what the steps compute in: cfg.precision resolved on this device
    pseudo: object = None           # DeepCluster or SeLa: the learned pseudo-labels (their classifier: model.classifier)
    segments: list = dataclasses.field(default_factory=list)  # seconds of the earlier commands that ran it
    started: float = 0.0            # time.time() when this command started

    @classmethod
    def build(cls, cfg: TrainConfig, n: int, device: str, digest: str) -> "Run":
        torch.manual_seed(cfg.seed)
        model = build_model(cfg).to(device, memory_format=torch.channels_last)  # faster convs, CPU and GPU
        k = cfg.k or n
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) \
            if cfg.ema else None
        assignment = Assignment(n, k, cfg.seed, solver=cfg.solver)
        pseudo = {"deepcluster": lambda: DeepCluster(n, cfg.clusters, cfg.seed),
                  "sela": lambda: SeLa(n, cfg.clusters, cfg.heads, cfg.sela_lambda, cfg.seed)}.get(cfg.objective)
        return cls(cfg, model, build_targets(cfg, k).to(device), assignment, opt, averaged, digest,
                   resolve_precision(cfg.precision, device), pseudo and pseudo())

    @property
    def final_model(self) -> torch.nn.Module:
        """The weights the run hands out: the average, if it keeps one."""
        return self.model if self.averaged is None else self.averaged.module

    def save(self, epoch: int, step: int, world: int, history: list, partial: dict = None, room_only=None) -> None:
        extra = {} if self.averaged is None else {"averaged": self.averaged.module.state_dict()}
        if self.pseudo is not None:
            extra["pseudo_labels"] = self.pseudo.labels
        save_atomic({"config": dataclasses.asdict(self.cfg), "model": self.model.state_dict(), **extra,
                     "optimizer": self.opt.state_dict(), "assignment": self.assignment.state_dict(),
                     "epoch": epoch, "step": step, "world": world, "history": history, "partial": partial,
                     "data": {"n": self.assignment.n, "digest": self.digest}, "precision": self.precision, "versions": versions(),
                     "segments_s": self.wall()}, self.cfg.checkpoint_path, room_only)

    def wall(self) -> list:
        """Seconds of every command that ran this run, this one so far last."""
        return self.segments + [time.time() - self.started]

    def resume(self, state: dict, world: int) -> tuple:
        """Continue a checkpoint (resume_state's) -> (epoch, step, history, partial epoch sums)."""
        if state is None:
            return 0, 0, [], None
        mismatch = data_mismatch(state.get("data", {}), self.assignment.n, self.digest)
        if mismatch:
            raise UsageError(f"cannot resume {self.cfg.checkpoint_path}: it was trained on other images "
                             f"({mismatch}); use the same images, another --name, or --no-resume --overwrite")
        saved_precision = state.get("precision", "bf16" if state["config"].get("bf16") else "fp32")
        if saved_precision != self.precision:
            raise UsageError(f"cannot resume {self.cfg.checkpoint_path}: it was trained in {saved_precision}, this "
                             f"run would compute in {self.precision} (--precision {self.cfg.precision} on this device); "
                             f"pass --precision {saved_precision}, another --name, or --no-resume --overwrite")
        self.segments = state.get("segments_s", [])
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.assignment.load_state_dict(state["assignment"])
        if self.pseudo is not None:
            self.pseudo.labels = state["pseudo_labels"]
        if self.averaged is not None:
            self.averaged.module.load_state_dict(state["averaged"])
            self.averaged.n_averaged.fill_(1)  # > 0: go on averaging (0 would restart from a copy)
        epoch, step, partial = state["epoch"], state["step"], state.get("partial")
        if step and state.get("world", 1) != world:  # mid-epoch, another number of processes:
            step = step * state.get("world", 1) // world  # the same prefix of the epoch's shuffle
            partial = None                                 # (EpochSampler interleaves ranks)
        return epoch, step, state["history"], partial


def resume_state(cfg: TrainConfig):
    """The checkpoint this run continues (None: it starts afresh), checked before any work."""
    path = cfg.checkpoint_path
    if not path.is_file() or (not cfg.resume and cfg.overwrite):
        return None
    if not cfg.resume:
        raise UsageError(f"{path} exists (another run of this name): resume it (leave out --no-resume), "
                         f"choose another --name or --out, or pass --overwrite to replace it")
    state = read_state(path)
    if "optimizer" not in state or "assignment" not in state:
        raise CheckpointError(f"{path} holds weights only (a snapshot of epoch {state.get('epoch')}), not a run "
                              f"to resume: choose another --name, or --no-resume --overwrite to replace it")
    diff = resume_differences(state["config"], cfg)
    if diff:
        raise UsageError(f"cannot resume {path}: it was trained with other settings ({'; '.join(diff)}); "
                         f"use the same settings, another --name, or --no-resume --overwrite")
    return state


def check_run_files(cfg: TrainConfig, snapshot: Path = None) -> Path:
    """Every file the run writes, before any work. A snapshot replaces only one of this run (NAME_epoch1.pt may
    be another run's checkpoint): checked here for the epochs it keeps, and again just before it is written."""
    def own(p):
        state = contents(p)
        return "optimizer" not in state and (state.get("config") or {}).get("name") == cfg.name
    if snapshot is not None:
        return check_output(snapshot, "--snapshot_every", replaces=own)
    for path in (cfg.checkpoint_path, cfg.results_path, cfg.log_path):
        check_output(path, "--out/--name")
    for path in cfg.checkpoint_path.parent.glob(f"{cfg.name}_epoch*.pt"):
        epoch = path.stem.rsplit("_epoch", 1)[1]
        if cfg.snapshot_every and epoch.isdigit() and int(epoch) % cfg.snapshot_every == 0:
            check_output(path, "--snapshot_every", replaces=own)


def training_data(cfg: TrainConfig, device: str, world: int, progress: bool):
    """The training images as (uint8 image, label, index), in memory (on the GPU too) when they fit."""
    base = D.load(cfg.dataset, "train", cfg.data_root or None, cfg.val_fraction, cfg.download)
    if cfg.objective in ("square", "softmax") and cfg.d != len(base.classes):
        raise ConfigError(f"objective {cfg.objective!r} predicts the {len(base.classes)} classes: set --d "
                          f"{len(base.classes)}" if base.classes else "the supervised baselines need labelled images")
    if cfg.eval_knn and D.held_out(cfg.dataset, cfg.data_root or None, cfg.val_fraction):  # not after the run
        val = D.load(cfg.dataset, "val", cfg.data_root or None, cfg.val_fraction)
        if not base.classes or len(base) < 20 or not len(val):
            raise ConfigError(f"the kNN-20 at the end needs labelled images (<class>/<image> folders), 20 in the "
                              f"train split and some in val; here {len(base)} and {len(val)}"
                              f"{'' if base.classes else ', unlabelled'}: add images, or pass --no-eval_knn")
        D.check_decodes(val)
    train_set = D.training_images(base, cfg, progress)
    n = len(train_set)
    if n < world * cfg.batch_size:  # every rank needs a full batch per step
        raise ConfigError(f"{world} process(es) x batch_size {cfg.batch_size} = {world * cfg.batch_size} images "
                          f"per step, but the training set has only n={n}; lower --batch_size"
                          + (" or use fewer processes (--nproc_per_node)" if world > 1 else ""))
    cfg.validate(n)
    digest = data_digest(train_set)
    if isinstance(train_set, D.InMemory) and device.startswith("cuda"):
        train_set.images = train_set.images.to(device)  # 50,000 CIFAR images: 150 MB, gathered on the GPU
    return train_set, n, digest


def supervised_loss(z: torch.Tensor, y, cfg: TrainConfig) -> torch.Tensor:
    """The baselines that use labels: z (v, b, classes) logits (softmax) or unit outputs (square)."""
    y = torch.as_tensor(y, device=z.device).repeat(z.shape[0])
    z = z.flatten(0, 1)
    if cfg.objective == "softmax":
        return F.cross_entropy(z, y)
    return (z - F.one_hot(y, cfg.d).float()).pow(2).sum(1).mean()


def new_sums() -> dict:
    return {"loss": 0.0, "changed": 0, "seen": 0, "assign_s": 0.0, "z_sample": []}


def run_epoch(run: Run, net, train_set, epoch: int, step: int, sums: dict, history: list, device: str,
              rank: int, world: int, on_step=None, progress: bool = True) -> int:
    """Train one epoch from `step` on (sums: what the epoch has added up so far) -> the step reached."""
    cfg, model, opt = run.cfg, run.model, run.opt
    steps_per_epoch = (len(train_set) // world) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    reassign = should_reassign(cfg, epoch)
    sampler = D.EpochSampler(len(train_set), cfg.seed, epoch, rank, world, start=step * cfg.batch_size,
                             order=run.pseudo.order(epoch) if run.pseudo is not None else None)
    bar = tqdm(D.batches(train_set, sampler, cfg.batch_size, cfg.workers, device), initial=step,
               total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=rank != 0 or not progress)
    model.train()
    for x, y, idx in bar:
        global_step = epoch * steps_per_epoch + step
        if cfg.max_steps and global_step >= cfg.max_steps:
            break
        step_seed = D.seed_of(cfg.seed, epoch, step, rank)  # randomness = f(position)
        torch.manual_seed(step_seed)                          # dropout
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, global_step, total)
        x = x.to(device, non_blocking=True).repeat(cfg.views, 1, 1, 1)   # (v*b, 3, L, L): one draw for all
        x = D.augment(x, cfg.image_size, cfg.crop_min, torch.Generator(device).manual_seed(step_seed),
                      jitter=cfg.jitter).contiguous(memory_format=torch.channels_last)   # (v*b, 3, S, S)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=run.precision == "bf16"):
            z = net(x, normalize=cfg.objective not in ("softmax",) + SUCCESSORS).float().view(cfg.views, len(idx), -1)
        if cfg.objective == "nat":
            out = nat_step(z[0] if cfg.views == 1 else z, idx, run.assignment, run.targets, reassign, rank, world)
            loss = out.loss
            sums["changed"] += out.changed
            sums["assign_s"] += out.solve_s
        elif run.pseudo is not None:  # z (v, b, d): projections; the classifier reads them, kNN their directions
            loss = run.pseudo.loss(model.classifier, z, idx)
            z = F.normalize(z, dim=-1)
        else:
            loss = supervised_loss(z, y, cfg)
        if not torch.isfinite(loss):
            raise Diverged(f"loss is {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if run.averaged is not None:
            run.averaged.update_parameters(model)
        step += 1
        sums["loss"] += loss.item()
        sums["seen"] += len(idx)
        if sum(len(s) for s in sums["z_sample"]) < 2048:
            sums["z_sample"].append(F.normalize(z.detach().mean(0), dim=1).cpu() if cfg.views > 1 else
                                    z[0].detach().cpu())
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if on_step is not None:
            on_step(global_step + 1, loss.item())
        if cfg.ckpt_every and (global_step + 1) % cfg.ckpt_every == 0 and step < steps_per_epoch and rank == 0:
            run.save(epoch, step, world, history, sums)
        if pending_signal():  # SIGINT or SIGTERM (workers forked here only note it): stop at this boundary
            break
    bar.close()
    return step


@torch.no_grad()
def project_all(run: Run, train_set, device: str, batch: int = 1024) -> torch.Tensor:
    """(n, d) projections of every training image as stored (centre crop, no augmentation), BN in eval mode."""
    cfg, model = run.cfg, run.model
    chunks = train_set.images.split(batch) if isinstance(train_set, D.InMemory) else \
        (x for x, _, _ in torch.utils.data.DataLoader(train_set, batch_size=batch, num_workers=cfg.workers))
    o, out = (D.load_size(cfg.image_size) - cfg.image_size) // 2, []
    model.eval()
    for x in chunks:
        x = x[..., o:o + cfg.image_size, o:o + cfg.image_size].to(device).float().div_(255)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=run.precision == "bf16"):
            out.append(model.project(x.contiguous(memory_format=torch.channels_last)).float())
    model.train()
    return torch.cat(out)


def solve_pseudo_labels(run: Run, train_set, epoch: int, device: str, world: int) -> dict:
    """DeepCluster's k-means or SeLa's Sinkhorn on every training image, at the start of a re-solving epoch;
    rank 0's labels go to every rank. -> what the epoch logs: the share of labels that changed, and the
    normalised mutual information with the previous labels (k-means' cluster ids are arbitrary: NMI is
    the measure that means something there), and the seconds spent."""
    from sklearn.metrics import normalized_mutual_info_score
    t = time.perf_counter()
    p = project_all(run, train_set, device)                                        # (n, d)
    with torch.no_grad():
        new = run.pseudo.solve(F.normalize(p, dim=1), run.model.classifier(p), epoch)
    new, old = distributed.broadcast(new, world), run.pseudo.labels
    run.pseudo.labels = new
    run.pseudo.after_solve(run.model.classifier, run.opt, epoch)
    nmi = normalized_mutual_info_score(old.reshape(-1, len(p))[0].numpy(), new.reshape(-1, len(p))[0].numpy())
    return {"solve": {"changed": float((old != new).float().mean()), "nmi": float(nmi)},
            "assign_s": time.perf_counter() - t}


def epoch_record(run: Run, epoch: int, sums: dict, seconds: float, world: int, steps_per_epoch: int) -> dict:
    """One line of the history: loss, share of changed targets, uniformity, speed."""
    cfg = run.cfg
    z = torch.cat(sums["z_sample"]) if sums["z_sample"] else torch.zeros(0, cfg.d)
    return {"epoch": epoch + 1, "loss": sums["loss"] / max(1, sums["seen"] // cfg.batch_size),
            "changed": sums["changed"] / max(1, sums["seen"] * world),  # changes are counted on all ranks
            "uniformity": uniformity(z) if len(z) > 1 else float("nan"),
            "images_per_s": sums["seen"] * world / seconds, "assign_s": sums["assign_s"], "epoch_s": seconds,
            "lr": lr_at(cfg, (epoch + 1) * steps_per_epoch, steps_per_epoch * cfg.epochs),
            "reassigned": should_reassign(cfg, epoch), **sums.get("solve", {})}


def train(cfg: TrainConfig, on_step=None, command: str = None, progress: bool = True) -> dict:
    """Train NAT as cfg says -> the results dict (also written to cfg.results_path). on_step(global_step,
    loss) runs after every optimiser step (tests simulate a kill with it); progress=False: no per-epoch bar.
    SIGINT and SIGTERM save the run at the next step boundary, then raise Interrupted."""
    start_time = time.time()
    cfg.validate()
    with distributed.group(pick_device(cfg.device)) as (device, rank, world):
        if rank == 0:
            check_run_files(cfg)
        with RunLock(cfg.checkpoint_path) if rank == 0 else contextlib.nullcontext(), signals():
            try:
                return _train(cfg, device, rank, world, on_step, command, progress, start_time)
            except Interrupted as e:  # what is on disk: the run at its last step boundary
                state = contents(cfg.checkpoint_path)
                kept = f"{cfg.checkpoint_path} holds epoch {state['epoch']}, step {state['step']}" \
                    if "step" in state else "nothing was saved yet"
                raise Interrupted(e.signum, f"{e}: {kept}; resume with the same command") from None


def _train(cfg, device, rank, world, on_step, command, progress, start_time) -> dict:
    say = print if rank == 0 else (lambda *a, **k: None)
    state = resume_state(cfg)
    done = contents(cfg.results_path) if state and state["epoch"] == cfg.epochs else {}
    if done.get("epochs_done") == cfg.epochs and ("knn20_val" in done or not cfg.eval_knn):
        say(f"{cfg.name} is done: {cfg.checkpoint_path} and {cfg.results_path} are kept as they are")
        return done
    train_set, n, digest = training_data(cfg, device, world, progress and rank == 0)
    run = Run.build(cfg, n, device, digest)
    run.started = start_time
    epoch, step, history, partial = run.resume(state, world)
    if rank == 0:  # room for a whole checkpoint before training: its state, momentum buffers and a snapshot to come
        run.save(epoch, step, world, history, partial, room_only=2 * sum(t.nbytes for t in run.model.parameters()))
    if epoch or step:
        say(f"resuming {cfg.checkpoint_path} at epoch {epoch}, step {step}")
    where = (epoch, step, distributed.table_digest(run.assignment))  # every rank starts from the same point
    distributed.same_on_all_ranks(where, world, "where to start (epoch, step, table)")
    say(f"training {cfg.name} on {device} in {run.precision}: checkpoint {cfg.checkpoint_path}, "
        f"results {cfg.results_path}")
    net = run.model
    if world > 1:  # averages gradients; BN statistics stay per rank, running buffers follow rank 0
        ids = [torch.device(device)] if device.startswith("cuda") else None
        net = torch.nn.parallel.DistributedDataParallel(run.model, device_ids=ids)
    steps_per_epoch = (n // world) // cfg.batch_size
    stop_at_steps(True)  # from here a signal waits for a step boundary, and the run is saved there
    while epoch < cfg.epochs and not pending_signal():
        sums, t0 = partial or new_sums(), time.time()
        partial = None
        if run.pseudo is not None and step == 0 and should_reassign(cfg, epoch):
            sums.update(solve_pseudo_labels(run, train_set, epoch, device, world))
        try:
            step = run_epoch(run, net, train_set, epoch, step, sums, history, device, rank, world, on_step, progress)
        except Diverged as e:
            raise Diverged(f"training diverged at epoch {epoch + 1} ({e}); the last good checkpoint "
                           f"{cfg.checkpoint_path} is kept. Lower --lr (now {cfg.lr}) or check the images") from e
        if step < steps_per_epoch:  # stopped by max_steps or a signal
            if rank == 0:
                run.save(epoch, step, world, history, sums)
            break
        history.append(epoch_record(run, epoch, sums, time.time() - t0, world, steps_per_epoch))
        epoch, step = epoch + 1, 0
        if rank == 0:
            run.save(epoch, 0, world, history)
            if cfg.snapshot_every and epoch % cfg.snapshot_every == 0:  # weights only, for studies
                save_atomic({"config": dataclasses.asdict(cfg), "model": run.final_model.state_dict(), "epoch": epoch,
                             "data": {"n": n, "digest": digest}},  # eval checks the images it scores against these
                            check_run_files(cfg, cfg.checkpoint_path.with_name(f"{cfg.name}_epoch{epoch}.pt")))
            # the whole log from `history`, so a fresh run never continues an older log of the same name
            write_text_atomic("".join(json_text(h, None) + "\n" for h in history), cfg.log_path)
            h = history[-1]
            say(f"epoch {h['epoch']}: loss {h['loss']:.4f}  changed {h['changed']:.3f}  "
                f"uniformity {h['uniformity']:.3f}  {h['images_per_s']:.0f} img/s")
    stop_at_steps(False)  # raises Interrupted if a signal stopped the loop
    return finish(run, cfg, device, rank, world, epoch, history, command, say)


def finish(run: Run, cfg: TrainConfig, device, rank, world, epoch, history, command, say) -> dict:
    """The results file: figures, provenance, the seconds of every segment; then the kNN-20, if asked."""
    # Every rank must end with the same table (checked); this also holds every rank here until
    # all have finished training, so rank 0's evaluation below keeps nobody at a collective.
    digests = distributed.same_on_all_ranks(distributed.table_digest(run.assignment), world, "the assignment table")
    segments = run.wall()
    results = {"name": cfg.name, "command": command or " ".join(sys.argv), "config": dataclasses.asdict(cfg),
               "commit": git_commit(), "versions": versions(), "n": run.assignment.n, "k": run.assignment.k,
               "world": world, "device": device, "precision": run.precision, "wall_time_s": sum(segments), "segments_s": segments, "epochs_done": epoch,
               "history": history, "table_digests": digests}
    if rank == 0:
        write_text_atomic(json_text(results), cfg.results_path)  # kept if the evaluation fails
        if cfg.eval_knn and epoch == cfg.epochs:
            results["knn20_split"] = D.held_out(cfg.dataset, cfg.data_root or None, cfg.val_fraction) or None
            results["knn20_val"] = evaluate_knn(run.final_model, cfg, device)
            say(f"kNN-20 on {results['knn20_split']}: {100 * results['knn20_val']:.2f} %" if results["knn20_split"]
                else "no kNN-20: there is no held-out split (val_fraction 0)")
            write_text_atomic(json_text(results), cfg.results_path)
        say(f"wrote {cfg.checkpoint_path} and {cfg.results_path}")
    return results


def evaluate_knn(model, cfg: TrainConfig, device: str = "cpu", k: int = 20):
    """kNN-20 (cosine) on the embedding: train split as memory, val as queries (None without a val split)."""
    if not D.held_out(cfg.dataset, cfg.data_root or None, cfg.val_fraction):
        return None
    return evaluate_model(model, cfg, knn_k=k, probe_epochs=0, device=device)[f"knn{k}_embed"]
