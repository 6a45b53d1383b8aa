"""The parts of bench/gpu_check.sh (issue 16), each a subcommand that prints as it goes.

  jpegs    an ImageNet-style folder of synthetic 500x375-ish JPEGs (baseline, 4:2:0), made in parallel
  alexnet  AlexNet 224 px NAT/fixed step-time ratio per exact solver, time split, peak memory
  trainer  the trainer end to end, JPEGs decoded by PIL in the workers: img/s and the
           time split (data wait / assignment / the rest), peak memory
  solvers  the solve alone on 256 x 256 and 512 x 512 scores: scipy, lap, torch-linear-assignment

Run from the repository root (python3 bench/gpu_check.py PART ...); --device cpu and small sizes
make the CPU smoke test of the same code (bench/gpu_check.sh --cpu-smoke).
"""
import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # nattools from this checkout


def make_jpegs(out: str, n: int, classes: int, scale: float, procs: int) -> None:
    """n JPEGs in out/train/<class>/, sizes as common in ImageNet (500x375, 375x500, 500x333, 500x400),
    smooth colour fields plus grain, quality 90: about 60-120 KB each, like photos."""
    from multiprocessing import Pool
    root = Path(out) / "train"
    for c in range(classes):
        (root / f"n{c:08d}").mkdir(parents=True, exist_ok=True)
    jobs = [(str(root / f"n{i % classes:08d}" / f"img_{i:06d}.JPEG"), i, scale) for i in range(n)]
    t = time.perf_counter()
    with Pool(procs) as pool:
        sizes = pool.map(_one_jpeg, jobs, chunksize=64)
    print(f"made {n} JPEGs in {classes} classes under {root} in {time.perf_counter() - t:.1f} s, "
          f"{sum(sizes) / n / 1024:.0f} KB each on average ({procs} processes)")


_GRAIN = None


def _one_jpeg(job) -> int:
    import numpy as np
    from PIL import Image
    global _GRAIN
    path, i, scale = job
    rng = np.random.default_rng(i)
    if _GRAIN is None:
        _GRAIN = np.random.default_rng(os.getpid()).integers(-24, 25, (600, 600, 3)).astype(np.int16)
    w, h = [(500, 375), (375, 500), (500, 333), (500, 400)][i % 4]
    w, h = max(16, int(w * scale)), max(16, int(h * scale))
    field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    y, x = rng.integers(0, 600 - h + 1), rng.integers(0, 600 - w + 1)
    pixels = (np.asarray(field, dtype=np.int16) + _GRAIN[y:y + h, x:x + w]).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return os.path.getsize(path)


def header(device: str) -> None:
    import torch
    import torchvision
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"device {name}; torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPU cores")
    for mod in ("lap", "torch_linear_assignment", "triton"):
        try:
            m = __import__(mod)
            print(f"  {mod} {getattr(m, '__version__', '?')}")
        except Exception as e:  # a missing or broken optional package: say so, go on
            print(f"  {mod}: not available ({type(e).__name__}: {e})")


