import dataclasses

import pytest
import torch
import torch.nn.functional as F

from nattools.config import TrainConfig
from nattools.evaluate import random_init
from nattools.study import neighbours as nb


def test_search_is_brute_force_cosine_in_any_chunking():
    g = torch.Generator().manual_seed(0)
    q, m = torch.randn(37, 12, generator=g), torch.randn(200, 12, generator=g)
    sim = F.normalize(q, dim=1) @ F.normalize(m, dim=1).T
    want = sim.sort(dim=1, descending=True)
    for chunk in (5, 37, 1000):
        s, i = nb.search(q, m, k=7, chunk=chunk)
        assert torch.equal(i, want.indices[:, :7]) and torch.allclose(s, want.values[:, :7])
    # cosine: scaling a memory row changes nothing
    assert torch.equal(nb.search(q, m * torch.rand(200, 1, generator=g) * 10, k=7)[1], want.indices[:, :7])
    with pytest.raises(ValueError):
        nb.search(q, m[:3], k=7)


def test_precision_counts_same_class_neighbours_among_the_first_k():
    memory_labels = torch.tensor([0, 0, 1, 1, 2])
    query_labels = torch.tensor([0, 1])
    idx = torch.tensor([[0, 2, 1],      # hit, miss, hit
                        [4, 2, 3]])     # miss, hit, hit
    p = nb.precision_at_k(idx, query_labels, memory_labels)
    assert torch.allclose(p, torch.tensor([(1 + 0) / 2, (0.5 + 0.5) / 2, (2 / 3 + 2 / 3) / 2]))
    per = nb.precision_per_class(idx, query_labels, memory_labels, 3)
    assert torch.allclose(per[:2], torch.tensor([2 / 3, 2 / 3])) and per[2].isnan()
    d, se = nb.difference(idx, idx.flip(1), query_labels, memory_labels, k=1)   # first: [0, 4] vs [1, 3]
    assert d == pytest.approx(((1 - 1) + (0 - 1)) / 2) and se > 0


def test_chance_level_is_what_random_neighbours_get():
    g = torch.Generator().manual_seed(0)
    memory_labels = torch.randint(0, 4, (400,), generator=g) ** 2 % 5      # unbalanced classes 0, 1, 4
    query_labels = torch.tensor([0, 1, 4, 4, 4])
    random_idx = torch.randint(0, 400, (5, 20000), generator=g)
    measured = float(nb.precision_at_k(random_idx, query_labels, memory_labels)[-1])
    assert measured == pytest.approx(nb.chance_precision(query_labels, memory_labels), abs=0.01)
    assert nb.class_shares(memory_labels, 5).sum() == pytest.approx(1.0)


def test_overlap_of_neighbour_sets_ignores_order():
    a = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert nb.overlap(a, a.flip(1)) == 1.0
    assert nb.overlap(a, a + 10) == 0.0
    assert nb.overlap(a, torch.tensor([[3, 9, 9, 9], [7, 6, 9, 9]])) == pytest.approx(3 / 8)


def test_sobel_space_ignores_brightness_and_colour_space_does_not():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16, generator=g) * 0.8
    assert torch.allclose(nb.pixels(x + 0.2, "sobel"), nb.pixels(x, "sobel"), atol=1e-5)
    assert not torch.allclose(nb.pixels(x + 0.2, "rgb"), nb.pixels(x, "rgb"), atol=1e-3)
    assert nb.pixels(x, "sobel").shape == (6, 2 * 16 * 16)


def test_random_init_is_seeded_with_batchnorm_statistics_of_the_images():
    cfg = TrainConfig(dataset="digits", width=8, d=16)
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cfg = dataclasses.replace(cfg, seed=3)
    a, b = random_init(cfg, x), random_init(cfg, x)
    assert not a.training
    bn = a.trunk[1]                                                          # conv1's BatchNorm
    assert bn.running_mean.abs().sum() > 0 and not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    za, zb = nb.embedding(a)(x), nb.embedding(b)(x)
    assert torch.equal(za, zb) and torch.allclose(za.norm(dim=1), torch.ones(64))
    assert not torch.equal(za, nb.embedding(random_init(dataclasses.replace(cfg, seed=4), x))(x))


