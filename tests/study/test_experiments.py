"""The live experiments of chapters 1-6 (nattools.study.objective, assignment, preprocessing, training)."""
import pytest
import torch
import torch.nn.functional as F

from nattools import data
from nattools.assign import Assignment, batch_assignment
from nattools.study import assignment, objective, preprocessing, training
from nattools.targets import TargetStore


def test_sweep_re_solves_every_batch_and_reaches_a_fixed_point():
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(60, 8, generator=g), dim=1)
    c = TargetStore(60, 8, seed=1).all()
    table = Assignment(60, 60, seed=0)
    order = torch.randperm(60, generator=g)
    before = assignment._score(z, c, table.table)
    changed = assignment.sweep(table, z, c, order, 16)
    assert changed > 0 and sorted(table.table.tolist()) == list(range(60))
    assert assignment._score(z, c, table.table) > before
    assert assignment.sweep(table, z, c, order, 16) == 0                 # the same batches again: nothing moves
    for idx in order.split(16):                                         # each batch holds its best permutation
        held = table.table[idx]
        assert torch.equal(held[batch_assignment(z[idx], c[held])], held)
    fresh = Assignment(60, 60, seed=0)
    assignment.sweep(fresh, z, c, order, 16, full_batches=True)          # the last 12 are left alone
    assert torch.equal(fresh.table[order[48:]], Assignment(60, 60, seed=0).table[order[48:]])


def test_batch_vs_full_progresses_towards_the_optimum():
    res = assignment.batch_vs_full(n=64, d=8, batch_sizes=(8, 64), epochs=2)
    assert res["runs"][64]["progress"][1] == pytest.approx(1.0)        # one batch of all n: the optimum
    p = res["runs"][8]["progress"]
    assert p[0] == 0 and 0 < p[1] <= p[2] <= 1 + 1e-9


def test_run_nat_modes_call_the_one_nat_step():
    x = torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    runs = {mode: objective.run_nat(x, d=3, steps=6, batch_size=10, assign=mode, snapshots=2, width=4)
            for mode in ("hungarian", "nearest", "fixed")}
    nat, near, fixed = runs["hungarian"], runs["nearest"], runs["fixed"]
    assert sorted(nat["snap_table"][-1].tolist()) == list(range(40))      # one-to-one, always
    assert max(nat["changed"]) > 0 and fixed["changed"] == [0.0] * 6
    assert torch.equal(fixed["snap_table"][0], fixed["snap_table"][-1])
    assert near["snap_used"][-1] < 40                                    # targets shared: collapse begins
    assert len(nat["snap_z"]) == 3 and nat["snap_z"][-1].shape == (40, 3)
    assert nat["snap_spread"][0] == pytest.approx(1 - float(nat["snap_z"][0].mean(0).norm() ** 2), abs=1e-5)
    assert objective.spread(torch.eye(3).repeat(2, 1)) == pytest.approx(1 - 1 / 3)
    again = objective.run_nat(x, d=3, steps=6, batch_size=10, snapshots=2, width=4)
    assert again["loss"] == nat["loss"]                                   # seeded
    with pytest.raises(ValueError):
        objective.run_nat(x, assign="greedy")


def test_nearest_step_takes_the_closest_target_even_if_shared():
    c = torch.eye(3)
    z = F.normalize(torch.tensor([[1.0, 0.1, 0.0], [1.0, 0.0, 0.1]]), dim=1).requires_grad_()
    table = Assignment(2, 3, seed=0)
    loss, changed = objective.nearest_step(z, torch.tensor([0, 1]), table, c)
    assert table.table.tolist() == [0, 0] and loss.requires_grad
    assert loss.item() == pytest.approx(float((z.detach() - c[0]).pow(2).sum(1).mean()))


def test_augmentation_grid_shows_each_image_and_its_crops():
    base = data.load("digits", "train")
    fig = preprocessing.augmentation_grid(base, base.classes, images=2, views=3, seed=1)
    assert len(fig.data) == 2 * 4
    titles = [a.text for a in fig.layout.annotations]
    assert titles[1:4] == ["crop 1", "crop 2", "crop 3"] and titles[0] in base.classes


def test_train_live_and_the_churn_of_a_frozen_network(tiny_cfg):
    cfg = tiny_cfg(epochs=1, limit=96, name="live")
    live = training.train_live(cfg, command="test")
    assert live.results["command"] == "test" and live.cfg.out == "" and not live.model.training
    assert len(live.step_loss) == 96 // cfg.batch_size and live.assignment["n"] == 96
    x, _, idx, _ = data.sample("digits", 96, limit=96)
    churn = training.reassignment_churn(live.model, x[idx.argsort()], live.assignment, cfg)
    assert list(churn)[:2] == ["centre views, first pass (the table fits them)", "centre views, the same batches again"]
    assert churn["centre views, the same batches again"] == 0.0 and len(churn) == 5
    assert all(0 <= share <= 1 for share in churn.values())
