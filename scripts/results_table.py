"""Print markdown tables of runs.

    python scripts/results_table.py data/results/recipe/*_eval.json   # one row per eval file, with its command
    python scripts/results_table.py --book                            # the book's tables, in its words

The first form reads each eval file (and the results file beside it, when there is one); the README's
tables of runs are made with it. `--book` prints the tables of the book's chapters 10 and 11, from the same
code (nattools.study.findings): the recipe against its baselines, the sweep that chose it (each run
named by what it changed) and the ablations.
"""
import sys
from pathlib import Path

from nattools.study import findings, runs


def row(eval_path: Path) -> str:
    results = eval_path.with_name(eval_path.name.replace("_eval.json", ".json"))
    name = eval_path.name.replace("_eval.json", "")
    run = runs.load(results if results.is_file() else None, eval_path, name=name)
    wall = f"{run.wall_time_s:.0f}" if run.wall_time_s is not None else ""
    return f"| {name} | {100 * run.knn:.2f} | {100 * run.linear:.2f} | {wall} | `{run.command or ''}` |"


def book() -> str:
    rec, found = findings.recipe(), findings.ablations()
    parts = ["## The recipe against its baselines", findings.main_table(rec, findings.pixels(), findings.supervised()),
             "## How the recipe was chosen", findings.sweep_table(findings.sweep())]
    parts += [f"## Ablation: {study}\n\n" + findings.study_table(rows) for study, rows in found.items()]
    return "\n\n".join(parts)


if __name__ == "__main__":
    if sys.argv[1:] == ["--book"]:
        print(book())
    else:
        print("| run | kNN-20 (%) | linear (%) | wall s | command |\n|---|---|---|---|---|")
        for p in sys.argv[1:]:
            print(row(Path(p)))
