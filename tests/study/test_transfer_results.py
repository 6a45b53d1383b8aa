"""Chapter 12's readers of data/results/transfer: files as `finetune` and `eval` write them."""
import json
import math

from pytest import approx

from nattools.study import transfer


def write(folder, name, **figures):
    (folder / f"{name}.json").write_text(json.dumps({"command": f"python -m nattools x --out {name}.json", **figures}))


def test_curves_gather_every_seed_of_every_start_and_budget(tmp_path):
    for s, acc in ((0, 0.30), (1, 0.34)):
        write(tmp_path, f"ft_nat_l10_s{s}", accuracy=acc)
    write(tmp_path, "ft_random_l10_s0", accuracy=0.2)
    write(tmp_path, "ft_random_lall_s0", accuracy=0.7)
    write(tmp_path, "frozen_nat_l10_s0", knn20_embed=0.25, linear_features_2x2=0.28)
    rows = transfer.curve_rows(transfer.load(tmp_path))
    assert rows["NAT (CIFAR-10)"] == {10: [30.0, 34.0]}
    assert rows["random init"] == {10: [20.0], "all": [70.0]}
    assert rows["frozen NAT (CIFAR-10), linear probe"] == {10: [approx(28.0)]}
    assert math.isclose(transfer.mean(rows["NAT (CIFAR-10)"][10]), 32.0) and math.isnan(transfer.mean([]))
    fig = transfer.curve_figure(rows, "t")
    assert [t.name for t in fig.data if t.showlegend is not False] == list(rows)


def test_frozen_pairs_need_both_halves_and_snapshots_sort_by_epoch(tmp_path):
    write(tmp_path, "tiny_to_cifar", knn20_embed=0.5, linear_features_2x2=0.55)
    write(tmp_path, "cifar_to_tiny_l50", knn20_embed=0.1, linear_features_2x2=0.12)
    write(tmp_path, "tiny_to_cifar_random", knn20_embed=0.3, linear_features_2x2=0.4)
    for e, acc in ((12, 0.2), (6, 0.1), (30, 0.3)):
        write(tmp_path, f"snap_cifar_e{e}_to_tiny_l50", knn20_embed=acc, linear_features_2x2=acc)
    results = transfer.load(tmp_path)
    assert transfer.frozen_pair(results, "tiny_to_cifar") == {"kNN-20": approx((50.0, 30.0)), "linear": approx((55.0, 40.0))}
    assert transfer.frozen_pair(results, "cifar_to_tiny_l50") == {}     # its random twin is missing
    assert transfer.snapshot_series(results, "cifar") == approx({6: 10.0, 12: 20.0, 30: 30.0})
    assert transfer.commands(results)[0] == "python -m nattools x --out cifar_to_tiny_l50.json" and len(results) == 6
