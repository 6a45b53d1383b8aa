import torch
import torch.nn.functional as F

from nattools import data as D
from nattools.evaluate import Pixels, embed_and_pool, extract, frozen, knn_accuracy, linear_probe, uniformity
from nattools.models import small_net
from nattools.targets import sample_sphere


def test_extract_gives_embed_and_pooled_features_in_one_pass():
    torch.manual_seed(0)
    model = small_net(d=16, width=8).eval()
    ds = D.Indexed(D.load("digits", "val"), D.eval_transform(32))
    z, f, y = extract(model, ds, pool=2, batch_size=64)
    x = torch.stack([ds[i][0] for i in range(5)])
    assert z.shape == (len(ds), 16) and f.shape == (len(ds), 16 * 4) and len(y) == len(ds)
    assert torch.allclose(z[:5], model.embed(x), atol=1e-5)
    assert torch.allclose(f[:5], F.adaptive_avg_pool2d(model.features(x), 2).flatten(1), atol=1e-5)
    (z5, f5), labels = frozen(model, x, lambda m, b: embed_and_pool(m, b, 2), batch_size=2)   # a tensor: no labels
    assert labels is None and torch.allclose(z5, z[:5], atol=1e-5) and torch.allclose(f5, f[:5], atol=1e-5)


def test_knn_and_linear_probe_on_separable_and_random_data():
    g = torch.Generator().manual_seed(0)
    centres = sample_sphere(4, 8, seed=1) * 5
    y = torch.randint(0, 4, (400,), generator=g)
    x = centres[y] + 0.3 * torch.randn(400, 8, generator=g)
    assert knn_accuracy(x[:300], y[:300], x[300:], y[300:], k=5) == 1.0
    assert linear_probe(x[:300], y[:300], x[300:], y[300:], epochs=50, lr=1e-2) > 0.95
    noise = torch.randn(400, 8, generator=g)       # labels unrelated to the features: near chance
    assert knn_accuracy(noise[:300], y[:300], noise[300:], y[300:], k=5) < 0.45


def test_uniformity_separates_spread_from_collapsed_points():
    spread = uniformity(sample_sphere(1000, 64))
    collapsed = uniformity(F.normalize(torch.ones(1000, 64) + 0.01 * torch.randn(1000, 64), dim=1))
    assert abs(spread - (-4.0)) < 0.3 and collapsed > -0.1


def test_pixel_baseline_features_are_the_sobel_gradients():
    ds = D.Indexed(D.load("digits", "val"), D.eval_transform(32))
    z, f, _ = extract(Pixels("sobel"), ds, pool=32, batch_size=64)
    x = torch.stack([ds[i][0] for i in range(3)])
    sobel = Pixels("sobel").front(x)                                   # (3, 2, 32, 32)
    assert f.shape == (len(ds), 2 * 32 * 32) and torch.allclose(f[:3], sobel.flatten(1), atol=1e-5)
    assert torch.allclose(z[:3], F.normalize(sobel.flatten(1), dim=1), atol=1e-5)


def test_knn_by_layer_script_scores_every_stage_of_three_networks(tiny_cfg, tmp_path, capsys):
    """bench/knn_by_layer.py: kNN-20 on pooled features, hidden layer and embedding, for a
    trained network, the same with BN re-estimated, and its random init; the embed column is
    exactly what the eval protocol's kNN reports."""
    import importlib.util
    import json
    from pathlib import Path
    import nattools
    from nattools.evaluate import evaluate_model
    spec = importlib.util.spec_from_file_location("knn_by_layer", Path(__file__).parents[2] / "scripts" / "knn_by_layer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cfg = tiny_cfg(epochs=1, val_fraction=0.2)
    nattools.train(cfg)
    out = tmp_path / "layers.json"
    assert script.main([str(cfg.checkpoint_path), "--out", str(out)]) == 0
    table = json.loads(out.read_text())["knn20"]
    assert list(table) == ["trained", "trained, BN re-estimated", "random init"]
    stages = ["features_1x1", "features_2x2", "hidden", "embed"]
    assert all(set(row) == {s + suffix for s in stages for suffix in ("", "_standardised")} for row in table.values())
    assert all(0 <= v <= 1 for row in table.values() for v in row.values())
    model, cfg2 = nattools.load_checkpoint(cfg.checkpoint_path)
    assert table["trained"]["embed"] == evaluate_model(model, cfg2, probe_epochs=0)["knn20_embed"]
    assert "random init" in capsys.readouterr().out
