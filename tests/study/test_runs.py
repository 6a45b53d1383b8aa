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
    assert runs.linear_key(run.evaluation) == "linear_features_32x32"


def test_missing_and_broken_files_say_which_file(files):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        runs.load(files / "nope.json")
    (files / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        runs.load(files / "bad.json")
    with pytest.raises(ValueError):
        runs.load()


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


def test_solve_share():
    assert runs.solve_share([{"assign_s": 1.0, "epoch_s": 10.0}, {"assign_s": 2.0, "epoch_s": 10.0}]) == 0.15


def test_the_noise_of_an_accuracy(files, write_run):
    write_run(files / "ablations", "a", 0.40, 0.50)
    run = runs.load(files / "ablations" / "a.json")
    assert runs.validation_size([run]) == 2500 and runs.validation_size([]) is None
    noise = runs.noise_lines(2500, accuracies=(0.5,))
    assert noise == ["validation images: 2,500",
                     "  accuracy 50%: standard error 1.0 points, two standard errors of a difference 2.8 points"]
    assert runs.two_se_difference(0.5, 2500) == pytest.approx(200 * 2 ** 0.5 * 0.01)


def test_accuracy_figures_draw_one_trace_per_probe_and_per_series(files):
    run = runs.load(files / "r1.json", files / "r1_eval.json")
    bars = runs.accuracy_bars({"NAT": run, "no eval": dataclasses.replace(run, evaluation=None)}, chance=0.1)
    assert [t.name for t in bars.data] == ["kNN-20 (embedding)", "linear probe (features)"]
    assert list(bars.data[0].x) == ["NAT"] and bars.data[0].y[0] == run.knn       # runs without figures left out
    lines = runs.accuracy_lines({"a": (["conv1", "conv2"], [0.3, None])}, "block", "t", chance=0.1)
    assert list(lines.data[0].y) == [0.3, None] and lines.layout.shapes[0].y0 == 0.1
