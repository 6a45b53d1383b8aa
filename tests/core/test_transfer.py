"""Fine-tuning and transfer (nattools.transfer): the label draw, learning on a tiny set, frozen probes on
another data set, and the inputs refused before any work."""
import json
import re

import pytest
import torch

import nattools
from nattools import data as D
from nattools import transfer
from nattools.__main__ import main
from nattools.config import UsageError


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """A tiny NAT run on digits (1,617 training images, 180 held out), shared by the tests below."""
    out = tmp_path_factory.mktemp("ckpt")
    cfg = nattools.TrainConfig(dataset="digits", batch_size=64, epochs=2, width=8, d=16, workers=0,
                               out=str(out), name="tiny", eval_knn=False, reassign_every=1)
    nattools.train(cfg, progress=False)
    return cfg.checkpoint_path


def test_the_label_draw_is_per_class_and_seeded():
    base = D.load("digits", "train")
    a, b, c = (D.labelled_subset(base, 7, seed) for seed in (0, 0, 1))
    assert torch.bincount(torch.tensor(a.targets)).tolist() == [7] * 10
    assert a.indices == b.indices and a.indices != c.indices
    assert set(a.indices) <= set(range(len(base)))
    assert D.labelled_subset(base, 0) is base
    with pytest.raises(UsageError, match="labels_per_class=500: class '.' has only 1.. training images"):
        D.labelled_subset(base, 500)


def test_finetuning_learns_on_a_tiny_set(digits_checkpoint):
    net, cfg = transfer.start(digits_checkpoint)
    fcfg = transfer.FinetuneConfig(dataset="digits", labels_per_class=10, min_steps=80, max_steps=80, batch_size=50)
    res = transfer.finetune(net, cfg, fcfg)
    assert res["n_labelled"] == 100 and res["steps"] == 80 and res["n_val"] == 180 and res["classes"] == 10
    assert res["accuracy"] > 0.4 and res["final_loss"] < 2.0   # chance is 0.1 and log(10) = 2.3
    again = transfer.finetune(*transfer.start(digits_checkpoint), fcfg)
    assert again["accuracy"] == res["accuracy"]                  # seeded: the same figure twice
    rnd, _ = transfer.start(digits_checkpoint, random=True)
    trained = nattools.load_checkpoint(digits_checkpoint)[0].trunk[0].weight
    assert not torch.equal(rnd.trunk[0].weight, trained)   # the run's start, not its end
    assert torch.equal(rnd.trunk[0].weight, nattools.evaluate.initial_model(cfg).trunk[0].weight)


def test_frozen_probes_on_another_data_set(tmp_path, image_tree, digits_checkpoint, capsys):
    """A network trained on digits, probed on a folder of other images: the transfer path of eval."""
    image_tree(tmp_path / "pics", classes={"a": 30, "b": 30})
    out = tmp_path / "t.json"
    assert main(["eval", str(digits_checkpoint), "--dataset", "imagefolder", "--data_root", str(tmp_path / "pics"),
                 "--labels_per_class", "20", "--probe_epochs", "5", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["n_labelled"] == 40 and figures["n_val"] == 6 and figures["protocol"]["dataset"] == "imagefolder"
    assert 0 <= figures["knn20_embed"] <= 1 and 0 <= figures["linear_features_2x2"] <= 1
    assert "frozen" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--labels_per_class", "1000"], "labels_per_class=1000: class '.' has only"),
    (["--dataset", "mnist"], "dataset='mnist': choose one of"),
    (["--val_fraction", "0.2"], "would use images it trained on; use --val_fraction 0.1"),
    (["--batch_size", "0"], "batch_size=0: must be >= 1"),
    (["--image_size", "64"], "trained on 32 px crops, not 64 px"),
])
def test_bad_inputs_are_one_line_errors_before_any_work(digits_checkpoint, argv, message, capsys):
    assert main(["finetune", str(digits_checkpoint), *argv]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err


def test_finetune_command_writes_its_figures(digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "ft.json"
    for extra in ([], ["--random_init"]):
        assert main(["finetune", str(digits_checkpoint), "--labels_per_class", "5", "--min_steps", "5",
                     "--max_steps", "5", "--out", str(out), *extra]) == 0
        figures = json.loads(out.read_text())
        assert figures["random_init"] == bool(extra) and figures["steps"] == 5 and 0 <= figures["accuracy"] <= 1
        assert figures["command"].startswith("python -m nattools finetune")
    assert "random init of" in capsys.readouterr().out
