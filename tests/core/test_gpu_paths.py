"""The GPU paths of issue 16, tested on the CPU: the exact solvers (lap against scipy, the
reference), the step's rows from the solve, bench --device."""
import argparse

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

import nattools
from nattools.assign import Assignment, batch_assignment, solve_scores
from nattools.targets import TargetStore


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
