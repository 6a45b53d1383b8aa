"""Chapter 5's from-scratch NAT loop (the code a reader sees and changes) agrees with the library's
step, nattools.nat_step: same batch, same table, same targets -> the same new table and the same loss."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

import nattools
from nattools.assign import Assignment
from nattools.targets import TargetStore

CHAPTER = Path(__file__).resolve().parents[2] / "book" / "05_scaled_down_training.ipynb"


def chapter_code(*ids) -> dict:
    """Run the chapter's cells `ids` (their source as stored) -> the names they define."""
    cells = {c.get("id"): "".join(c["source"]) for c in json.loads(CHAPTER.read_text())["cells"]}
    namespace = {"torch": torch, "linear_sum_assignment": linear_sum_assignment}
    for cid in ids:
        exec(cells[cid], namespace)   # noqa: S102 (the book's own code)
    return namespace


@pytest.mark.parametrize("n,b,d", [(40, 10, 8), (120, 32, 16), (64, 64, 3)])
def test_scratch_step_agrees_with_nat_step(n, b, d):
    scratch_step = chapter_code("scratch")["scratch_step"]
    g = torch.Generator().manual_seed(n + b)
    targets = TargetStore(n, d, seed=1).all()
    library = Assignment(n, n, seed=2)
    table = library.table.clone()
    for _ in range(5):
        idx = torch.randperm(n, generator=g)[:b]
        z = F.normalize(torch.randn(b, d, generator=g), dim=1)
        out = nattools.nat_step(z, idx, library, targets, reassign=True)
        mine = scratch_step(z, idx, table, targets, reassign=True)
        assert torch.equal(table, library.table)
        assert torch.allclose(mine, out.loss)
    idx = torch.arange(b)                       # without re-solving: the loss against the held targets
    z = F.normalize(torch.randn(b, d, generator=g), dim=1)
    assert torch.allclose(scratch_step(z, idx, table, targets, reassign=False),
                          nattools.nat_step(z, idx, library, targets, reassign=False).loss)


def test_scratch_loop_trains_and_keeps_a_permutation():
    code = chapter_code("scratch", "scratch-loop")
    torch.manual_seed(0)
    net = nattools.build_model(nattools.TrainConfig(width=4, d=8, hidden=0))
    images = torch.rand(60, 3, 32, 32)
    targets = TargetStore(60, 8, seed=0).all()
    table, log = code["nat_loop"](net, images, targets, epochs=4, batch=20, reassign_every=3)
    assert sorted(table.tolist()) == list(range(60))
    assert [e for e, _, _ in log] == [1, 2, 3, 4]
    assert log[0][2] > 0 and log[1][2] == 0 and log[2][2] == 0          # epochs 2 and 3 keep the targets fixed