def bench_alexnet(batch: int = None, repeats: int = None, device: str = None, cfg=None, variants=None) -> dict:
    """AlexNet 224 px NAT step with each exact solver vs the same step with fixed targets
    (interleaved, medians), then a few synchronised steps for the time split (forward / nat_step /
    backward + SGD). Defaults: batch 256 and 10 repeats on a GPU; batch 8 and 3 repeats on a CPU."""
    import statistics
    import torch
    import nattools
    from nattools.bench import default_device, nat_step_timer, solvers
    device = default_device(device)
    cpu = device == "cpu"
    batch = batch or (8 if cpu else 256)
    repeats = repeats or (3 if cpu else 10)
    cfg = cfg or nattools.TrainConfig(**nattools.config.PRESETS["imagenet"])
    variants = variants or solvers()
    step = nat_step_timer(cfg, batch, device)
    if not cpu:
        torch.cuda.reset_peak_memory_stats()
    times = {v: [] for v in ("fixed",) + tuple(variants)}

    def run(v: str, split: bool = False) -> float:
        step.assignment.solver = v if v != "fixed" else step.assignment.solver
        return step(v != "fixed", split)

    for r in range(repeats + 1):  # round 0: warm-up (cuDNN autotuning, allocator)
        for v in times:
            t = run(v)
            if r:
                times[v].append(t)
    for v in times:  # the time split, from synchronised steps
        for _ in range(3):
            run(v, split=True)
    name = torch.cuda.get_device_name() if not cpu else f"cpu ({torch.get_num_threads()} threads)"
    fixed = statistics.median(times["fixed"])
    figures = {"device": name, "model": cfg.model, "image_size": cfg.image_size, "d": cfg.d, "batch": batch,
               "repeats": repeats, "bf16": step.precision == "bf16", "fixed_step_s": fixed,
               "fixed_images_per_s": batch / fixed}
    if not cpu:
        figures["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    print(f"AlexNet {cfg.image_size}px on {name}, batch {batch}, {'bf16' if figures['bf16'] else 'fp32'}, "
          f"median of {repeats}: fixed targets {fixed * 1e3:.1f} ms/step ({batch / fixed:.0f} img/s)")
    splits = step.split[False], step.split[True]
    for v in variants:
        nat = statistics.median(times[v])
        figures.update({f"nat_{v}_step_s": nat, f"nat_{v}_images_per_s": batch / nat,
                        f"nat_{v}_over_fixed_time": nat / fixed})
        print(f"  NAT, solver {v:5s}: {nat * 1e3:.1f} ms/step ({batch / nat:.0f} img/s), "
              f"NAT/fixed time {nat / fixed:.3f}")
    for v, rows in zip(["fixed"] + list(variants), [splits[0]] + [splits[1][3 * i:3 * i + 3] for i in
                                                                 range(len(variants))]):
        f, a, b = (1e3 * statistics.median(r[i] for r in rows) for i in range(3))
        figures[f"split_{v}_ms"] = (f, a, b)
        print(f"  time split, {v:5s} (synchronised steps): forward {f:.1f} ms, nat_step {a:.2f} ms "
              f"(targets, {'assignment, ' if v != 'fixed' else ''}loss), backward + SGD {b:.1f} ms")
    if not cpu:
        print(f"  peak GPU memory {figures['peak_gpu_memory_gib']:.2f} GiB")
    return figures




def alexnet(device: str, batches: list, repeats: int, image_size: int) -> None:
    import torch
    import nattools
    from nattools.bench import solvers
    header(device)
    cfg = nattools.TrainConfig(**{**nattools.config.PRESETS["imagenet"], "image_size": image_size})
    for b in batches:
        try:
            bench_alexnet(batch=b, repeats=repeats, device=device, cfg=cfg, variants=solvers())
        except torch.cuda.OutOfMemoryError as e:
            print(f"batch {b}: out of GPU memory ({e})")
        if device == "cuda":
            torch.cuda.empty_cache()


def trainer(device: str, data: str, steps: int, workers: int, batch: int, image_size: int, skip: int) -> None:
    """The trainer on the JPEG folder, instrumented from outside: the time each
    step waits for its batch (data wait), spends in nat_step after its forward pass (assignment,
    loss) and the rest (forward, backward, SGD, logging)."""
    import importlib
    import torch
    import nattools
    from nattools import data as D
    T = importlib.import_module("nattools.train")  # the module (nattools.train is also the function)
    from nattools.assign import Assignment
    from nattools.bench import solvers
    cuda = device == "cuda"
    fields = nattools.TrainConfig.__dataclass_fields__
    solver = solvers()[-1]  # the fastest exact solver here (lap if installed)
    real = {"batches": D.batches, "training_set": D.training_set, "nat_step": T.nat_step, "Assignment": T.Assignment}
    waits, assigns, ends = [], [], []

    def timed_batches(*a, **k):
        it = iter(real["batches"](*a, **k))
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            waits.append(time.perf_counter() - t)
            yield item

    def timed_nat_step(*a, **k):
        if cuda:
            torch.cuda.synchronize()  # the forward pass is done: what follows is the assignment
        t = time.perf_counter()
        out = real["nat_step"](*a, **k)
        assigns.append(time.perf_counter() - t)
        return out

    extra = {"solver": solver} if "solver" in fields else {}
    D.batches, T.nat_step = timed_batches, timed_nat_step
    D.training_set = functools.partial(real["training_set"], cache_bytes=0)  # stream, as on ImageNet
    T.Assignment = real["Assignment"] if "solver" in fields else functools.partial(Assignment, solver=solver)
    cfg = nattools.TrainConfig(**{**nattools.config.PRESETS["imagenet"], **extra,
                                  "name": "check_workers", "data_root": data,
                                  "workers": workers, "max_steps": steps, "device": device, "batch_size": batch,
                                  "image_size": image_size, "precision": "bf16" if cuda else "fp32",
                                  "out": str(Path(data).parent / "runs"), "resume": False, "overwrite": True,
                                  "eval_knn": False, "ckpt_every": 0})
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        T.train(cfg, on_step=lambda s, loss: ends.append(time.perf_counter()), progress=False,
                command="gpu_check")
    except Exception as e:  # report it; the parts after this one still run
        print(f"trainer: failed: {type(e).__name__}: {e}")
        return
    finally:
        D.batches, D.training_set = real["batches"], real["training_set"]
        T.nat_step, T.Assignment = real["nat_step"], real["Assignment"]
    k = min(skip, len(ends) - 2)
    dt = [b - a for a, b in zip(ends[k:], ends[k + 1:])]
    rate = batch * len(dt) / sum(dt)
    wait, assign = (1e3 * statistics.mean(v[k + 1:len(ends)]) for v in (waits, assigns))
    step = 1e3 * statistics.mean(dt)
    mem = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2 ** 30:.2f} GiB" if cuda else ""
    print(f"trainer decode=workers (solver {solver}, {workers} workers, batch "
          f"{batch}): {rate:.0f} img/s over steps {k + 2}-{len(ends)} ({step:.1f} ms/step: data wait {wait:.1f}, "
          f"assignment {assign:.1f}, forward/backward/rest {step - wait - assign:.1f}){mem}; "
          f"run {time.perf_counter() - t0:.1f} s in all")


