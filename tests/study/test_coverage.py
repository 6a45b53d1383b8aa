import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nattools import data
from nattools.evaluate import embed, uniformity
from nattools.study import coverage
from nattools.targets import TargetStore, sample_sphere


def test_pairwise_cosines_of_antipodal_identical_and_orthogonal_points():
    v = F.normalize(torch.tensor([[1.0, 2.0, 2.0]]), dim=1)
    assert torch.allclose(coverage.pairwise_cosines(torch.cat([v, -v])), torch.tensor([-1.0]))
    assert torch.allclose(coverage.pairwise_cosines(v.repeat(4, 1)), torch.ones(6))
    cos = coverage.pairwise_cosines(3 * torch.eye(4))              # rows are normalised first
    assert cos.shape == (6,) and torch.allclose(cos, torch.zeros(6))


def test_cosine_density_puts_the_mass_where_the_cosines_are():
    x, dens = coverage.cosine_density(torch.tensor([-1.0, -1.0, 1.0, 1.0]), bins=10)
    assert np.isclose(dens.sum() * 0.2, 1.0)
    assert np.isclose(dens[0], 2.5) and np.isclose(dens[-1], 2.5) and dens[1:-1].sum() == 0
    assert np.allclose(x, np.linspace(-0.9, 0.9, 10))


@pytest.mark.parametrize("d", [3, 16, 128])
def test_exact_cosine_law_matches_sampled_targets(d):
    s = np.linspace(-0.999, 0.999, 20001)
    dens = coverage.sphere_cosine_density(d, s)
    assert abs(np.trapezoid(dens, s) - 1) < 1e-2
    if d == 3:
        assert np.allclose(dens, 0.5)                                # Archimedes: flat on [-1, 1]
    cos = coverage.pairwise_cosines(sample_sphere(600, d, seed=1))
    x, hist = coverage.cosine_density(cos, bins=20)
    assert np.abs(hist - coverage.sphere_cosine_density(d, x)).max() < 0.1 * hist.max()
    assert abs(float(cos.pow(2).mean()) - 1 / d) < 0.1 / d           # E cos^2 = 1/d


def test_exact_cosine_cdf():
    s = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert np.allclose(coverage.sphere_cosine_cdf(3, s), (s + 1) / 2, atol=1e-6)    # d = 3: uniform on [-1, 1]
    cos = coverage.pairwise_cosines(sample_sphere(600, 64, seed=3))
    for q in (-0.1, 0.0, 0.05):
        assert abs(float((cos <= q).float().mean()) - coverage.sphere_cosine_cdf(64, q)) < 0.02


def test_cosine_figure_density_and_cumulative():
    cos = coverage.pairwise_cosines(sample_sphere(100, 3, seed=0))
    for cumulative in (False, True):
        fig = coverage.cosine_figure({"a": (3, {"x": cos}), "b": (3, {"x": cos, "y": -cos})}, cumulative=cumulative)
        assert [t.name for t in fig.data] == ["x", "uniform on the sphere (exact)", "x", "y",
                                              "uniform on the sphere (exact)"]
        assert [t.showlegend for t in fig.data] == [True, True, False, True, False]
        if cumulative:
            assert np.isclose(fig.data[0].y[-1], 1.0) and np.all(np.diff(fig.data[0].y) >= 0)


def test_sphere_uniformity_closed_form_and_sample():
    # d = 3: cos is uniform on [-1, 1], so E exp(4 (cos - 1)) = (1 - e^-8) / 8
    assert math.isclose(coverage.sphere_uniformity(3), math.log((1 - math.exp(-8)) / 8), rel_tol=1e-4)
    for d in (3, 32):
        assert abs(uniformity(sample_sphere(2000, d, seed=2)) - coverage.sphere_uniformity(d)) < 0.05
    assert coverage.sphere_uniformity(4096) < coverage.sphere_uniformity(128) < coverage.sphere_uniformity(3)


def test_effective_dimension():
    assert math.isclose(coverage.effective_dimension(torch.eye(8).repeat(5, 1)), 8, rel_tol=1e-9)
    v = torch.randn(1, 16)
    assert math.isclose(coverage.effective_dimension(torch.cat([v, -v, 2 * v])), 1, rel_tol=1e-9)
    assert abs(coverage.effective_dimension(sample_sphere(4000, 32)) - 32) < 2


def test_class_concentration():
    v = F.normalize(torch.randn(1, 5), dim=1)
    z = torch.cat([v.repeat(3, 1), torch.eye(5)[:2], -torch.eye(5)[:2]])
    conc = coverage.class_concentration(z, torch.tensor([0, 0, 0, 1, 1, 1, 1]), n_classes=3)
    assert torch.isclose(conc[0], torch.tensor(1.0)) and torch.isclose(conc[1], torch.tensor(0.0))
    assert torch.isnan(conc[2])


