"""--precision auto|fp32|bf16: what auto resolves to, what a run records, and that a resume keeps it."""
import dataclasses
import importlib
import json

import pytest
import torch

import nattools
from nattools.__main__ import main, parser, config_from_args
from nattools.config import UsageError, from_dict

T = importlib.import_module("nattools.train")


def test_auto_resolves_to_bf16_only_where_the_device_computes_it_natively(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert T.resolve_precision("auto", "cpu") == "fp32"
    assert T.resolve_precision("bf16", "cpu") == "bf16" and T.resolve_precision("fp32", "cpu") == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert T.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert T.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert T.resolve_precision("auto", "cuda") == "fp32"   # a GPU without bf16 (before Ampere)


def test_the_run_records_its_precision_and_a_resume_refuses_another(tiny_cfg):
    cfg = tiny_cfg(max_steps=8, precision="fp32")   # stops after epoch 1 of 2
    T.train(cfg)
    state = torch.load(cfg.checkpoint_path, weights_only=True)
    assert state["precision"] == "fp32"
    with pytest.raises(UsageError, match="trained in fp32, this run would compute in bf16.*pass --precision fp32"):
        T.train(dataclasses.replace(cfg, max_steps=0, precision="bf16"))
    res = T.train(dataclasses.replace(cfg, max_steps=0))   # the same precision resumes
    assert res["precision"] == "fp32" and res["epochs_done"] == 2
    assert json.loads(cfg.results_path.read_text())["precision"] == "fp32"


def test_bf16_autocast_changes_the_steps_and_resumes_bit_identically(tiny_cfg, tmp_path):
    """bf16 is what the steps compute in (other weights than fp32), and a killed bf16 run resumed on the
    same machine ends with exactly the weights of an uninterrupted one."""
    def weights(cfg):
        return torch.load(cfg.checkpoint_path, weights_only=True)["model"]
    fp32 = tiny_cfg(out=str(tmp_path / "fp32"), precision="fp32", limit=128)
    ref = tiny_cfg(out=str(tmp_path / "ref"), precision="bf16", limit=128)
    T.train(fp32), T.train(ref)
    assert not all(torch.equal(a, b) for a, b in zip(weights(fp32).values(), weights(ref).values()))

    class Killed(Exception):
        pass

    def kill(global_step, loss):
        if global_step == 6:
            raise Killed
    cut = tiny_cfg(out=str(tmp_path / "cut"), precision="bf16", limit=128)
    with pytest.raises(Killed):
        T.train(cut, on_step=kill)
    assert torch.load(cut.checkpoint_path, weights_only=True)["epoch"] == 1
    T.train(cut)
    a, b = weights(ref), weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_flag_is_an_alias_and_old_configs_map_to_a_precision():
    args = parser().parse_args(["train", "--bf16"])
    assert config_from_args(args).precision == "bf16"
    assert config_from_args(parser().parse_args(["train"])).precision == "auto"
    assert from_dict({"bf16": True}).precision == "bf16"
    assert from_dict({"bf16": False}).precision == "fp32"
    assert from_dict({}).precision == "fp32"          # saved before either existed: fp32 was all there was
    assert from_dict({"precision": "auto"}).precision == "auto"
    with pytest.raises(UsageError, match="precision='fp16': choose one of auto, fp32, bf16"):
        nattools.TrainConfig(precision="fp16").validate()


def test_dry_run_says_which_precision_and_what_a_step_costs(capsys):
    assert main(["train", "--preset", "digits", "--batch_size", "16", "--precision", "fp32", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["throughput"]["precision"] == "fp32" and plan["precision"].startswith("fp32 (--precision fp32")
    assert plan["throughput"]["nat_step_ms"] > 0 and plan["throughput"]["fixed_step_ms"] > 0


def test_bench_times_bf16_against_fp32_in_one_run():
    from nattools.bench import bf16_vs_fp32
    cfg = nattools.TrainConfig(width=4, hidden=0, d=8)
    r = bf16_vs_fp32(cfg, batch=8, repeats=2)
    assert r["fp32_s"] > 0 and r["bf16_s"] > 0
    assert r["ci"][0] <= r["speedup"] <= r["ci"][1]   # the median of per-pair fp32 / bf16 ratios, in its interval
    assert 0.2 * r["fp32_s"] / r["bf16_s"] < r["speedup"] < 5 * r["fp32_s"] / r["bf16_s"]
