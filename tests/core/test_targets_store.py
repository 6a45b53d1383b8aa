"""TargetStore: targets generated on demand from (seed, id), uniform on the sphere.

The uniformity tests use bounds derived from n and d (or a KS test against the
exact marginal) at a false-alarm rate of about 1e-6, and the last test shows
that the same checks reject a sampler that is not uniform.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from nattools.targets import TargetStore, sample_sphere, splitmix64

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def ref_mix(z: int) -> int:
    """SplitMix64's finaliser, written out with explicit 64-bit wrap-around."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def ref_stream(seed: int, count: int) -> list:
    """SplitMix64 as a sequential generator: the state starts at the first output of
    a SplitMix64 seeded with `seed`; each call adds GAMMA (mod 2^64) and mixes."""
    state = ref_mix((seed + GAMMA) & MASK64)
    out = []
    for _ in range(count):
        state = (state + GAMMA) & MASK64
        out.append(ref_mix(state))
    return out


def unsigned(t: torch.Tensor) -> list:
    return [v & MASK64 for v in t.tolist()]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**40 + 7])
def test_splitmix64_matches_a_pure_python_reference(seed):
    assert unsigned(splitmix64(torch.arange(200), seed)) == ref_stream(seed, 200)
    # far along the stream: output i = mix(start + (i + 1) * GAMMA), computed directly
    start = ref_mix((seed + GAMMA) & MASK64)
    far = [2**31 - 1, 2**40 + 3, 1_281_167 * 2048 - 1, 2**62 + 11]
    want = [ref_mix((start + (i + 1) * GAMMA) & MASK64) for i in far]
    assert unsigned(splitmix64(torch.tensor(far), seed)) == want


def test_known_values_pin_the_definition():
    """Changing the generator changes every target of every checkpoint: do it on purpose only."""
    rows = TargetStore(10, 5, seed=0)[torch.tensor([0, 7])]
    want = [[0.5313898324966431, 0.38396671414375305, -0.01921483315527439, 0.5974013805389404, -0.4614507853984833],
            [-0.36873841285705566, -0.5927421450614929, 0.6127142310142517, -0.229095920920372, -0.29117846488952637]]
    assert torch.allclose(rows, torch.tensor(want), atol=1e-6)
    big = TargetStore(10**6, 4096, seed=1)[999_999][:4]
    assert torch.allclose(big, torch.tensor([0.015621516853570938, -0.024747466668486595,
                                             0.018694614991545677, 0.0036513344384729862]), atol=1e-7)


def test_rows_are_reproducible_across_calls_batchings_orders_and_threads():
    store = TargetStore(5000, 33, seed=4)   # odd d: the last Box-Muller pair is cut
    ids = torch.randperm(5000, generator=torch.Generator().manual_seed(0))[:700]
    full = store[ids]
    assert torch.equal(full, store[ids])                                              # again
    assert torch.equal(full, torch.cat([store[ids[i:i + 37]] for i in range(0, 700, 37)]))  # batches
    assert torch.equal(full[5], store[int(ids[5])])                                   # one row
    order = torch.randperm(700, generator=torch.Generator().manual_seed(1))
    assert torch.equal(full[order], store[ids[order]])                                # another order
    assert torch.equal(full.reshape(7, 100, 33), store[ids.reshape(7, 100)])          # 2-D ids
    assert torch.equal(full, TargetStore(5000, 33, seed=4)[ids])                      # a new store
    small = TargetStore(5000, 33, seed=4)
    small.chunk_values = 64 * 17
    assert torch.equal(full, small[ids])                                              # other chunking
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(full, store[ids])                                          # one thread
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(sample_sphere(300, 33, seed=4), store[torch.arange(300)])    # first n rows


def test_seeds_give_unrelated_streams():
    a, b = TargetStore(100, 64, seed=0).all(), TargetStore(100, 64, seed=1).all()
    assert not torch.equal(a, b)
    # not shifted copies of one stream (a seed used as a plain offset would make them so)
    bits0 = set(unsigned(splitmix64(torch.arange(4096), 0)))
    bits1 = set(unsigned(splitmix64(torch.arange(4096), 1)))
    assert not bits0 & bits1
    assert (a @ b.T).abs().max() < 0.7


def test_float32_unit_rows_and_shape():
    store = TargetStore(1000, 4096)
    rows = store[torch.tensor([0, 999, 500])]
    assert rows.dtype == torch.float32 and rows.shape == (3, 4096)
    assert torch.allclose(rows.norm(dim=1), torch.ones(3), atol=1e-5)
    assert store[torch.tensor([], dtype=torch.long)].shape == (0, 4096)
    assert len(store) == 1000


