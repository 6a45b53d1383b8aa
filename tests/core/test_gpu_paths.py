"""The GPU paths of issue 16, tested on the CPU: the exact solvers (lap against scipy, the
reference), the step's rows from the solve, JPEG decoding on the training device, bench --device."""
import argparse
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.optimize import linear_sum_assignment

import nattools
from nattools import data as D
from nattools.assign import Assignment, batch_assignment, solve_scores
from nattools.targets import TargetStore

HAS_FIELDS = all(f in nattools.TrainConfig.__dataclass_fields__ for f in ("decode", "solver"))


def scores(kind: str, b: int, m: int, g: torch.Generator) -> torch.Tensor:
    """(b, m) score matrices of the kinds NAT meets, ties included."""
    if kind == "integers":  # many exact ties
        return torch.randint(0, 4, (b, m), generator=g).double()
    if kind == "discrete":  # targets that repeat (discrete codes): equal columns
        return torch.randn(b, 3, generator=g).double()[:, torch.arange(m) % 3]
    c = F.normalize(torch.randn(m, 64, generator=g), dim=1)
    if kind == "look-alike":  # a network at initialisation: every z nearly the same
        z = F.normalize(torch.randn(1, 64, generator=g) + 0.02 * torch.randn(b, 64, generator=g), dim=1)
    elif kind == "fitted":  # late in training: each z near one target
        z = F.normalize(c[torch.randperm(m, generator=g)[:b]] + 0.3 * torch.randn(b, 64, generator=g), dim=1)
    else:
        z = F.normalize(torch.randn(b, 64, generator=g), dim=1)
    return (z @ c.T).double()


def optimum(s: torch.Tensor) -> float:
    rows, cols = linear_sum_assignment(s.numpy(), maximize=True)
    return float(s.numpy()[rows, cols].sum())


@pytest.mark.parametrize("solver", ["scipy", "lap"])
@pytest.mark.parametrize("kind", ["gaussian", "look-alike", "fitted", "integers", "discrete"])
@pytest.mark.parametrize("b,m", [(1, 1), (2, 2), (7, 7), (64, 64), (256, 256), (5, 9), (64, 100)])
def test_solvers_find_scipys_optimum(solver, kind, b, m):
    if solver == "lap":
        pytest.importorskip("lap")
    g = torch.Generator().manual_seed(b * 1000 + m)
    for _ in range(3):
        s = scores(kind, b, m, g)
        perm = solve_scores(s.clone(), solver)
        assert perm.dtype == torch.long and perm.shape == (b,)
        assert len(set(perm.tolist())) == b and 0 <= int(perm.min()) and int(perm.max()) < m
        assert float(s[torch.arange(b), perm].sum()) == pytest.approx(optimum(s), abs=1e-9)


