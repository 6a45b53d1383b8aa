import dataclasses
import importlib
import json

import pytest
import torch

import nattools
from nattools.config import UsageError
T = importlib.import_module("nattools.train")  # the module (nattools.train is the function)


def test_smoke_trains_on_digits_and_writes_artefacts(tiny_cfg):
    cfg = tiny_cfg(eval_knn=True, snapshot_every=2)
    res = nattools.train(cfg)
    assert res["epochs_done"] == 2 and len(res["history"]) == 2
    h = res["history"][-1]
    assert 0 < h["loss"] < 4 and 0 <= h["changed"] <= 1 and h["images_per_s"] > 0 and h["uniformity"] < 0
    assert res["history"][0]["changed"] > 0          # the assignment moved
    assert 0.1 < res["knn20_val"] <= 1               # above chance (10 classes) on the val split
    assert {"command", "commit", "versions", "wall_time_s", "config"} <= set(res)
    saved = json.loads(cfg.results_path.read_text())
    assert saved["history"] == res["history"]
    assert [json.loads(l) for l in cfg.log_path.read_text().splitlines()] == res["history"]
    state = torch.load(cfg.checkpoint_path, weights_only=True)  # no code runs on load
    assert state["epoch"] == 2 and state["config"]["dataset"] == "digits"
    model, cfg2 = nattools.load_checkpoint(cfg.checkpoint_path)
    assert cfg2 == cfg
    z = model.embed(torch.rand(3, 3, 32, 32))
    assert z.shape == (3, 16) and torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    snap, _ = nattools.load_checkpoint(cfg.checkpoint_path.with_name("tiny_epoch2.pt"))
    assert all(torch.equal(a, b) for a, b in zip(snap.state_dict().values(), model.state_dict().values()))
    assert not cfg.checkpoint_path.with_name("tiny_epoch1.pt").exists()


class Killed(Exception):
    pass


def kill_at(step):
    def on_step(global_step, loss):
        if global_step == step:
            raise Killed  # no handler saves anything: like a SIGKILL between two steps
    return on_step


def final_state(cfg):
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    return state["model"], state["assignment"]["table"], state["optimizer"]


def assert_same_run(a, b):
    (ma, ta, oa), (mb, tb, ob) = a, b
    assert torch.equal(ta, tb)
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    assert all(torch.equal(x, y) for s1, s2 in zip(oa["state"].values(), ob["state"].values())
               for x, y in zip(s1.values(), s2.values()))