def test_bad_ids_and_sizes_raise():
    store = TargetStore(10, 8)
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        store[torch.tensor([3, 10])]
    with pytest.raises(IndexError, match="-1"):
        store[torch.tensor([-1])]
    with pytest.raises(TypeError, match="integers"):
        store[torch.tensor([1.0, 2.0])]
    with pytest.raises(ValueError, match="n >= 1"):
        TargetStore(0, 8)
    with pytest.raises(ValueError, match="d >= 2"):
        TargetStore(10, 1)


# ---- uniformity on the sphere ---------------------------------------------------------------

Z = 5.0            # two-sided normal quantile for the bounds below (false alarm ~6e-7 per check)
P_MIN = 1e-5       # KS tests fail below this p-value


def mean_check(x: np.ndarray) -> float:
    """d * n * ||mean||^2 is chi-square with d degrees of freedom for uniform rows
    (each coordinate has mean 0, variance 1/d). Returns its upper tail p-value."""
    n, d = x.shape
    return stats.chi2.sf(d * n * float((x.mean(0) ** 2).sum()), d)


def second_moment_error(x: np.ndarray) -> float:
    """max |X^T X / n - I/d| in units of its standard deviation (exact moments of the uniform law:
    Var x_i^2 = 3/(d(d+2)) - 1/d^2, Var x_i x_j = 1/(d(d+2)))."""
    n, d = x.shape
    m = x.T @ x / n - np.eye(d) / d
    sd_diag = math.sqrt((3 / (d * (d + 2)) - 1 / d**2) / n)
    sd_off = math.sqrt(1 / (d * (d + 2)) / n)
    return max(np.abs(np.diag(m)).max() / sd_diag, np.abs(m - np.diag(np.diag(m))).max() / sd_off)


def marginal_p(values: np.ndarray, d: int) -> float:
    """KS test of one coordinate (or of the cosine between two independent rows) against
    the exact law on S^{d-1}: (t + 1) / 2 ~ Beta((d-1)/2, (d-1)/2)."""
    a = (d - 1) / 2
    return stats.kstest((values + 1) / 2, stats.beta(a, a).cdf).pvalue


@pytest.mark.parametrize("d", [2, 3, 16, 257])
def test_targets_are_uniform_on_the_sphere(d):
    n = 20000
    x = TargetStore(n, d, seed=7).all().double().numpy()
    assert mean_check(x) > 1e-6
    assert second_moment_error(x) < Z + 1  # max over ~d^2/2 entries: allow a little more
    assert marginal_p(x[:, 0], d) > P_MIN
    assert marginal_p(x[:, d - 1], d) > P_MIN   # the last coordinate too (odd d: a cut pair)
    cos = (x[: n // 2] * x[n // 2:]).sum(1)       # independent pairs of rows
    assert abs(cos.mean()) < Z * math.sqrt(1 / d / (n // 2))
    assert marginal_p(cos, d) > P_MIN


def test_imagenet_sized_ids_are_uniform_too():
    store = TargetStore(1_281_167, 4096, seed=0)
    ids = torch.randint(0, store.n, (512,), generator=torch.Generator().manual_seed(0))
    x = store[ids].double().numpy()
    assert marginal_p(x[:, 4095], 4096) > P_MIN
    assert marginal_p(x[:, :64].reshape(-1), 4096) > P_MIN  # 64 coordinates pooled (independent enough)
    assert mean_check(x) > 1e-6


def test_uniformity_checks_reject_a_non_uniform_sampler():
    """Power check: normalised points of a cube are not uniform on the sphere."""
    g = torch.Generator().manual_seed(0)
    cube = torch.rand(20000, 3, generator=g, dtype=torch.float64) * 2 - 1
    x = torch.nn.functional.normalize(cube, dim=1).numpy()
    assert marginal_p(x[:, 0], 3) < P_MIN
    biased = torch.nn.functional.normalize(torch.randn(20000, 16, generator=g, dtype=torch.float64) + 0.05, dim=1)
    assert mean_check(biased.numpy()) < 1e-6
    stretched = torch.randn(20000, 16, generator=g, dtype=torch.float64)
    stretched[:, 0] *= 1.1
    assert second_moment_error(torch.nn.functional.normalize(stretched, dim=1).numpy()) > Z + 1