def test_slider_and_app_mark_the_neighbours_of_the_query_class():
    pytest.importorskip("ipywidgets")
    from nattools.study import chapter
    queries, memory = chapter.Sample("digits", 3, "val"), chapter.Sample("digits", 10)
    found = {"a": torch.tensor([[0, 2, 1]] * 3), "b": torch.tensor([[1, 3, 5]] * 3)}
    hits = [int((memory.labels[found["a"][0]] == queries.labels[i]).sum()) for i in range(3)]
    gallery = nb.Gallery(queries, memory, queries.classes, found)
    fig = nb.neighbours_slider(gallery, queries=range(3), show=3)
    assert len(fig.data) == 3 and [t.visible for t in fig.data] == [True, False, False]
    assert list(fig.layout.yaxis.ticktext)[0] == f"a: {hits[0]} of 3"
    assert fig.layout.sliders[0].steps[2].args[1]["yaxis.ticktext"][0] == f"a: {hits[2]} of 3"
    app = nb.neighbours_app(gallery, start=0, show=3)
    slider, info, sheet = app.children
    first = sheet.value
    slider.value = 1
    assert f"a: {hits[1]} of 3" in info.value and (sheet.value != first or hits[0] == hits[1])
    assert len(memory._decoded) <= 6                                    # only the images shown were opened


def test_knn_vote_is_evaluate_s_knn_from_the_neighbours_found():
    from nattools.evaluate import knn_predict
    g = torch.Generator().manual_seed(1)
    q, m, labels = torch.randn(50, 8, generator=g), torch.randn(300, 8, generator=g), torch.randint(0, 4, (300,))
    _, idx = nb.search(q, m, k=20)
    assert torch.equal(nb.knn_vote(idx, labels, 4), knn_predict(m, labels, q, k=20))


def test_within_finds_what_a_search_in_the_smaller_memory_finds():
    g = torch.Generator().manual_seed(2)
    q, m = torch.randn(20, 6, generator=g), torch.randn(400, 6, generator=g)
    keep = torch.rand(400, generator=g) < 0.5
    _, idx = nb.search(q, m, k=60)
    rows = keep.nonzero().squeeze(1)
    _, small = nb.search(q, m[keep], k=5)
    assert torch.equal(nb.within(idx, keep, 5), rows[small])
    with pytest.raises(ValueError, match="fewer than 5"):
        nb.within(idx[:, :3], keep, 5)


def test_neighbours_are_searched_once_and_read_back(tmp_path, monkeypatch):
    """neighbours() stores its search (NATTOOLS_STORE) and reads it back only for the same spaces
    and images; a random-init space is measured with BatchNorm statistics of the memory."""
    from nattools.models import small_net
    from nattools.study import chapter
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "results").mkdir(parents=True)
    monkeypatch.setenv("NATTOOLS_STORE", "1")
    cfg = TrainConfig(width=4, d=8, seed=2)
    queries, memory = chapter.Sample("digits", 6, "val"), chapter.Sample("digits", 30)
    spaces = {"net": small_net(d=8, width=4), "random": ("random", cfg), "pixels": "sobel",
              "features": ("features", ("random", cfg))}
    found, read = nb.neighbours(spaces, queries, memory, k=4, name="x")
    assert not read and all(v.shape == (6, 4) for v in found.values())
    again, read = nb.neighbours(spaces, queries, memory, k=4, name="x")
    assert read and all(torch.equal(found[s], again[s]) for s in spaces)
    rnd = random_init(cfg, memory.images())
    assert torch.equal(found["random"], nb.search(nb.embedding(rnd)(queries.images()),
                                                  nb.embedding(rnd)(memory.images()), 4)[1])
    assert nb.pooled_features(rnd)(queries.images()).shape == (6, rnd.head[2].in_features)  # what the head reads
    _, read = nb.neighbours({**spaces, "pixels": "rgb"}, queries, memory, k=4, name="x")
    assert not read


def test_neighbour_agreement_and_its_chance_level():
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    z = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.98, -0.1], [0.0, 1.0], [0.1, 0.99], [-0.1, 0.98]])
    assert nb.neighbour_agreement(z, groups, k=2) == 1.0                # each point's 2 nearest: its group
    assert nb.neighbour_agreement(z, groups.roll(3), k=2) == 1.0        # group names do not matter
    assert nb.neighbour_agreement(z, torch.tensor([0, 1, 0, 1, 0, 1]), k=2) < 0.5
    assert nb.chance_agreement(groups) == pytest.approx(0.5)            # (1/2)^2 + (1/2)^2
    assert nb.chance_agreement(torch.tensor([0, 0, 0, 2])) == pytest.approx(0.75 ** 2 + 0.25 ** 2)
