import pytest
import torch

from nattools.targets import discrete_targets, sample_sphere


def test_sample_sphere_contract():
    c = sample_sphere(500, 16, seed=0)
    assert c.shape == (500, 16) and c.dtype == torch.float32
    assert torch.allclose(c.norm(dim=1), torch.ones(500), atol=1e-5)
    assert torch.equal(c, sample_sphere(500, 16, seed=0))
    assert not torch.allclose(c, sample_sphere(500, 16, seed=1))
    assert torch.equal(sample_sphere(50, 16, seed=0), c[:50])  # a prefix of the same store
    # Uniform: no preferred direction (mean of 500 unit vectors ~ N(0, 1/(d n)) per coordinate)
    assert c.mean(0).abs().max() < 5 / (16 * 500) ** 0.5


def test_sample_sphere_rejects_d_below_two():
    with pytest.raises(ValueError, match="d >= 2"):
        sample_sphere(10, 1)


def test_discrete_targets_balanced_codes():
    t = discrete_targets(100, 10, 16)
    codes, counts = torch.unique(t, dim=0, return_counts=True)
    assert len(codes) == 10 and counts.tolist() == [10] * 10
    assert torch.allclose(t.norm(dim=1), torch.ones(100))
    assert torch.equal(codes.sum(0)[:10], torch.ones(10))  # one-hot when d >= k
    wide = discrete_targets(1000, 100, 16)               # d < k: codes on the sphere
    assert len(torch.unique(wide, dim=0)) == 100
    with pytest.raises(ValueError):
        discrete_targets(10, 11, 16)
