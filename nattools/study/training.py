"""Chapters 5 and 6: training live on a page, and what a run's assignment does once it is trained.

`train_live` runs the library's trainer (nattools.train, the same code as `python -m nattools
train`) in a temporary folder and keeps what a page reads afterwards: the results, the loss of
every step, the network and the assignment table. `reassignment_churn` then freezes the network
and re-solves the table's batches (chapter 3's `sweep`), to show why targets keep changing.
"""
import contextlib
import dataclasses
import io
import sys
import tempfile
import time

import torch

from .. import data as D
from ..assign import Assignment
from ..checkpoint import load_checkpoint, read_state
from ..config import TrainConfig, on_this_machine
from ..evaluate import embed
from ..train import build_targets, train
from .assignment import sweep


@dataclasses.dataclass
class LiveRun:
    """A run trained on the page."""
    cfg: TrainConfig             # as it trained (its temporary out folder is gone)
    results: dict                # what nattools.train returned (and wrote)
    step_loss: list              # the loss of every optimiser step
    model: torch.nn.Module       # the network as the run left it, in eval mode
    assignment: dict             # the checkpoint's assignment state: table, n, k, generator
    seconds: float               # wall time, training and reading back


class EpochLines(io.TextIOBase):
    """A stdout for a live run: passes on the trainer's one line per epoch as it comes, and drops its
    lines about files (they name a temporary folder that is gone when the page is read)."""

    def __init__(self, out):
        self.out, self.buffer = out, ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            if line.startswith("epoch "):
                self.out.write(line + "\n")
                self.out.flush()
        return len(text)


def train_live(cfg: TrainConfig, command: str = None) -> LiveRun:
    """Train cfg now, in a temporary folder, without progress bars (the trainer's one line per
    epoch stays), and read back its network and assignment table."""
    step_loss = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as out:
        cfg = dataclasses.replace(cfg, out=out)
        print(f"training {cfg.name} in a temporary folder")
        with contextlib.redirect_stdout(EpochLines(sys.stdout)):
            results = train(cfg, on_step=lambda step, loss: step_loss.append(loss), command=command,
                            progress=False)
        model, _ = load_checkpoint(cfg.checkpoint_path)
        assignment = read_state(cfg.checkpoint_path)["assignment"]
    return LiveRun(dataclasses.replace(cfg, out=""), results, step_loss, model, assignment, time.time() - t0)


def stand_in(name: str, why: str, cfg: TrainConfig, dataset: str, out: str, **overrides) -> TrainConfig:
    """When a run's training images are not the ones at hand (`why`), train now a stand-in with its network and
    recipe on `dataset`, in `out`, on this machine, one line per epoch -> the stand-in's config (its checkpoint
    is at its checkpoint_path). A line above the figures says that they are the stand-in's."""
    stand = on_this_machine(cfg, **{"name": f"{cfg.name}_stand_in", "dataset": dataset, "workers": 0,
                                    "eval_knn": False, "resume": False, **overrides, "out": out})
    size = f"{stand.limit:,} images" if stand.limit else "every image here"
    print(f"{name} {why}:\n  the figures below are a stand-in's, not this run's: its network and recipe\n"
          f"  trained now on {dataset} ({size}, {stand.epochs} epoch{'s' * (stand.epochs != 1)}, d = {stand.d})")
    with contextlib.redirect_stdout(EpochLines(sys.stdout)):     # its epochs, not its temporary files
        train(stand, command="a stand-in (nattools.study.training.stand_in)", progress=False)   # no stderr
    return stand


def reassignment_churn(model, images: torch.Tensor, assignment: dict, cfg: TrainConfig, seed: int = 1) -> dict:
    """The share of samples whose target one pass of re-solving changes (full batches, as the
    trainer), with the network frozen, starting from a run's final table: on the centre views of
    its images (images (n,3,S,S) in the order of the table's rows) split into batches, the same
    batches again, new batches twice, and on a new random crop of each image.
    -> {what: share of the images whose target changed}."""
    table = Assignment(len(images), len(images))
    table.load_state_dict(assignment)
    targets = build_targets(cfg, len(images))
    g = torch.Generator().manual_seed(seed)

    def one_pass(z, order):
        return sweep(table, z, targets, order, cfg.batch_size, full_batches=True) / (
            len(order) // cfg.batch_size * cfg.batch_size)

    z, split = embed(model, images), torch.randperm(len(images), generator=g)
    out = {"centre views, first pass (the table fits them)": one_pass(z, split),
           "centre views, the same batches again": one_pass(z, split)}
    for k in (1, 2):
        out[f"centre views, new batches ({k})"] = one_pass(z, torch.randperm(len(z), generator=g))
    crops = embed(model, D.augment(images, cfg.image_size, cfg.crop_min, g))   # a new random crop and flip each
    out["new random crops, new batches"] = one_pass(crops, torch.randperm(len(z), generator=g))
    return out
