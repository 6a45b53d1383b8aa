"""nattools.study.margins: each NAT run against the random init of its own network."""
import dataclasses
import json

import pytest

import nattools
from nattools.config import fields_with_role
from nattools.study import margins, runs


def test_margins_pair_each_run_with_its_baseline_and_map_them_against_the_bars(files, write_run):
    write_run(files, "nat", 0.46, 0.48)
    write_run(files, "wide", 0.44, 0.53)
    nat, wide = runs.load(files / "nat.json"), runs.load(files / "wide.json")
    base = runs.load(eval_path=files / "r1_eval.json")                   # 41.12 / 47
    own = runs.Run("wide_random", evaluation={"knn20_embed": 0.30, "linear_features_2x2": 0.45})
    bare = runs.Run("bare", results={"history": []})                     # not evaluated: left out
    rows = margins.margin_rows({"recipe": (nat, base), "wide": (wide, own), "bare": (bare, base)})
    assert [r["label"] for r in rows] == ["recipe", "wide"]
    assert rows[0]["knn_margin"] == pytest.approx(4.88) and rows[0]["linear_margin"] == pytest.approx(1.0)
    assert rows[1]["knn_margin"] == pytest.approx(14.0) and rows[1]["baseline"] == "wide_random"
    fig = margins.margin_map(rows, bars=(15, 5))
    assert list(fig.data[0].x) == pytest.approx([4.88, 14.0]) and list(fig.data[0].text) == ["recipe", "wide"]
    assert "python -m nattools train --name nat" in fig.data[0].hovertext[0] and "baseline r1" in fig.data[0].hovertext[0]
    few = margins.margin_map(rows, label_top=1)                      # the largest of each kind only: wide
    assert list(few.data[0].text) == ["", "wide"] and list(few.data[0].hovertext) == list(fig.data[0].hovertext)
    assert list(margins.margin_map(rows, label_top=1, always=("recipe",)).data[0].text) == ["recipe", "wide"]
    assert list(margins.margin_map(rows, label_top=0, always=("recipe",)).data[0].text) == ["recipe", ""]
    shaded = fig.layout.shapes[0]
    assert (shaded.x0, shaded.y0) == (15, 5) and shaded.x1 >= 16 and shaded.y1 >= 8  # the region that clears both


def test_network_key_names_what_fixes_the_initial_network():
    recipe = dataclasses.asdict(nattools.TrainConfig())
    assert margins.network_key(recipe) == margins.network_key({**recipe, "epochs": 20, "lr": 0.1, "views": 2})
    assert margins.network_key(recipe) != margins.network_key({**recipe, "width": 64})
    assert margins.network_key(recipe) != margins.network_key({**recipe, "seed": 1})
    old = {k: v for k, v in recipe.items() if k != "hidden"}          # written before `hidden` existed
    assert margins.network_key(old) == margins.network_key(recipe)
    for f in fields_with_role("network"):                               # every network field is in the key
        assert margins.network_key({**recipe, f: "other"}) != margins.network_key(recipe), f


def test_random_init_baselines_pair_each_nat_run_with_its_network(tmp_path, write_run):
    write_run(tmp_path / "tuning", "t1", 0.40, 0.50, width=32)
    write_run(tmp_path / "tuning", "t2", 0.42, 0.52, width=64)
    write_run(tmp_path / "tuning", "sup", 0.60, 0.70, width=32, objective="softmax")
    write_run(tmp_path / "tuning", "noeval", 0.0, 0.0, width=32, eval_file=False)
    (tmp_path / "t1_random_eval.json").write_text(json.dumps(
        {"checkpoint": "data/checkpoints/t1.pt", "baseline": "random", "knn20_embed": 0.3, "linear_features_2x2": 0.45}))
    (tmp_path / "old_random_eval.json").write_text(json.dumps(                        # older files wrote true
        {"checkpoint": "x/t1.pt", "baseline": True, "knn20_embed": 0.1, "linear_features_2x2": 0.1}))
    (tmp_path / "orphan_eval.json").write_text(json.dumps({"checkpoint": "gone.pt", "baseline": "random"}))
    baselines = margins.random_init_baselines(tmp_path)
    assert list(baselines.values())[0].name == "old_random" and len(baselines) == 1   # first in sorted order wins
    candidates = margins.evaluated_runs(tmp_path / "tuning")
    assert [r.name for r in candidates] == ["sup", "t1", "t2"]                      # noeval has no eval file
    pairs, orphans = margins.margin_pairs(candidates, baselines)
    assert list(pairs) == ["t1"] and orphans == ["t2"]                              # sup is not NAT
    assert margins.trained_run(tmp_path / "orphan_eval.json", tmp_path) is None
    assert margins.margin_rows(pairs)[0]["knn_margin"] == pytest.approx(30.0)