@pytest.mark.parametrize("ckpt_every,kill,extra", [(0, 13, {}), (3, 14, {}), (3, 14, dict(views=2, ema=0.9))])
def test_killed_and_resumed_run_equals_uninterrupted_run(tiny_cfg, tmp_path, ckpt_every, kill, extra):
    """8 steps per epoch; killed in epoch 2 and resumed from the last checkpoint
    (end of epoch 1, or mid-epoch with ckpt_every), the run ends bit-identical
    (the weight average too, when the run keeps one)."""
    ref = tiny_cfg(out=str(tmp_path / "ref"), ckpt_every=ckpt_every, **extra)
    T.train(ref)
    cut = tiny_cfg(out=str(tmp_path / "cut"), ckpt_every=ckpt_every, **extra)
    with pytest.raises(Killed):
        T.train(cut, on_step=kill_at(kill))
    state = torch.load(cut.checkpoint_path, weights_only=True)
    assert (state["epoch"], state["step"]) == ((1, 0) if ckpt_every == 0 else (1, 4))
    T.train(cut)
    assert_same_run(final_state(ref), final_state(cut))
    (a, _), (b, _) = (nattools.load_checkpoint(c.checkpoint_path) for c in (ref, cut))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_kill_during_save_keeps_the_previous_checkpoint(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(max_steps=8)  # stops after epoch 1 of 2
    T.train(cfg)
    before = cfg.checkpoint_path.read_bytes()
    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise Killed
    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(Killed):
        T.train(dataclasses.replace(cfg, max_steps=0))
    monkeypatch.setattr(torch, "save", real_save)
    assert cfg.checkpoint_path.read_bytes() == before
    nattools.load_checkpoint(cfg.checkpoint_path)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(max_steps=8, reassign_every=0)
    T.train(cfg)
    before = cfg.checkpoint_path.read_bytes()
    real = nattools.targets.TargetStore.__getitem__
    # a poisoned target store: the loss becomes NaN at the first step
    monkeypatch.setattr(nattools.targets.TargetStore, "__getitem__", lambda self, ids: real(self, ids) * float("nan"))
    with pytest.raises(FloatingPointError, match="last good checkpoint"):
        T.train(dataclasses.replace(cfg, max_steps=0))
    assert cfg.checkpoint_path.read_bytes() == before


def test_resume_refuses_a_checkpoint_from_another_config(tiny_cfg):
    cfg = tiny_cfg(epochs=1)
    T.train(cfg)
    with pytest.raises(UsageError, match="other settings.*d: 16 in the checkpoint, 32 now"):
        T.train(dataclasses.replace(cfg, d=32))


def test_checkpoint_from_before_a_config_field_existed_resumes_with_its_default(tiny_cfg):
    cfg = tiny_cfg(max_steps=8)
    T.train(cfg)
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    del state["config"]["hidden"]  # as written before `hidden` was added
    torch.save(state, cfg.checkpoint_path)
    model, loaded = nattools.load_checkpoint(cfg.checkpoint_path)
    assert loaded.hidden == cfg.hidden
    assert T.train(dataclasses.replace(cfg, max_steps=0))["epochs_done"] == 2


def test_views_are_different_crops_of_the_batch_fitted_to_one_target(tiny_cfg, monkeypatch):
    """views=2: the network sees each image twice per step (two crops), the assignment is solved
    on the mean of its views (a one-to-one table still), and the loss covers every view."""
    seen, solved, losses = [], [], []
    build = T.build_model

    def recording_model(cfg):
        model = build(cfg)
        model.register_forward_hook(lambda m, inp, out: seen.append((inp[0].detach().clone(), out.detach().clone())))
        return model
    solve = T.Assignment.solve

    def recording_solve(self, idx, z, *a, **kw):
        out = solve(self, idx, z, *a, **kw)
        new = out[0] if isinstance(out, tuple) else out   # solve(..., rows=True) -> (new, their rows)
        solved.append((z.clone(), new.clone()))
        return out
    monkeypatch.setattr(T, "build_model", recording_model)
    monkeypatch.setattr(T.Assignment, "solve", recording_solve)
    cfg = tiny_cfg(views=2, epochs=1, precision="fp32")  # the identities below hold to 1e-6: not in bf16
    res = T.train(cfg, on_step=lambda step, loss: losses.append(loss))
    assert len(solved) == 8 and all(z.shape == (32, 16) for z, _ in solved)
    x, z = seen[0]
    assert x.shape == (64, 3, 32, 32) and z.shape == (64, 16)
    assert not torch.allclose(x[:32], x[32:])                  # two different crops of the same images
    views = z.view(2, 32, 16)                                   # (view, image, d)
    mean = torch.nn.functional.normalize(views.mean(0), dim=1)
    assert torch.allclose(solved[0][0], mean, atol=1e-6)      # assignment on the views' mean
    c = T.build_targets(cfg, 256)[solved[0][1]]                 # the targets the step then fitted
    assert losses[0] == pytest.approx(float((views - c).pow(2).sum(2).mean()), rel=1e-5)  # every view
    _, table, _ = final_state(cfg)
    assert len(torch.unique(table)) == 256 and res["history"][0]["changed"] > 0


def test_ema_checkpoint_hands_out_the_weight_average(tiny_cfg):
    """With ema, training steps the live weights; load_checkpoint (and so eval, the book) gets their
    moving average, which is neither the live weights nor the initial ones."""
    cfg = tiny_cfg(ema=0.9, epochs=1)
    T.train(cfg)
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    model, _ = nattools.load_checkpoint(cfg.checkpoint_path)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state["averaged"].items())
    torch.manual_seed(cfg.seed)
    init = T.build_model(cfg).state_dict()
    w = "trunk.0.weight"
    assert not torch.equal(got[w], state["model"][w]) and not torch.equal(got[w], init[w])
    # the average lies between: closer to the live weights than the initial weights are
    assert (got[w] - state["model"][w]).norm() < (init[w] - state["model"][w]).norm()


def test_never_reassign_keeps_the_random_table(tiny_cfg):
    cfg = tiny_cfg(reassign_every=0)
    res = T.train(cfg)
    _, table, _ = final_state(cfg)
    assert torch.equal(table, nattools.assign.Assignment(256, 256, seed=0).table)
    assert all(h["changed"] == 0 and not h["reassigned"] for h in res["history"])


def test_reassign_schedule():
    cfg = nattools.TrainConfig(reassign_every=3)
    assert [T.should_reassign(cfg, e) for e in range(7)] == [True, False, False, True, False, False, True]
    assert not T.should_reassign(nattools.TrainConfig(reassign_every=0), 0)


def test_k_larger_than_n_uses_free_targets(tiny_cfg):
    cfg = tiny_cfg(k=400, epochs=1)
    T.train(cfg)
    _, table, _ = final_state(cfg)
    assert len(torch.unique(table)) == 256 and int(table.max()) < 400 and bool((table >= 256).any())