def test_lap_on_embeddings_matches_scipy():
    pytest.importorskip("lap")
    z = F.normalize(torch.randn(128, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    c = TargetStore(128, 32, seed=3).all()
    s = (z @ c.T).double()
    for solver in ("scipy", "lap"):
        assert float(s[torch.arange(128), batch_assignment(z, c, solver)].sum()) == pytest.approx(optimum(s), abs=1e-9)


def test_unknown_solver_is_refused():
    with pytest.raises(ValueError, match="unknown solver"):
        batch_assignment(torch.randn(3, 2), torch.randn(3, 2), solver="auction")
    with pytest.raises(ValueError, match="unknown solver"):
        Assignment(4, 4, solver="auction")


@pytest.mark.parametrize("n,k", [(32, 32), (32, 50)])
def test_solve_rows_are_the_new_targets_rows(n, k):
    targets = TargetStore(k, 16, seed=1)
    a, b = Assignment(n, k, seed=2), Assignment(n, k, seed=2)
    idx = torch.arange(8, 24)
    z = F.normalize(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    new, rows = a.solve(idx, z, targets, rows=True)
    assert torch.equal(new, b.solve(idx, z, targets))
    assert torch.equal(rows, targets[new])


def jpeg(w: int, h: int, seed: int, grey: bool = False, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8))
    im = im.resize((w, h), Image.BICUBIC)
    im = Image.fromarray((np.asarray(im) + rng.integers(-12, 12, (h, w, 3))).clip(0, 255).astype(np.uint8))
    buf = io.BytesIO()
    (im.convert("L") if grey else im).save(buf, fmt, quality=90)
    return buf.getvalue()


def as_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def test_decode_batch_matches_the_pil_path():
    """Same decoder family (libjpeg-turbo), same resize rule and crop: at most one grey level apart
    (rounding); on a GPU nvJPEG's IDCT may differ by a level or two more."""
    files = [jpeg(500, 375, 0), jpeg(375, 500, 1), jpeg(500, 333, 2), jpeg(300, 300, 3), jpeg(500, 375, 4),
             jpeg(60, 90, 5, grey=True), jpeg(40, 30, 6, fmt="PNG")]   # upsampled; a PNG in disguise
    for size in (224, 32):
        x = D.decode_batch([as_tensor(f) for f in files], size, "cpu")
        ref = torch.stack([D.stored_transform(size)(Image.open(io.BytesIO(f)).convert("RGB")) for f in files])
        assert x.dtype == torch.uint8 and x.shape == ref.shape == (len(files), 3, D.load_size(size), D.load_size(size))
        diff = (x.int() - ref.int()).abs()
        assert int(diff.max()) <= 1 and float(diff.float().mean()) < 0.5


def test_decode_batch_names_a_broken_file():
    with pytest.raises(D.BadImage, match="cannot decode"):
        D.decode_batch([as_tensor(jpeg(50, 40, 0)), as_tensor(b"not an image at all")], 32, "cpu")


@pytest.fixture
def jpeg_folder(tmp_path):
    for c in ("a", "b"):
        (tmp_path / "images" / c).mkdir(parents=True)
        for i in range(12):
            (tmp_path / "images" / c / f"{i}.jpg").write_bytes(jpeg(48 + 8 * (i % 3), 40, i + (c == "b") * 100))
    return tmp_path / "images"


def test_encoded_batches_equal_the_decoded_in_memory_batches(jpeg_folder):
    base = D.subset(D.image_folder(jpeg_folder), 20)
    encoded, ref = D.EncodedFiles(base, 32), D.training_set(base, 32, progress=False)
    assert len(encoded) == len(ref) == 20
    sampler = D.EpochSampler(20, seed=0, epoch=1)
    got = list(D.batches(encoded, sampler, 6, workers=2))
    want = list(D.batches(ref, sampler, 6))
    assert len(got) == len(want) == 3
    for (x, y, idx), (rx, ry, ridx) in zip(got, want):
        assert torch.equal(idx, ridx) and torch.equal(y, ry)
        assert int((x.int() - rx.int()).abs().max()) <= 1
    batches = D.batches(encoded, sampler, 6)
    next(batches)
    batches.close()  # a run stopped mid-epoch (max_steps) leaves no thread behind


def test_encoded_files_need_image_files():
    with pytest.raises(nattools.config.UsageError, match="image folder of JPEGs"):
        D.EncodedFiles(D.load("digits"), 32)


def test_bench_alexnet_and_bench_on_the_cpu(capsys):
    import importlib.util
    from pathlib import Path
    from nattools.bench import run_bench, solvers
    spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).parents[2] / "bench" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    bench_alexnet = gpu_check.bench_alexnet
    cfg = nattools.TrainConfig(model="small", width=4, hidden=0, d=16, image_size=32)
    f = bench_alexnet(batch=8, repeats=1, device="cpu", cfg=cfg)
    assert f["device"].startswith("cpu") and f["fixed_step_s"] > 0
    for v in solvers():
        assert f[f"nat_{v}_over_fixed_time"] > 0 and len(f[f"split_{v}_ms"]) == 3
    args = argparse.Namespace(device="cpu", dataset="digits", batches=[16], repeats=2, trainer_steps=1,
                              trainer_epochs=2, precision_repeats=1)
    f = run_bench(args)
    assert f["device"] == "cpu" and f["nat_over_fixed_b16"] > 0 and f["trainer_over_bare"] > 0 and f["bf16_speedup"] > 0
    assert "time split" in capsys.readouterr().out


@pytest.mark.skipif(not HAS_FIELDS, reason="issue 16's TrainConfig fields (decode, solver) are absent")
def test_trainer_decodes_on_the_device(jpeg_folder, tmp_path):
    from nattools.train import train
    common = dict(dataset="imagefolder", data_root=str(jpeg_folder), val_fraction=0.0, width=4, hidden=0, d=16,
                  batch_size=8, epochs=2, reassign_every=1, workers=0, eval_knn=False, out=str(tmp_path / "runs"))
    runs = {}
    for name, extra in {"pil": {}, "device": {"decode": "device", "solver": "scipy"}}.items():
        runs[name] = train(nattools.TrainConfig(name=name, **common, **extra), progress=False)["history"]
    for name, history in runs.items():
        assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history), name
        assert 0 < history[0]["changed"] <= 1, name
    # the same images up to a grey level: the first epoch's loss barely moves
    assert runs["device"][0]["loss"] == pytest.approx(runs["pil"][0]["loss"], rel=0.02)