def test_own_target_stats_on_a_known_configuration():
    c = torch.eye(4)                                                 # k = 4 targets
    z = F.normalize(torch.tensor([[1.0, 0.5, 0, 0], [0, 0, 1.0, 0]]), dim=1)
    st = coverage.own_target_stats(z, torch.tensor([1, 2]), c, chunk=3)  # chunks must not matter
    assert st["rank"].tolist() == [2, 1]                             # image 0 holds its 2nd nearest target
    assert torch.allclose(st["cos_nearest"], torch.tensor([z[0, 0], 1.0]))
    assert torch.allclose(st["cos_own"], torch.tensor([z[0, 1], 1.0]))


def test_assign_fixed_with_spare_targets_moves_images_onto_close_targets():
    z = sample_sphere(200, 3, seed=5)
    targets = TargetStore(800, 3, seed=6)
    table, hist = coverage.assign_fixed(z, targets, epochs=8, batch_size=50)
    assert len(torch.unique(table)) == 200 and int(table.max()) < 800   # one-to-one into k targets
    assert hist[0] < 0.2 and hist[-1] > 0.9 and hist[-1] >= hist[1]     # random start -> near targets
    square, hist_sq = coverage.assign_fixed(z, TargetStore(200, 3, seed=6), epochs=8, batch_size=50)
    assert sorted(square.tolist()) == list(range(200)) and hist_sq[-1] < hist[-1]  # k = n: less choice


def test_load_run_trains_a_stand_in_when_the_data_set_is_missing(tiny_cfg, capfd):
    import nattools
    cfg = tiny_cfg(epochs=1, limit=128)
    nattools.train(cfg)
    # (a run whose images are at hand keeps its table: tests/study/test_stand_in.py)
    # pretend the checkpoint is from a data set we do not have: a stand-in is trained on digits
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    state["config"]["dataset"] = "stl10"
    torch.save(state, cfg.checkpoint_path)
    capfd.readouterr()
    model, stand, stored = coverage.load_run(cfg.checkpoint_path, "digits", epochs=1, limit=64, batch_size=32)
    out = capfd.readouterr()
    assert "not available here" in out.out and out.err == ""          # a book page fails on stderr
    assert stand.dataset == "digits" and stand.d == 16 and stand.limit == 64
    assert stored["n"] == 64 and sorted(stored["table"].tolist()) == list(range(64))   # the stand-in's own table
    x, y, idx, classes = data.sample("digits", 10, size=stand.image_size, val_fraction=stand.val_fraction,
                                     limit=stand.limit)
    assert x.shape == (10, 3, 32, 32) and int(idx.max()) < 64 and len(classes) == 10
    z = embed(model, x)
    assert z.shape == (10, 16) and torch.allclose(z.norm(dim=1), torch.ones(10), atol=1e-5)


def test_run_table_and_embedding_with_batch_statistics(tiny_cfg):
    import nattools
    cfg = tiny_cfg(epochs=1, limit=96)
    nattools.train(cfg)
    run = coverage.run_table(cfg.checkpoint_path)
    assert run["n"] == run["k"] == 96 and sorted(run["table"].tolist()) == list(range(96))
    assert len(run["history"]) == 1
    model, _ = nattools.load_checkpoint(cfg.checkpoint_path)
    x, _, _, _ = data.sample("digits", 64, limit=cfg.limit)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    z_eval = embed(model, x)
    z_batch = embed(model, x, batch=32, batch_stats=True)
    assert not model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.allclose(z_eval, z_batch, atol=1e-3)                # running vs batch statistics
    for m in model.modules():                                          # other running statistics:
        if isinstance(m, torch.nn.BatchNorm2d):                         # eval embeddings move, batch ones do not
            m.running_mean += 0.5
    assert not torch.allclose(embed(model, x), z_eval, atol=1e-3)
    assert torch.allclose(embed(model, x, batch=32, batch_stats=True), z_batch, atol=1e-5)


def test_three_d_figures_show_what_they_say():
    z = sample_sphere(60, 3, seed=0)
    labels = torch.arange(60) % 3
    fig = coverage.sphere_by_class(z, labels, ["a", "b", "c"])
    menu = fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == ["all classes", "a", "b", "c"]
    assert all(len(b.args[0]["visible"]) == len(fig.data) for b in menu.buttons)
    assert [len(t.x) for t in fig.data[2:]] == [20, 20, 20]              # one trace per class, all shown first
    assert menu.buttons[2].args[0]["visible"] == [True, True, False, True, False]
    targets = sample_sphere(240, 3, seed=1)
    tables = {60: (torch.arange(60), targets[:60]), 240: (torch.arange(0, 240, 4), targets)}
    fig = coverage.held_targets_figure(z, tables, active=1)
    free, held = fig.data[4], fig.data[5]                                # traces of k = 240
    assert (len(free.x), len(held.x)) == (180, 60) and held.visible and free.visible
    assert not fig.data[2].visible and len(fig.data[2].x) == 0 and len(fig.data[3].x) == 60  # k = n: none free
    assert np.allclose(np.asarray(held.x, dtype=float), targets[::4, 0].numpy())
    assert fig.layout.updatemenus[0].active == 1 and "240" in fig.layout.title.text


