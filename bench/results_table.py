"""Print a markdown table of runs from their results and eval files (the README's and
data/results/tuning/README.md's tables are made with it, never typed by hand).

    python bench/results_table.py data/results/tuning/*_eval.json
"""
import json
import sys
from pathlib import Path


def row(eval_path: Path) -> str:
    ev = json.loads(eval_path.read_text())
    results = eval_path.with_name(eval_path.name.replace("_eval.json", ".json"))
    run = json.loads(results.read_text()) if results.is_file() else {}
    linear = next((v for k, v in ev.items() if k.startswith("linear_features")), None)
    what = run.get("command") or ev.get("command") or ""
    wall = f"{run['wall_time_s']:.0f}" if "wall_time_s" in run else ""
    return (f"| {eval_path.name.replace('_eval.json', '')} | {100 * ev['knn20_embed']:.2f} | "
            f"{100 * linear:.2f} | {wall} | `{what}` |")


if __name__ == "__main__":
    print("| run | kNN-20 (%) | linear (%) | wall s | command |\n|---|---|---|---|---|")
    for p in sys.argv[1:]:
        print(row(Path(p)))