def solve_only(device: str, sizes: list, repeats: int) -> None:
    """The solve alone, on scores like those of a network at initialisation (every z alike: the slow
    case) and late in training (each z near a target): milliseconds per solve (medians), checked
    against scipy's optimum. torch-linear-assignment (Triton, on the GPU) comes last: its first call
    compiles."""
    import torch
    import torch.nn.functional as F
    from nattools.assign import solve_scores
    from nattools.bench import solvers
    from nattools.targets import TargetStore
    names = list(solvers())
    try:
        from torch_linear_assignment import batch_linear_assignment as tla
        names += ["tla"] if device == "cuda" else []
    except Exception as e:
        print(f"  torch-linear-assignment: not available ({type(e).__name__}: {e})")
    g, problems = torch.Generator().manual_seed(0), {}
    for b in sizes:
        c, noise = TargetStore(b, 4096, seed=1).all(), torch.randn(b, 4096, generator=g)
        for kind, z in (("at init", F.normalize(torch.randn(1, 4096, generator=g) + 0.05 * noise, dim=1)),
                        ("fitted", F.normalize(c[torch.randperm(b, generator=g)] + 0.02 * noise, dim=1))):
            s = z @ c.T
            problems[b, kind] = s, float(s.double()[torch.arange(b), solve_scores(s.clone())].sum())
    for name in names:
        for b in sizes:
            line = []
            for kind in ("at init", "fitted"):
                s, best = problems[b, kind]
                times = []
                try:
                    for r in range(repeats + 1):
                        if name == "tla":
                            sd = s.to(device)
                            torch.cuda.synchronize()
                            t = time.perf_counter()
                            perm = tla(-sd[None])[0].cpu()  # with the copy back, as a step would need it
                        else:
                            t = time.perf_counter()
                            perm = solve_scores(s.clone(), name)
                        times.append(time.perf_counter() - t)
                except Exception as e:  # e.g. a Triton build that fails on this card: say so, go on
                    line.append(f"{kind} failed ({type(e).__name__}: {str(e)[:200]})")
                    continue
                gap = float(s.double()[torch.arange(b), perm].sum()) - best
                first = f" (first call {1e3 * times[0]:.0f} ms)" if name == "tla" else ""
                line.append(f"{kind} {1e3 * statistics.median(times[1:]):.2f} ms{first}"
                            f"{'' if abs(gap) < 1e-6 else f' NOT OPTIMAL ({gap:+.2e})'}")
            print(f"solve {b}x{b} with {name}: " + ", ".join(line))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("jpegs", "alexnet", "trainer", "solvers"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="/tmp/natcheck/jpegs", help="jpegs: the folder to make; else: the folder to read")
    p.add_argument("--n", type=int, default=10240)
    p.add_argument("--classes", type=int, default=32)
    p.add_argument("--scale", type=float, default=1.0, help="jpegs: image side scale (smoke tests: small)")
    p.add_argument("--batches", type=int, nargs="+", default=[256, 512])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=15, help="trainer: steps left out of the rate (start-up, prefetch)")
    p.add_argument("--workers", type=int, default=15)
    a = p.parse_args(argv)
    if a.part == "jpegs":
        make_jpegs(a.out, a.n, a.classes, a.scale, os.cpu_count() or 1)
    elif a.part == "alexnet":
        alexnet(a.device, a.batches, a.repeats, a.image_size)
    elif a.part == "trainer":
        trainer(a.device, a.out, a.steps, a.workers, a.batches[0], a.image_size, a.skip)
    else:
        solve_only(a.device, a.batches, a.repeats)


if __name__ == "__main__":
    main()
