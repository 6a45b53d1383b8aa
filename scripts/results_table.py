"""Print a markdown table of runs from their eval files (and the results file beside each,
when there is one): the README's and data/results/tuning/README.md's tables are made with it.

    python scripts/results_table.py data/results/tuning/*_eval.json
"""
import sys
from pathlib import Path

from nattools.study import runs


def row(eval_path: Path) -> str:
    results = eval_path.with_name(eval_path.name.replace("_eval.json", ".json"))
    name = eval_path.name.replace("_eval.json", "")
    run = runs.load(results if results.is_file() else None, eval_path, name=name)
    wall = f"{run.wall_time_s:.0f}" if run.wall_time_s is not None else ""
    return f"| {name} | {100 * run.knn:.2f} | {100 * run.linear:.2f} | {wall} | `{run.command or ''}` |"


if __name__ == "__main__":
    print("| run | kNN-20 (%) | linear (%) | wall s | command |\n|---|---|---|---|---|")
    for p in sys.argv[1:]:
        print(row(Path(p)))
