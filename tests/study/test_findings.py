"""nattools.study.findings: runs found by their settings, described in words, and the boxes that say
what they found; a run not made yet leaves a note, never an error."""
import dataclasses
import json

import pytest

import nattools
from nattools.config import DEFAULTS, fields_with_role
from nattools.study import findings


def write(folder, name, knn=None, linear=None, evaluation=True, history=None, **config):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {**DEFAULTS, "name": name, **config}
    hist = history or [{"epoch": e, "loss": 1.9 - e / 100, "changed": 0.9 if e % 3 == 1 else 0.0,
                        "reassigned": e % 3 == 1, "uniformity": -3.5} for e in range(1, 7)]
    (folder / f"{name}.json").write_text(json.dumps({"name": name, "command": f"python -m nattools train --name {name}",
                                                     "config": cfg, "n": 45000, "history": hist,
                                                     "wall_time_s": 600.0}))
    if evaluation:
        (folder / f"{name}_eval.json").write_text(json.dumps(
            {"knn20_embed": knn, "linear_features_2x2": linear, "n_val": 5000, "baseline": False,
             "checkpoint": f"runs/checkpoints/{name}.pt"}))


def random_init(folder, name, of, knn, linear):
    (folder / f"{name}_eval.json").write_text(json.dumps(
        {"knn20_embed": knn, "linear_features_2x2": linear, "n_val": 5000, "baseline": "random",
         "checkpoint": f"runs/checkpoints/{of}.pt"}))


@pytest.fixture
def results(tmp_path, monkeypatch):
    root = tmp_path / "results"
    rec = root / "recipe"
    write(rec, "base", 0.52, 0.55, weight_decay=5e-4)
    write(rec, "base1", 0.51, 0.55, weight_decay=5e-4, seed=1)
    write(rec, "chosen", 0.53, 0.558)
    write(rec, "lr", 0.50, 0.53, lr=0.1)
    write(rec, "noeval", evaluation=False, crop_min=0.35)
    random_init(rec, "base_random_init", "base", 0.32, 0.43)
    random_init(rec, "base1_random_init", "base1", 0.33, 0.42)
    abl = root / "ablations"
    write(abl, "every", 0.386, 0.45, weight_decay=5e-4, reassign_every=1)
    write(abl, "never", 0.47, 0.52, weight_decay=5e-4, reassign_every=0)
    write(abl, "sup", 0.81, 0.80, weight_decay=5e-4, objective="softmax", d=10, reassign_every=1)
    (abl / "every_epoch6_eval.json").write_text(json.dumps({"knn20_embed": 0.41, "linear_features_2x2": 0.46}))
    write(root / "archive", "a_nat_sobel", 0.44, 0.48, reassign_every=1)
    write(root, "cifar10_nat", evaluation=False, val_fraction=0.0)
    (root / "cifar10_pixels_eval.json").write_text(json.dumps(
        {"knn20_embed": 0.41, "linear_features_32x32": 0.25, "baseline": "pixels", "checkpoint": "x/base.pt"}))
    monkeypatch.setattr(findings, "results_dir", lambda: root)
    return root


def test_describe_in_words():
    assert findings.describe(DEFAULTS) == "the recipe"
    assert findings.describe({**DEFAULTS, "weight_decay": 5e-4, "seed": 2}) == "weight decay 0.0005, seed 2"
    assert findings.describe({**DEFAULTS, "reassign_every": 0}) == "assignment never re-solved"
    sup = findings.describe({**DEFAULTS, "objective": "softmax", "d": 10, "reassign_every": 1})
    assert sup == "supervised, softmax loss"                    # d and the schedule mean nothing to it
    assert findings.describe({**DEFAULTS, "val_fraction": 0.0}, ignore=()) == "all 50,000 images"


def test_runs_are_found_by_their_settings(results):
    rec = findings.recipe(results)
    assert [p.run.name for p in rec.pairs] == ["chosen"]
    assert rec.pairs[0].baseline.name == "base_random_init"     # same network and seed, same folder
    assert rec.pairs[0].margin("knn") == pytest.approx(21.0)
    assert findings.supervised(results).name == "sup"
    assert findings.pixels(results).knn == 0.41
    assert [r.name for r in findings.training_runs(results)].count("a_nat_sobel") == 0   # archive left out
    study = findings.study({"reassign_every": 1}, "reassign_every", [1, 3, 0], results)
    assert [(v, r.name if r else None) for v, r, _ in study] == [(1, "every"), (3, "base"), (0, "never")]
    groups = findings.seed_groups(root=results)
    assert [sorted(p.run.name for p in g) for g in groups] == [["base", "base1"]]
    assert findings.snapshots(findings.load(results / "ablations" / "every.json")).keys() == {6}


def test_sweep_puts_the_recipe_first_and_speaks_in_words(results):
    pairs = findings.sweep(results)
    assert [p.run.name for p in pairs] == ["chosen", "base", "base1", "lr"]
    table = findings.sweep_table(pairs)
    assert "starting point" in table and "(**the recipe**)" in table and "| learning rate 0.1" in table
    assert "chosen" not in table and "base" not in table


def test_a_study_without_its_runs_says_so_in_its_table(results):
    found = findings.ablations(results)
    assert found["loss"]["square loss"][0] is None and found["reassignment"]["never"][0].run.name == "never"
    assert "| square loss | not made yet |" in findings.study_table(found["loss"])


def test_late_runs_join_without_a_change_of_code(results):
    """The recipe's own seeds (made after the sweep) replace the sweep's run in the recipe's figures and
    leave the sweep's table alone; a new ablation run joins its study, its other differences named."""
    rec = results / "recipe"
    write(rec, "r_seed0", 0.54, 0.56)
    write(rec, "r_seed1", 0.52, 0.55, seed=1)
    random_init(rec, "r_seed0_random_init", "r_seed0", 0.32, 0.43)
    random_init(rec, "r_seed1_random_init", "r_seed1", 0.33, 0.42)
    recipe = findings.recipe(results)
    assert [p.run.name for p in recipe.pairs] == ["r_seed0", "r_seed1"]
    assert recipe.text("knn", unit="%") == "53.0% (52.0 to 54.0)" and recipe.spread("knn") == pytest.approx((52, 54))
    names = [p.run.name for p in findings.sweep(results)]
    assert names.count("chosen") == 1 and not any(n.startswith("r_") for n in names)
    write(results / "ablations", "sq", 0.75, 0.74, objective="square", d=10)
    loss = findings.ablations(results)["loss"]
    assert loss["square loss"][0].run.name == "sq" and loss["square loss"][1] == {"weight_decay": 0.002}
    assert "weight decay 0.002" in findings.study_table(loss)


def test_network_key_names_what_fixes_the_initial_network():
    recipe = dataclasses.asdict(nattools.TrainConfig())
    assert findings.network_key(recipe) == findings.network_key({**recipe, "epochs": 20, "lr": 0.1, "views": 2})
    assert findings.network_key(recipe) != findings.network_key({**recipe, "width": 64})
    assert findings.network_key(recipe) != findings.network_key({**recipe, "seed": 1})
    old = {k: v for k, v in recipe.items() if k != "hidden"}          # written before `hidden` existed
    assert findings.network_key(old) == findings.network_key(recipe)
    for f in fields_with_role("network"):                               # every network field is in the key
        assert findings.network_key({**recipe, f: "other"}) != findings.network_key(recipe), f
