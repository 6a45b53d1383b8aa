import itertools

import pytest
import torch

from nattools.assign import Assignment, batch_assignment
from nattools.targets import sample_sphere


def brute_force(z, c):
    """Best injective map rows of z -> rows of c by enumeration."""
    score = z @ c.T
    best, arg = -float("inf"), None
    for perm in itertools.permutations(range(c.shape[0]), z.shape[0]):
        s = float(score[torch.arange(z.shape[0]), torch.tensor(perm)].sum())
        if s > best:
            best, arg = s, perm
    return best, arg


@pytest.mark.parametrize("b,m", [(2, 2), (4, 4), (6, 6), (3, 5), (5, 7)])
def test_batch_assignment_is_optimal(b, m):
    g = torch.Generator().manual_seed(b * 10 + m)
    for trial in range(5):
        z = torch.nn.functional.normalize(torch.randn(b, 3, generator=g), dim=1)
        c = torch.nn.functional.normalize(torch.randn(m, 3, generator=g), dim=1)
        perm = batch_assignment(z, c)
        assert perm.dtype == torch.long and perm.shape == (b,)
        assert len(set(perm.tolist())) == b and 0 <= int(perm.min()) and int(perm.max()) < m
        best, _ = brute_force(z, c)
        got = float((z * c[perm]).sum())
        assert got == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize("b,m", [(6, 6), (4, 7)])
def test_batch_assignment_is_optimal_for_look_alike_embeddings(b, m):
    """A network at initialisation maps every image to nearly the same point; the
    row (and, square, column) reductions of the scores must not change the optimum."""
    g = torch.Generator().manual_seed(b + m)
    for trial in range(5):
        mean = torch.randn(1, 3, generator=g)
        z = torch.nn.functional.normalize(mean + 0.01 * torch.randn(b, 3, generator=g), dim=1)
        c = torch.nn.functional.normalize(torch.randn(m, 3, generator=g), dim=1)
        perm = batch_assignment(z, c)
        best, _ = brute_force(z, c)
        assert float((z * c[perm]).sum()) == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize("b,m", [(256, 256), (128, 256)])
def test_reduced_scores_give_the_optimum_of_the_raw_scores(b, m):
    """At bench sizes: the same total score as scipy on the raw, unreduced scores."""
    from scipy.optimize import linear_sum_assignment
    g = torch.Generator().manual_seed(b + m)
    z = torch.nn.functional.normalize(torch.randn(1, 16, generator=g) + 0.05 * torch.randn(b, 16, generator=g), dim=1)
    c = sample_sphere(m, 16, seed=2)
    score = (z @ c.T).double()
    rows, cols = linear_sum_assignment(score.numpy(), maximize=True)
    perm = batch_assignment(z, c)
    assert len(set(perm.tolist())) == b
    assert float(score[torch.arange(b), perm].sum()) == pytest.approx(float(score[rows, cols].sum()), abs=1e-6)


def test_batch_assignment_square_is_permutation_and_recovers_shuffle():
    c = sample_sphere(64, 8, seed=1)
    shuffle = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    perm = batch_assignment(c[shuffle], c)  # each z is exactly one target
    assert sorted(perm.tolist()) == list(range(64))
    assert torch.equal(perm, shuffle)


def test_batch_assignment_rejects_bad_shapes_and_nans():
    with pytest.raises(ValueError, match="at least as many targets"):
        batch_assignment(torch.randn(5, 3), torch.randn(4, 3))
    with pytest.raises(ValueError):
        batch_assignment(torch.randn(5, 3), torch.randn(5, 4))
    with pytest.raises(FloatingPointError):
        batch_assignment(torch.full((3, 2), float("nan")), torch.randn(3, 2))


def check_one_to_one(a: Assignment):
    assert len(torch.unique(a.table)) == a.n
    assert torch.equal(a.owner[a.table], torch.arange(a.n))
    assert int((a.owner >= 0).sum()) == a.n


@pytest.mark.parametrize("n,k", [(50, 50), (50, 80)])
def test_table_stays_one_to_one_and_batch_loss_never_rises(n, k):
    targets = sample_sphere(k, 4, seed=3)
    a = Assignment(n, k, seed=0)
    check_one_to_one(a)
    g = torch.Generator().manual_seed(1)
    z_all = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1)
    used_free = False
    for _ in range(30):
        idx = torch.randperm(n, generator=g)[:10]
        before = (z_all[idx] - targets[a.table[idx]]).pow(2).sum()
        old = a.table.clone()
        a.update(idx, z_all[idx], targets)
        after = (z_all[idx] - targets[a.table[idx]]).pow(2).sum()
        assert after <= before + 1e-5
        untouched = torch.ones(n, dtype=torch.bool)
        untouched[idx] = False
        assert torch.equal(a.table[untouched], old[untouched])  # only the batch moves
        used_free |= bool((~torch.isin(a.table[idx], old)).any())
        check_one_to_one(a)
    assert used_free == (k > n)  # free targets compete only when k > n


def test_apply_refuses_to_break_one_to_one():
    a = Assignment(4, 6, seed=0)
    with pytest.raises(RuntimeError, match="two samples"):
        a.apply(torch.tensor([0, 1]), torch.tensor([5, 5]))
    other = int(a.table[3])
    with pytest.raises(RuntimeError, match="outside the batch"):
        a.apply(torch.tensor([0]), torch.tensor([other]))
    check_one_to_one(a)


def test_k_smaller_than_n_is_an_error():
    with pytest.raises(ValueError, match="k >= n"):
        Assignment(10, 5)


def test_ranks_share_free_targets_without_collisions():
    """Two ranks solving disjoint batches at once never hand out the same free target."""
    n, k, d = 20, 60, 4
    targets = sample_sphere(k, d)
    ranks = [Assignment(n, k, seed=7) for _ in range(2)]
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    for _ in range(10):
        perm = torch.randperm(n, generator=g)
        batches = [perm[:5], perm[5:10]]
        news = [ranks[r].solve(batches[r], z[batches[r]], targets, rank=r, world=2) for r in range(2)]
        for a in ranks:  # every rank applies every rank's update, in rank order
            for idx, new in zip(batches, news):
                a.apply(idx, new)
    assert torch.equal(ranks[0].table, ranks[1].table)
    check_one_to_one(ranks[0])


def test_state_dict_round_trip():
    a = Assignment(10, 15, seed=2)
    a.update(torch.arange(5), torch.randn(5, 3), sample_sphere(15, 3))
    b = Assignment(10, 15, seed=99)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.table, b.table) and torch.equal(a.owner, b.owner)
    assert torch.equal(a.candidates(torch.arange(3)), b.candidates(torch.arange(3)))
    with pytest.raises(ValueError, match="n=10"):
        Assignment(11, 15).load_state_dict(a.state_dict())
