"""Memory and lookup time of ImageNet-size noise targets (prints figures; not a test).

    python bench/targets_memory.py [--n 1281167] [--d 4096] [--batch 256] [--repeats 50]

A dense (n, d) float32 table would take n * d * 4 bytes (21 GB for ImageNet).
TargetStore generates rows from (seed, id), so what the process adds is the
assignment itself: table (n int64) and owner (k int64). RSS is read from
/proc/self/status (Linux) before and after, in this fresh process; it includes
freed temporaries that the C allocator keeps for reuse and torch's one-time
set-up of the kernels used, so it is an upper bound on the store's own cost.
"""
import argparse
import json
import platform
import statistics
import time

import torch

from nattools.assign import Assignment
from nattools.targets import TargetStore


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_281_167, help="targets = samples (ImageNet train: 1,281,167)")
    p.add_argument("--d", type=int, default=4096)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--out", default=None, help="also write the figures (with the command and commit) to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    before = rss_mb()
    store = TargetStore(args.n, args.d, seed=0)
    assignment = Assignment(args.n, args.n, seed=0)
    built = rss_mb()
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(args.repeats):
        ids = assignment.table[torch.randint(0, args.n, (args.batch,), generator=g)]
        t = time.perf_counter()
        rows = store[ids]
        times.append(time.perf_counter() - t)
    after = rss_mb()
    try:  # hand freed heap back to the OS (glibc): what is left is what the store really holds
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        trimmed = round(rss_mb() - before, 1)
    except (OSError, AttributeError):
        trimmed = None
    assert rows.shape == (args.batch, args.d) and rows.dtype == torch.float32
    figures = {
        "n": args.n, "d": args.d, "dense_table_gb": args.n * args.d * 4 / 1e9,
        "rss_added_by_store_and_assignment_mb": round(built - before, 1),
        "rss_added_after_lookups_mb": round(after - before, 1),
        "rss_added_after_malloc_trim_mb": trimmed,
        "assignment_tensors_mb": round((assignment.table.numel() + assignment.owner.numel()) * 8 / 2**20, 1),
        f"lookup_{args.batch}_median_ms": round(1e3 * statistics.median(times), 2),
        f"lookup_{args.batch}_min_ms": round(1e3 * min(times), 2),
        "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "torch": str(torch.__version__),
    }
    print(json.dumps(figures, indent=1))
    if args.out:
        import sys
        from pathlib import Path
        from nattools.train import git_commit
        record = {"command": "python " + " ".join(sys.argv), "commit": git_commit(), "figures": figures}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1))
    return figures


if __name__ == "__main__":
    main()
