"""nattools.study.paired: McNemar's test, and predictions that reproduce nattools.evaluate's accuracies."""
import pytest
import torch
from scipy.stats import binomtest

from nattools import evaluate
from nattools.study import paired


def test_mcnemar_counts_the_disagreements():
    a = torch.tensor([1] * 50 + [1] * 10 + [0] * 2 + [0] * 38, dtype=torch.bool)
    b = torch.tensor([1] * 50 + [0] * 10 + [1] * 2 + [0] * 38, dtype=torch.bool)
    t = paired.mcnemar(a, b)
    assert (t["n"], t["a_only"], t["b_only"]) == (100, 10, 2)
    assert t["acc_a"] == pytest.approx(0.60) and t["acc_b"] == pytest.approx(0.52)
    assert t["diff"] == pytest.approx(0.08)
    assert t["p"] == pytest.approx(binomtest(10, 12, 0.5).pvalue)
    assert t["se"] == pytest.approx((12 - 8 ** 2 / 100) ** 0.5 / 100)
    back = paired.mcnemar(b, a)
    assert back["diff"] == pytest.approx(-0.08) and back["p"] == pytest.approx(t["p"])


def test_mcnemar_edge_cases():
    same = torch.ones(10, dtype=torch.bool)
    assert paired.mcnemar(same, same)["p"] == 1.0 and paired.mcnemar(same, same)["se"] == 0.0
    with pytest.raises(ValueError):
        paired.mcnemar(torch.ones(3), torch.ones(4))
    assert paired.p_text(1e-9) == "p < 0.001" and paired.p_text(0.004) == "p = 0.004" and paired.p_text(0.3) == "p = 0.30"


def test_predictions_reproduce_the_library_accuracies():
    g = torch.Generator().manual_seed(0)
    xtr, xte = torch.randn(300, 12, generator=g), torch.randn(80, 12, generator=g)
    ytr, yte = (xtr[:, 0] > 0).long() + (xtr[:, 1] > 0).long(), (xte[:, 0] > 0).long() + (xte[:, 1] > 0).long()
    knn = evaluate.knn_predict(xtr, ytr, xte, k=7)
    assert float((knn == yte).float().mean()) == pytest.approx(evaluate.knn_accuracy(xtr, ytr, xte, yte, k=7))
    lin = evaluate.linear_predict(xtr, ytr, xte, 3, epochs=4)
    assert float((lin == yte).float().mean()) == pytest.approx(evaluate.linear_probe(xtr, ytr, xte, yte, epochs=4))


def test_pixel_predictions_are_cached(monkeypatch, tmp_path):
    import nattools
    monkeypatch.setenv("NATTOOLS_CACHE", str(tmp_path))
    cfg = nattools.TrainConfig(dataset="digits", val_fraction=0.2)
    split = paired.Split(cfg, n_train=200, n_val=60)
    first = paired.predictions(("pixels", "sobel"), split, probe_epochs=2)
    assert first["knn"].shape == first["labels"].shape == (60,)
    assert len(list(tmp_path.glob("predictions-*.pt"))) == 1
    monkeypatch.setattr(paired, "features", lambda *a, **k: pytest.fail("recomputed instead of read from the cache"))
    again = paired.predictions(("pixels", "sobel"), split, probe_epochs=2)
    assert torch.equal(again["knn"], first["knn"]) and torch.equal(again["linear"], first["linear"])
    rows = paired.rows({"a": first, "b": again}, [("a", "b"), ("a", "missing")])
    assert [r["judge"] for r in rows] == ["kNN-20", "linear probe"] and rows[0]["p"] == 1.0
