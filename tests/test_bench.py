"""The benchmarks run (their figures are printed by `python -m nattools bench`, never asserted here)."""
import nattools
from nattools.bench import bare_loop, nat_vs_fixed, trainer_throughput


def test_bench_pieces_run_on_tiny_settings():
    cfg = nattools.TrainConfig(dataset="digits", width=8, d=16, batch_size=32, workers=0)
    nat, fixed = nat_vs_fixed(cfg, batch=16, repeats=1)
    assert nat > 0 and fixed > 0
    assert bare_loop(cfg, steps=2) > 0
    rates = trainer_throughput(cfg, steps=2, epochs=2)
    assert len(rates) == 1 and rates[0] > 0
