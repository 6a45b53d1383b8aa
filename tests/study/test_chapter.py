"""nattools.study.chapter: a chapter's sample of images, its stored measurements, its claims."""
import pytest
import torch

from nattools.study import chapter


def test_a_sample_holds_data_sample_s_images_and_decodes_them_on_demand():
    from nattools import data
    x, y, idx, classes = data.sample("digits", 30, "val", seed=4)
    s = chapter.Sample("digits", 30, "val", seed=4)
    assert torch.equal(s.idx, idx) and torch.equal(s.labels, y) and s.classes == classes
    assert len(s) == 30 and s.shape == (30, 3, 32, 32) and not s._decoded
    assert torch.equal(s[3], x[3]) and list(s._decoded) == [3]            # one image opened
    assert torch.equal(s.images(), x) and torch.equal(s.images([5, 2]), x[[5, 2]])


def test_stored_reads_back_only_what_was_made_from_the_same_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "results").mkdir(parents=True)
    calls = []

    def compute():
        calls.append(1)
        return {"z": torch.arange(3.0), "n": 3}
    key = ("a measurement", torch.arange(4), torch.nn.Linear(2, 2))
    value, read = chapter.stored("x", key, compute)
    assert not read and value["n"] == 3 and torch.equal(value["z"], torch.arange(3.0))
    assert not (tmp_path / "data/results/book/x.pt").exists()            # written only when asked to
    monkeypatch.setenv("NATTOOLS_STORE", "1")
    chapter.stored("x", key, compute)
    monkeypatch.delenv("NATTOOLS_STORE")
    value, read = chapter.stored("x", key, compute)
    assert read and len(calls) == 2 and torch.equal(value["z"], torch.arange(3.0))
    _, read = chapter.stored("x", ("a measurement", torch.arange(5), key[2]), compute)
    assert not read and len(calls) == 3                                    # other inputs: computed again
    assert chapter.digest(torch.zeros(2)) != chapter.digest(torch.zeros(2, dtype=torch.int64))


def test_claims_fail_the_book_build_and_only_warn_elsewhere(monkeypatch, capsys):
    monkeypatch.delenv("NATTOOLS_BUDGET", raising=False)
    claim = chapter.claims("cifar10")
    claim(True, "it holds")
    with pytest.raises(AssertionError, match="it does not hold"):
        claim(False, "it does not hold")
    chapter.claims("digits")(False, "a CIFAR-10 sentence")
    monkeypatch.setenv("NATTOOLS_BUDGET", "small")
    chapter.claims("cifar10")(False, "a full-budget sentence")
    out = capsys.readouterr().out
    assert "a CIFAR-10 sentence" in out and "a full-budget sentence" in out