@pytest.mark.parametrize("override,message", [
    (dict(k=100), r"k=100 < n=256"),
    (dict(d=1), r"d=1: must be in \[2, 65536\]"),
    (dict(batch_size=1), r"batch_size=1: must be in \[2, 65536\]"),
    (dict(batch_size=300), r"batch_size 300 = 300 images per step, but the training set has only n=256"),
    (dict(lr=0.0), r"lr=0.0: must be in \(0, 10\]"),
    (dict(lr=-1.0), r"lr=-1.0"),
    (dict(lr=float("nan")), r"lr=nan"),
    (dict(dataset="mnist"), r"dataset='mnist': choose one of cifar10, digits"),
    (dict(model="resnet"), r"model='resnet': choose one of small, alexnet"),
    (dict(input="hsv"), r"input='hsv': choose one of"),
    (dict(epochs=0), r"epochs=0: must be in \[1, 100000\]"),
    (dict(views=0), r"views=0"),
    (dict(jitter=1.5), r"jitter=1.5: must be in \[0, 1\)"),
    (dict(ema=1.0), r"ema=1.0"),
    (dict(objective="triplet"), r"objective='triplet': choose one of"),
    (dict(objective="square"), r"set --d 10"),
    (dict(crop_min=0.0), r"crop_min=0.0: must be in \(0, 1\]"),
    (dict(crop_min=2.0), r"crop_min=2.0"),
    (dict(crop_min=float("nan")), r"crop_min=nan"),
    (dict(image_size=100000), r"image_size=100000: must be in \[8, 512\]"),
    (dict(model="alexnet", image_size=32), r"alexnet needs crops of at least 64 px"),
    (dict(limit=-1), r"limit=-1: must be >= 0"),
    (dict(max_steps=-1), r"max_steps=-1: must be >= 0"),
    (dict(ckpt_every=-1), r"ckpt_every=-1"),
    (dict(snapshot_every=-5), r"snapshot_every=-5"),
    (dict(workers=-1), r"workers=-1"),
    (dict(momentum=1.5), r"momentum=1.5: must be in \[0, 1\)"),
    (dict(weight_decay=float("nan")), r"weight_decay=nan"),
    (dict(name="../x"), r"name='../x': must be letters"),
    (dict(name="a/b"), r"name='a/b'"),
    (dict(name=".hidden"), r"name='.hidden'"),
    (dict(reassign_every=-1), r"reassign_every=-1"),
    (dict(seed=-3), r"seed=-3"),
    (dict(val_fraction=1.0), r"val_fraction=1.0: must be in \[0, 1\)"),
    (dict(schedule="step"), r"schedule='step': choose one of cosine, constant"),
    (dict(device="tpu"), r"device='tpu': choose one of"),
    (dict(epochs=2.5), r"epochs=2.5: expected int"),
    (dict(resume="yes"), r"resume='yes': expected true or false"),
])
def test_bad_config_fails_before_training(tiny_cfg, override, message):
    """Every option is checked before any work, and the message names the value and what is allowed."""
    cfg = tiny_cfg(**override)
    with pytest.raises(UsageError, match=message):
        T.train(cfg)
    assert not cfg.checkpoint_path.exists()


def test_missing_data_folder_fails_before_training(tiny_cfg, tmp_path):
    cfg = tiny_cfg(dataset="imagefolder", data_root=str(tmp_path / "no_such_folder"))
    with pytest.raises(FileNotFoundError, match="no_such_folder does not exist"):
        T.train(cfg)


def test_corrupt_image_is_named_before_training(tiny_cfg, tmp_path, image_tree):
    root = image_tree(tmp_path / "imgs", {"a": 20, "b": 20})
    (root / "a" / "0007.jpg").write_bytes(b"\\xff\\xd8 truncated")
    cfg = tiny_cfg(dataset="imagefolder", data_root=str(root), limit=0, batch_size=8)
    with pytest.raises(ValueError, match="0007.jpg"):
        T.train(cfg)
    assert not cfg.checkpoint_path.exists()


@pytest.mark.parametrize("objective", ["square", "softmax"])
def test_supervised_baselines_learn_the_labels(tiny_cfg, objective):
    res = T.train(tiny_cfg(objective=objective, d=10, epochs=3, eval_knn=True))
    losses = [h["loss"] for h in res["history"]]
    assert losses[-1] < losses[0] and res["knn20_val"] > 0.5  # digits: chance is 0.1


def test_a_fresh_run_starts_a_fresh_log(tiny_cfg):
    nattools.train(tiny_cfg(epochs=2))
    res = nattools.train(tiny_cfg(epochs=1, resume=False, overwrite=True))  # same name, started again
    log = [json.loads(l) for l in tiny_cfg().log_path.read_text().splitlines()]
    assert log == res["history"] and len(log) == 1
