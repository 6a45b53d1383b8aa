"""DeepCluster and SeLa beside NAT: k-means with re-seeding, Sinkhorn's equipartition, uniform sampling over
clusters, and the trainer's guarantees (they learn, resume bit-identically, refuse bad settings)."""
import dataclasses
import importlib

import pytest
import torch

import nattools
from nattools.config import ConfigError
from nattools.deepcluster import kmeans, uniform_over_clusters
from nattools.sela import sinkhorn

T = importlib.import_module("nattools.train")


def test_kmeans_reseeds_empty_clusters():
    """Three blobs and K = 5 from a start with two centroids far from every point: the first assignment
    leaves those two empty; re-seeding moves each onto a split of a non-empty cluster, so all 5 end with
    points, and the blobs' own clusters are the ones that were split."""
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + torch.randn(40, 2, generator=g) for c in centres])
    init = torch.cat([centres, torch.tensor([[100.0, 100.0], [-100.0, -100.0]])])
    assert torch.cdist(x, init).argmin(1).unique().tolist() == [0, 1, 2]   # without re-seeding: 2 empty
    cent, labels = kmeans(x, 5, iters=10, init=init)
    assert torch.bincount(labels, minlength=5).min() > 0
    assert torch.isfinite(cent).all() and cent.abs().max() < 20       # nothing left out at +-100
    for seed in range(5):                                                 # random starts: never an empty one
        assert torch.bincount(kmeans(x, 5, iters=10, seed=seed)[1], minlength=5).min() > 0
    with pytest.raises(ValueError, match="K=200, n=120"):
        kmeans(x, 200)


def test_sinkhorn_gives_an_equipartition():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(1000, 10, generator=g) + torch.linspace(0, 4, 10)   # some classes far likelier
    log_q = sinkhorn(logits, lam=10)
    q = log_q.exp()
    assert torch.allclose(q.sum(1), torch.full((1000,), 1e-3, dtype=q.dtype), rtol=1e-6)   # rows: 1/n
    assert (q.sum(0) * 10 - 1).abs().max() < 1e-2                                        # columns: 1/K
    counts = torch.bincount(log_q.argmax(1), minlength=10)
    assert counts.min() >= 80 and counts.max() <= 120, counts      # hard labels: 100 each, within 20%
    assert torch.bincount(logits.argmax(1), minlength=10).max() > 200   # the plain argmax is far from it
    with pytest.raises(ValueError, match="lambda must be > 0"):
        sinkhorn(logits, lam=0)


def test_uniform_over_clusters_draws_every_cluster_alike():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    order = uniform_over_clusters(labels, k=4, seed=0)   # cluster 3 is empty
    assert len(order) == 100
    counts = torch.bincount(labels[order], minlength=4)
    assert counts[3] == 0 and counts[:3].min() >= 32 and counts[:3].max() <= 35
    assert torch.equal(order, uniform_over_clusters(labels, k=4, seed=0))


def successor_cfg(tiny_cfg, objective, **kw):
    return tiny_cfg(**{"objective": objective, "clusters": 10, "reassign_every": 1, **kw})


@pytest.mark.parametrize("objective", ["deepcluster", "sela"])
def test_a_tiny_run_learns_on_digits(tiny_cfg, objective):
    """Its loss falls, and its pseudo-labels, which start as noise, come to carry the digits' classes
    (normalised mutual information with the true labels, never seen in training). (On digits a random
    network's kNN-20 is already about 81%: a 4-epoch run is not held against it here.)"""
    from sklearn.metrics import normalized_mutual_info_score as nmi
    from nattools import data as D
    cfg = successor_cfg(tiny_cfg, objective, limit=0, epochs=4, batch_size=64, width=16, d=32)
    h = nattools.train(cfg)["history"]
    assert h[-1]["loss"] < h[0]["loss"] and 0 <= h[1]["nmi"] <= 1 and 0 <= h[1]["changed"] <= 1
    truth = D.load("digits", "train", val_fraction=cfg.val_fraction).targets
    start = successor_cfg(tiny_cfg, objective, limit=0, batch_size=64, width=16, d=32)
    first = T.Run.build(start, len(truth), "cpu", "").pseudo.labels.reshape(-1, len(truth))[0]
    final = torch.load(cfg.checkpoint_path, weights_only=True)["pseudo_labels"].reshape(-1, len(truth))[0]
    assert nmi(truth, first.numpy()) < 0.05 and nmi(truth, final.numpy()) > 0.4
    model, loaded = nattools.load_checkpoint(cfg.checkpoint_path)
    assert loaded.objective == objective and model.classifier.out_features == 10
    assert T.evaluate_knn(model, loaded) > 0.5   # chance: 0.1


@pytest.mark.parametrize("objective,extra", [("deepcluster", {}), ("sela", {"heads": 2})])
def test_killed_and_resumed_run_equals_uninterrupted_run(tiny_cfg, tmp_path, objective, extra):
    class Killed(Exception):
        pass

    def kill(global_step, loss):
        if global_step == 11:   # 8 steps per epoch: in epoch 2, after its re-solve
            raise Killed
    ref = successor_cfg(tiny_cfg, objective, out=str(tmp_path / "ref"), epochs=3, ckpt_every=3, **extra)
    T.train(ref)
    cut = dataclasses.replace(ref, out=str(tmp_path / "cut"))
    with pytest.raises(Killed):
        T.train(cut, on_step=kill)
    state = torch.load(cut.checkpoint_path, weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 1)   # saved in epoch 2 after its re-solve, at step 1 of 8
    T.train(cut)
    a, b = (torch.load(c.checkpoint_path, weights_only=True) for c in (ref, cut))
    assert torch.equal(a["pseudo_labels"], b["pseudo_labels"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_bad_settings_are_named_before_training(tiny_cfg):
    with pytest.raises(ConfigError, match="clusters=300 > n=256"):
        nattools.train(successor_cfg(tiny_cfg, "deepcluster", clusters=300))
    with pytest.raises(ConfigError, match="sela_lambda=0"):
        nattools.train(successor_cfg(tiny_cfg, "sela", sela_lambda=0.0))
    with pytest.raises(ConfigError, match="heads=2: several clusterings"):
        nattools.train(successor_cfg(tiny_cfg, "deepcluster", heads=2))


def test_nat_runs_build_no_classifier():
    """NAT's network and its checkpoints are what they were: the successors' classifier is theirs alone."""
    assert not hasattr(nattools.build_model(nattools.TrainConfig()), "classifier")
