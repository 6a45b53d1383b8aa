"""The NAT step: re-solve the batch's assignment, then the loss against the targets it gives.

This is the whole method once the network has embedded a batch; the trainer, the benchmarks
and the book's chapters all call `nat_step`:

    z = model.embed(x)                                    # (b, d) unit rows of the images idx
    out = nat_step(z, idx, assignment, targets, reassign=epoch % 3 == 0)
    out.loss.backward()                                   # ||z - c||^2, c = each image's target

Several augmented views of each image may come as z of shape (v, b, d): the assignment is solved on
their mean (back on the sphere), and every view is fitted to the image's one target. On a GPU a
reassigning step waits for the device once (the scores' copy to the CPU solver), and its loss uses the
rows of the candidate targets that the solve already made."""
import time
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .distributed import all_gather


class Diverged(FloatingPointError):
    """Non-finite embeddings or loss: the network diverged."""


class StepResult(NamedTuple):
    loss: torch.Tensor   # scalar, differentiable
    changed: int         # samples (on every rank) whose target changed in this step
    solve_s: float       # seconds spent solving and applying the assignment (0 without reassign)


def nat_step(z: torch.Tensor, idx: torch.Tensor, assignment, targets, reassign: bool = True,
             rank: int = 0, world: int = 1) -> StepResult:
    """z (b, d) or (v, b, d): unit embeddings of the images idx (b,); assignment: the
    sample -> target table (nattools.assign.Assignment); targets: a TargetStore or (k, d)."""
    point = F.normalize(z.mean(0), dim=1) if z.ndim == 3 else z   # (b, d): one point per image
    changed, solve_s = 0, 0.0
    if reassign:  # the assignment first, so that the loss sees the targets it chose
        t = time.perf_counter()
        try:  # non-finite outputs show in the scores, on the CPU: no extra wait for the GPU
            new, c = assignment.solve(idx, point.detach(), targets, rank, world, rows=True)  # c: rows of new
        except FloatingPointError as e:
            raise Diverged(f"the network's outputs are not finite ({e})") from e
        for i, n in zip(all_gather(idx.cpu(), world), all_gather(new, world)):
            changed += assignment.apply(i, n)
        solve_s = time.perf_counter() - t
    else:
        c = targets[assignment.table[idx.cpu()]].to(z.device, non_blocking=True)   # (b, d)
    loss = (z - c).pow(2).sum(-1).mean()                                           # every view against c
    return StepResult(loss, changed, solve_s)
