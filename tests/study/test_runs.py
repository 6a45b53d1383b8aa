"""nattools.study.runs: reading results and eval files, tables, curves, the command of a config."""
import argparse
import dataclasses
import shlex

import pytest

import nattools
from nattools.study import runs
from nattools.__main__ import add_config_options, config_from_args


def test_load_finds_the_eval_file_beside_the_results(files):
    run = runs.load(files / "r1.json")
    assert run.name == "r1" and run.command.startswith("python -m nattools train --name r1")
    assert run.knn == 0.4112 and run.linear == 0.47 and run.wall_time_s == 125.0
    assert [h["epoch"] for h in run.history] == [1, 2, 3]
    assert run.steps_per_epoch == 1000 // 64
    (files / "r1_eval.json").unlink()
    bare = runs.load(files / "r1.json")
    assert bare.evaluation is None and bare.knn is None and bare.linear is None


def test_eval_only_baseline_takes_its_name_command_and_pixel_probe(files):
    run = runs.load(eval_path=files / "pixels_eval.json")
    assert run.name == "pixels" and run.results is None and run.history == []
    assert run.command.endswith("--baseline pixels") and run.linear == 0.30 and run.wall_time_s is None
    assert runs.table([run])[0]["probe"] == "features 32x32"


def test_missing_and_broken_files_say_which_file(files):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        runs.load(files / "nope.json")
    (files / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        runs.load(files / "bad.json")
    with pytest.raises(ValueError):
        runs.load()


def test_table_rows_and_html(files):
    rows = runs.table([runs.load(files / "r1.json"), runs.load(eval_path=files / "pixels_eval.json")])
    assert [r["name"] for r in rows] == ["r1", "pixels"]
    assert rows[0]["knn20"] == 0.4112 and rows[0]["epochs"] == 3 and rows[0]["probe"] == "features 2x2"
    assert rows[1]["epochs"] is None and rows[1]["wall_time_s"] is None
    page = runs.html_table(rows).data
    assert page.count("<tr>") == 3                         # header + 2 runs
    assert "41.1%" in page and "47.0%" in page and "2.1 min" in page and "–" in page
    assert "<code>python -m nattools train --name r1 --epochs 3</code>" in page
    only = runs.html_table([{"name": "a<b", "command": None, "knn20": None}]).data
    assert "a&lt;b" in only and "command" not in only       # empty columns dropped, text escaped


def test_command_for_round_trips_through_the_command_line(tmp_path):
    cfg = nattools.TrainConfig(name="x-y", dataset="digits", val_fraction=0.9, width=8, eval_knn=False,
                               out=str(tmp_path / "runs of x y"))                 # a folder that needs quoting
    cmd = runs.command_for(cfg)
    words = shlex.split(cmd)
    assert words[:4] == ["python", "-m", "nattools", "train"] and "--epochs" not in words  # defaults left out
    assert "--no-eval_knn" in words and words[words.index("--out") + 1] == cfg.out
    parser = argparse.ArgumentParser()
    add_config_options(parser)
    assert config_from_args(parser.parse_args(words[4:])) == cfg


def test_curves_overlay_runs_and_place_step_losses_on_the_epoch_axis(files, make_history):
    run = runs.load(files / "r1.json")
    other = {**run.results, "history": make_history(2)}
    spe = run.steps_per_epoch
    steps = [1.0 - s / 100 for s in range(3 * spe)]
    fig = runs.curves({"a": run, "b": other}, step_loss={"a": steps})
    assert len(fig.layout.annotations) == 3                # one panel per metric
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["a"].y) == [h["loss"] for h in run.history]
    assert list(by_name["b: changed"].x) == [1, 2]
    per_step = by_name["a: loss per step"]
    assert len(per_step.y) == 3 * spe and per_step.x[spe - 1] == pytest.approx(1.0) and per_step.x[-1] == pytest.approx(3)
    assert len(fig.data) == 1 + 3 + 3


def test_a_live_run_without_progress_bars(tiny_cfg, capsys):
    losses = []
    res = nattools.train(tiny_cfg(epochs=2), on_step=lambda step, loss: losses.append(loss), progress=False)
    out = capsys.readouterr()
    assert out.err == "" and "epoch 2:" in out.out          # bars gone, the trainer's epoch lines kept
    run = runs.from_results(res)
    assert len(losses) == 2 * run.steps_per_epoch
    fig = runs.curves({"live": run}, step_loss={"live": losses})
    assert len(fig.data[0].y) == len(losses)


def test_load_set_keeps_what_exists_and_names_what_is_missing(files, write_run):
    write_run(files / "ablations", "a", 0.40, 0.50)
    write_run(files / "ablations", "b", 0.30, 0.45, eval_file=False)
    found, missing = runs.load_set({"A": "ablations/a.json", "B": "ablations/b.json", "C": "ablations/c.json",
                                    "pixels": "pixels_eval.json"}, root=files)
    assert list(found) == ["A", "B", "pixels"]
    assert found["A"].linear == 0.50 and found["B"].evaluation is None and found["pixels"].linear == 0.30
    assert missing == ["ablations/b_eval.json", "ablations/c.json"]
    note = runs.missing_note(missing)
    assert "2 files" in note and "ablations/c.json" in note
    assert runs.missing_note([]) == "all runs present"


