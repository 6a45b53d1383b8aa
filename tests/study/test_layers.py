import torch
import torch.nn.functional as F

from nattools import data as D
from nattools.assign import batch_assignment
from nattools.models import small_net
from nattools.study.assignment import greedy_assignment, sinkhorn_assignment
from nattools.study.layers import conv_blocks, extract_layers, probe_layers
from nattools.targets import sample_sphere


def test_alternatives_are_permutations_and_no_better_than_hungarian():
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(40, 5, generator=g), dim=1)
    c = sample_sphere(40, 5)
    best = float((z * c[batch_assignment(z, c)]).sum())
    for solver in (greedy_assignment, sinkhorn_assignment):
        perm = solver(z, c)
        assert sorted(perm.tolist()) == list(range(40))
        assert float((z * c[perm]).sum()) <= best + 1e-5


def test_layers_are_the_five_conv_blocks_pooled_to_similar_sizes():
    torch.manual_seed(0)
    model = small_net(d=16, width=8).eval()
    x = torch.rand(4, 3, 32, 32)
    blocks = conv_blocks(model, x)
    assert [b.shape[1] for b in blocks] == [8, 16, 24, 24, 16]
    assert torch.allclose(F.relu(blocks[-1]), blocks[-1])
    assert torch.allclose(F.max_pool2d(blocks[-1], 2), model.features(x), atol=1e-6)  # conv5 -> pool = features
    ds = D.Indexed(D.load("digits", "val"), D.eval_transform(32))
    feats, y, grids = extract_layers(model, ds, dims=256, batch_size=64)
    assert grids == [min(b.shape[-1], round((256 / b.shape[1]) ** 0.5)) for b in blocks]
    assert [f.shape for f in feats] == [(len(ds), b.shape[1] * p * p) for b, p in zip(blocks, grids)]
    assert torch.allclose(feats[0][:4], F.adaptive_avg_pool2d(conv_blocks(model, torch.stack([ds[i][0] for i in range(4)]))[0], grids[0]).flatten(1), atol=1e-5)
    rows = probe_layers(model, ds, ds, dims=64, epochs=2)
    assert [r["layer"] for r in rows] == [1, 2, 3, 4, 5] and all(0 < r["linear"] <= 1 for r in rows)