def test_sampled_rows_are_the_images_the_trainer_indexes_when_it_used_limit(tiny_cfg):
    """data.sample(..., limit) draws from the trainer's seeded subset (data.subset), not from a prefix:
    sample idx i is row i of the run's assignment table, the image the trainer holds at index i."""
    from nattools.train import training_data
    cfg = tiny_cfg(limit=200)
    held, n, _ = training_data(cfg, "cpu", 1, progress=False)              # (uint8 image, label, index)
    x, y, idx, _ = data.sample("digits", 50, seed=3, limit=cfg.limit)
    assert n == 200 and int(idx.max()) < 200 and len(torch.unique(idx)) == 50
    assert torch.equal((x * 255).round().to(torch.uint8), held.images[idx])
    assert torch.equal(y, held.labels[idx])
    prefix = torch.stack([data.eval_transform(32)(data.load("digits", "train")[i][0]) for i in idx.tolist()])
    assert not torch.allclose(prefix, x)                                   # what the old code assumed


def test_measure_reports_and_fit_of_a_small_run(tiny_cfg, tmp_path, monkeypatch):
    import nattools
    cfg = tiny_cfg(epochs=1, limit=96)
    nattools.train(cfg)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "results").mkdir(parents=True)
    monkeypatch.setenv("NATTOOLS_STORE", "1")
    r = coverage.measure(cfg.checkpoint_path, "digits", 40)
    assert r["cfg"].dataset == "digits" and r["stored"]["n"] == 96 and r["classes"] == [str(i) for i in range(10)]
    assert r["x"].shape == (40, 3, 32, 32) and torch.equal(r["own"], r["stored"]["table"][r["idx"]])
    x = r["x"].images()
    assert torch.allclose(r["z"], embed(r["model"], x), atol=2e-3)          # stored in float16, renormalised
    for key in ("z", "views", "z_random"):
        assert r[key].shape == (40, 16) and torch.allclose(r[key].norm(dim=1), torch.ones(40), atol=1e-5)
    assert not torch.allclose(r["z"], r["views"]) and not torch.allclose(r["z"], r["z_random"])
    assert r["crop_cos"].shape == r["random_crop_cos"].shape == (40,) and r["crop_cos"].max() <= 1 + 1e-5
    assert r["batch_uniformity"] == pytest.approx(uniformity(embed(r["model"], x, batch_stats=True)))
    assert torch.allclose(r["targets"][r["own"]], TargetStore(96, 16, seed=cfg.seed)[r["own"]])
    again = coverage.measure(cfg.checkpoint_path, "digits", 40)            # read back from the stored file
    assert (tmp_path / "data/results/book/09_tiny.pt").is_file() and torch.equal(again["z"], r["z"])
    stats, (d, cosines) = coverage.spread(r)
    assert d == 16 and list(stats) == ["targets held", "NAT, crops", "NAT, whole images", "random init",
                                       "uniform (exact)"]
    assert all(len(c) == 40 * 39 // 2 for c in cosines.values()) and stats["uniform (exact)"]["effective_dim"] == 16
    rows, (d, fits) = coverage.target_fit(r)
    assert rows["targets k"] == 96 and rows["every target held once"] is True
    assert rows["cos between two crops of an image"] == pytest.approx(float(r["crop_cos"].mean()))
    assert len(fits) == 3 and all(len(v) == 40 for v in fits.values())
    assert (fits["nearest of all k targets"] >= fits["own target, stored table (new crop)"] - 1e-6).all()


def test_class_separation():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    z = F.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.0], [1.0, -0.1], [-1.0, 0.1], [-1.0, 0.0], [-1.0, -0.1]]), dim=1)
    separation, agreement = coverage.class_separation(z, labels, k=2)
    assert separation > 1 and agreement == 1.0
    separation, agreement = coverage.class_separation(z, torch.tensor([0, 1, 0, 1, 0, 1]), k=2)
    assert separation < 0.5 and agreement < 0.5


def test_load_run_trains_a_stand_in_when_the_copy_here_holds_other_images(tiny_cfg, capfd):
    """A checkpoint of the data set at hand, trained on another copy of it (another number of
    images): its table indexes other images, so a stand-in is trained, and the line says why."""
    import nattools
    cfg = tiny_cfg(epochs=1, limit=128)
    nattools.train(cfg)
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    state["config"]["limit"] = 100                                      # as if this copy held 100 images
    torch.save(state, cfg.checkpoint_path)
    assert coverage.not_at_hand(nattools.TrainConfig(**state["config"]), 128, "digits") == \
        "was trained on 128 images of digits, and the copy here gives 100"
    assert coverage.not_at_hand(cfg, 128, "digits") is None
    capfd.readouterr()
    model, stand, stored = coverage.load_run(cfg.checkpoint_path, "digits", epochs=1, batch_size=32)
    out = capfd.readouterr()
    assert "128 images of digits" in out.out and "stand-in" in out.out and out.err == ""
    assert stand.limit == 100 and stored["n"] == 100
