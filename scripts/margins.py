"""Print each run's kNN-20 and linear-probe figures and its margins over a baseline, as a markdown table.

    python scripts/margins.py RUN_eval.json:BASELINE_eval.json [...]

Both files are eval files written by `python -m nattools eval ... --out FILE` (fractions of 1); the
table is in percent. Pair each run with the random init of its own network (same architecture and
seed), since that baseline moves with both.
"""
import json
import sys
from pathlib import Path


def figures(path: str) -> tuple:
    e = json.loads(Path(path).read_text())
    linear = next(v for k, v in e.items() if k.startswith("linear_"))
    return 100 * e["knn20_embed"], 100 * linear


def main(pairs) -> None:
    print("| run | kNN-20 (%) | linear (%) | baseline kNN / linear (%) | margin kNN | margin linear |")
    print("|---|---|---|---|---|---|")
    for pair in pairs:
        run, base = pair.split(":")
        (k, l), (bk, bl) = figures(run), figures(base)
        name = Path(run).name.replace("_eval.json", "")
        print(f"| {name} | {k:.2f} | {l:.2f} | {bk:.2f} / {bl:.2f} | {k - bk:+.1f} | {l - bl:+.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