def test_gap_compare_and_the_standard_error(files, write_run):
    write_run(files, "hi", 0.50, 0.60)
    write_run(files, "lo", 0.49, 0.40)
    hi, lo = runs.load(files / "hi.json"), runs.load(files / "lo.json")
    assert runs.accuracy_se(0.5, 2500) == pytest.approx(0.01)
    assert runs.gap(hi, lo, "linear") == pytest.approx(20.0) and runs.gap(hi, lo, "knn") == pytest.approx(1.0)
    assert runs.gap(hi, None) is None
    line = runs.compare(hi, lo, "hi minus lo")
    # two standard errors of a difference at p = 0.5 on 2,500 images: 2 * sqrt(2) * 1 point = 2.8
    assert line == "hi minus lo: kNN-20 +1.0 points (within ±2.8), linear +20.0 points (beyond ±2.8)"
    assert "not available" in runs.compare(hi, None, "x")


def test_shared_config_separates_the_budget_from_the_variable(files, write_run):
    for name, inp in (("s", "sobel"), ("g", "grey"), ("r", "rgb")):
        write_run(files, name, 0.4, 0.5, input=inp)
    rs = [runs.load(files / f"{n}.json") for n in "sgr"]
    common, varying = runs.shared_config(rs)
    assert common == {"batch_size": 256, "epochs": 3}                # name and out are bookkeeping
    assert varying == {"s": {"input": "sobel"}, "g": {"input": "grey"}, "r": {"input": "rgb"}}
    assert runs.shared_config([]) == ({}, {})


def test_labelled_rows_margins_and_figures(files, write_run):
    write_run(files, "nat", 0.41, 0.47)
    nat, pixels = runs.load(files / "nat.json"), runs.load(eval_path=files / "pixels_eval.json")
    rows = runs.labelled_rows({"NAT": nat, "pixels": pixels}, baseline=pixels)
    assert rows[0]["label"] == "NAT" and rows[0]["knn20_margin"] == pytest.approx(0.16)
    assert rows[1]["linear_margin"] == pytest.approx(0.0)
    page = runs.html_table(rows, columns=["label", "knn20", "knn20_margin", "linear_margin"]).data
    assert "+16.0 pts" in page and "+0.0 pts" in page
    bare = runs.Run("bare", results={"history": []})
    fig = runs.accuracy_bars({"NAT": nat, "pixels": pixels, "no eval": bare}, chance=0.1)
    assert [list(t.x) for t in fig.data] == [["NAT", "pixels"]] * 2
    assert list(fig.data[1].y) == [0.47, 0.30]
    lines = runs.accuracy_lines({"a": ([0, 5], [0.3, None])}, "epoch", "t")
    assert list(lines.data[0].y) == [0.3, None]


def test_shared_config_leaves_out_the_fields_whose_role_is_run():
    from nattools.config import fields_with_role
    recipe = nattools.TrainConfig()
    a = runs.Run("a", results={"config": {**dataclasses.asdict(recipe), "overwrite": True, "device": "cpu"}})
    b = runs.Run("b", results={"config": {**dataclasses.asdict(recipe), "lr": 0.1}})
    common, varying = runs.shared_config([a, b])
    assert not set(common) & set(fields_with_role("run"))               # bookkeeping never counts
    assert varying == {"a": {"lr": recipe.lr}, "b": {"lr": 0.1}}


def test_studies_budget_noise_and_the_study_table(files, capsys, write_run):
    write_run(files / "ablations", "a", 0.40, 0.50, input="rgb")
    write_run(files / "ablations", "b", 0.30, 0.45, input="sobel")
    study, missing, lines = runs.load_studies({"x": {"A": "ablations/a.json", "C": "ablations/c.json"},
                                               "y": {"B": "ablations/b.json", "C": "ablations/c.json"}}, root=files)
    assert list(study["x"]) == ["A"] and missing == ["ablations/c.json"]
    assert lines == ["            x: 1 of 2 runs found", "            y: 1 of 2 runs found"]
    group = {r.name: r for s in study.values() for r in s.values()}
    line = runs.budget_line(group, "x + y", ("input", "epochs", "batch_size"))
    assert line == "x + y (2 runs found): epochs=3, batch_size=256; training images 22,500"
    assert runs.budget_line({}, "none", ("epochs",)) is None
    assert runs.validation_size(group.values()) == 2500 and runs.validation_size([]) is None
    noise = runs.noise_lines(2500, accuracies=(0.5,))
    assert noise == ["validation images: 2,500",
                     "  accuracy 50%: standard error 1.0 points, two standard errors of a difference 2.8 points"]
    assert runs.two_se_difference(0.5, 2500) == pytest.approx(200 * 2 ** 0.5 * 0.01)
    fig = runs.show_study({"A": study["x"]["A"], "B": study["y"]["B"]}, "t", chance=0.1)
    out = capsys.readouterr().out
    assert "A: a: input rgb" in out and "B: b: input sobel" in out and len(fig.data) == 2
    assert runs.show_study({}, "t") is None and "no run of this study yet" in capsys.readouterr().out


def test_solve_share():
    assert runs.solve_share([{"assign_s": 1.0, "epoch_s": 10.0}, {"assign_s": 2.0, "epoch_s": 10.0}]) == 0.15
