"""Several processes (torchrun): ranks, gathers, and checks that every rank agrees. Every rank runs the
same trainer on its share of each epoch's shuffle. Gradients are averaged by DistributedDataParallel;
the sample -> target table is updated identically on every rank, from the gathered batch assignments,
and checked to agree at the start and the end."""
import contextlib
import hashlib
import os

import torch
import torch.distributed as dist


@contextlib.contextmanager
def group(device: str):
    """with group(device) as (device, rank, world): (device, 0, 1) without torchrun. Under torchrun
    it joins the process group (NCCL between GPUs, gloo on CPUs; left again at the end if it made
    it) and each process takes the GPU of its LOCAL_RANK."""
    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        yield device, 0, 1
        return
    own = not dist.is_initialized()
    if own:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    try:
        yield device, dist.get_rank(), dist.get_world_size()
    finally:
        if own:
            dist.destroy_process_group()


def all_gather(t: torch.Tensor, world: int) -> list:
    """Every rank's t (the same shape on every rank), as CPU tensors in rank order."""
    if world == 1:
        return [t]
    if dist.get_backend() == "nccl":  # NCCL only moves CUDA tensors
        t = t.cuda()
    out = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(out, t)
    return [o.cpu() for o in out]


def broadcast(t: torch.Tensor, world: int) -> torch.Tensor:
    """Rank 0's t on every rank (the same shape everywhere), as a CPU tensor."""
    if world == 1:
        return t
    x = t.cuda() if dist.get_backend() == "nccl" else t.clone()
    dist.broadcast(x, 0)
    return x.cpu()


def same_on_all_ranks(value, world: int, what: str) -> list:
    """Gather a small picklable value from every rank; raise on every rank if they differ."""
    values = [value]
    if world > 1:
        values = [None] * world
        dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise RuntimeError(f"ranks disagree on {what}: {values}")
    return values


def table_digest(assignment) -> str:
    """A short fingerprint of the sample -> target table (equal tables, equal digests)."""
    return hashlib.sha256(assignment.table.numpy().tobytes()).hexdigest()[:16]
