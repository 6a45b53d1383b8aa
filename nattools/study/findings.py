"""The catalogue of the project's runs: the results files in data/results found by what they are
(their config: the recipe, the recipe with one thing changed, a supervised baseline), not by their
file names, named by what they changed (`describe`), and set out as the chapters' tables. The
chapters' sentences about them are Markdown in the chapters, with the figures glued in.
"""
import dataclasses
import statistics
from pathlib import Path

from ..config import DEFAULTS, PRESETS, fields_with_role
from .plotting import md_table
from .runs import Record, data_dir, load, read_json

RECIPE_FIELDS = fields_with_role("recipe", "network")
SUPERVISED_IRRELEVANT = ("reassign_every", "targets", "k_codes", "k", "views")


# Formatting ---------------------------------------------------------------------------------------
def pct(p) -> str:
    """An accuracy (a fraction of 1) in per cent: 0.5296 -> '53.0%'."""
    return "–" if p is None else f"{100 * p:.1f}%"


def pts(x) -> str:
    """A difference in percentage points, signed: 20.76 -> '+20.8'."""
    return "–" if x is None else f"{x:+.1f}"


# Runs described in words --------------------------------------------------------------------------
WORDS = {
    "weight_decay": lambda v: f"weight decay {v:g}",
    "lr": lambda v: f"learning rate {v:g}",
    "schedule": lambda v: f"{v} learning rate",
    "reassign_every": lambda v: ("assignment never re-solved" if v == 0 else
                                 "assignment re-solved in every epoch" if v == 1 else
                                 f"assignment re-solved every {v} epochs"),
    "seed": lambda v: f"seed {v}",
    "crop_min": lambda v: f"crops down to {v:.0%} of the image",
    "input": lambda v: {"grey": "grey input (no Sobel)", "rgb": "colour input (no Sobel)"}.get(v, f"{v} input"),
    "objective": lambda v: {"softmax": "supervised, softmax loss", "square": "supervised, square loss"}.get(v, v),
    "targets": lambda v: "discrete targets" if v == "discrete" else "targets on the sphere",
    "k_codes": lambda v: f"{v} codes",
    "d": lambda v: f"d = {v}",
    "epochs": lambda v: f"{v} epochs",
    "val_fraction": lambda v: "all 50,000 images" if v == 0 else f"{1 - v:.0%} of the images",
    "width": lambda v: f"width {v}",
    "momentum": lambda v: f"momentum {v:g}",
    "batch_size": lambda v: f"batch {v}",
}


def network_key(config: dict) -> tuple:
    """The config fields that fix a network at initialisation, those whose role is "network" and
    the seed (fields a results file predates take their defaults): two runs with the same key
    share one random-init baseline, the reference of their margins."""
    return tuple(config.get(f, DEFAULTS[f]) for f in fields_with_role("network") + ("seed",))


def recipe_config(config: dict) -> dict:
    """The fields of a run's config that change what is trained (defaults for fields it predates)."""
    cfg = {f: config.get(f, DEFAULTS[f]) for f in RECIPE_FIELDS}
    if cfg["objective"] != "nat":
        for f in SUPERVISED_IRRELEVANT:
            cfg[f] = DEFAULTS[f]
        if cfg["objective"] == "softmax" or cfg["objective"] == "square":
            cfg["d"] = DEFAULTS["d"]      # d = the number of classes: part of "supervised"
    if cfg["targets"] != "discrete":
        cfg["k_codes"] = DEFAULTS["k_codes"]
    return cfg


def differences(config: dict, reference: dict = None) -> dict:
    """{field: value} where a run's recipe differs from reference (default: today's recipe)."""
    ref = recipe_config(reference) if reference is not None else recipe_config(DEFAULTS)
    cfg = recipe_config(config)
    return {f: v for f, v in cfg.items() if v != ref[f]}


def words(diff: dict) -> str:
    """{field: value} in words: {"weight_decay": 0.002} -> 'weight decay 0.002'."""
    return ", ".join(WORDS.get(f, lambda v, f=f: f"{f} {v}")(v) for f, v in diff.items())


def describe(config: dict, reference: dict = None, ignore=("val_fraction",)) -> str:
    """A run in words, by how it differs from the recipe (or from reference): 'the recipe',
    'weight decay 0.0005', 'supervised, softmax loss, weight decay 0.0005'."""
    diff = {f: v for f, v in differences(config, reference).items() if f not in ignore}
    if config.get("objective", "nat") != "nat":                    # the loss first, then the rest
        diff = {"objective": diff.pop("objective", config["objective"]), **diff}
    return words(diff) or "the recipe"


def variant(config: dict) -> str:
    """'the recipe', or 'the recipe with weight decay 0.0005' (val_fraction and seed left out)."""
    words = describe(config, ignore=("val_fraction", "seed"))
    return words if words == "the recipe" else f"the recipe with {words}"


# The results, found by what they are --------------------------------------------------------------
def results_dir() -> Path:
    return data_dir() / "results"


def training_runs(root=None) -> list:
    """Every training run under results/ (archive/ left out), with its eval file when there is one."""
    out = []
    for path in current_files(root):
        if path.stem.endswith("_eval"):
            continue
        content = read_json(path)
        if "config" in content and "history" in content:
            out.append(load(path))
    return out


def evaluated(runs) -> list:
    return [r for r in runs if r.evaluation is not None and r.knn is not None and r.linear is not None]


def on_training_split(runs) -> list:
    """Runs that held out the validation split: the only ones that may be scored on it."""
    return [r for r in runs if r.config.get("val_fraction", 0.1) > 0]


def pick(runs, reference: dict, **vary):
    """The run whose recipe is reference's with `vary` changed, exactly if there is one, else the
    nearest (fewest other differences) among runs that have `vary`; None if none has it.
    -> (Record, {field: value} of the remaining differences) or (None, {})."""
    want = recipe_config({**reference, **vary})
    best = None
    for run in runs:
        cfg = recipe_config(run.config)
        if any(cfg[f] != want[f] for f in recipe_config(dict(DEFAULTS, **vary)) if f in vary):
            continue
        other = {f: v for f, v in cfg.items() if v != want[f]}
        rank = (len(other), not run.name.startswith("r_"))     # later, dedicated runs first on ties
        if best is None or rank < best[0]:
            best = (rank, run, other)
    return (best[1], best[2]) if best else (None, {})


@dataclasses.dataclass
class Pair:
    """A run and the same network at random initialisation (its margin's reference)."""
    run: Record
    baseline: Record = None

    def margin(self, metric: str):
        if self.baseline is None or getattr(self.run, metric) is None or getattr(self.baseline, metric) is None:
            return None
        return 100 * (getattr(self.run, metric) - getattr(self.baseline, metric))


def current_files(root=None, pattern: str = "*.json") -> list:
    """The files under results/ matching pattern, the archive of older recipes left out."""
    root = Path(root or results_dir())
    return [p for p in sorted(root.rglob(pattern)) if "archive" not in p.relative_to(root).parts]


def random_baselines(root=None) -> dict:
    """{network_key: [(folder, held out validation?, Record), ...]} of the random-init evaluations
    under results/ (archive left out), keyed by the network of the run whose checkpoint it scored."""
    runs = {p.stem: p for p in current_files(root) if not p.stem.endswith("_eval")}
    out = {}
    for path in current_files(root, "*_eval.json"):
        ev = read_json(path)
        made_from = runs.get(Path(ev.get("checkpoint", "")).stem)
        if ev.get("baseline") in ("random", True) and made_from is not None:
            config = read_json(made_from)["config"]
            out.setdefault(network_key(config), []).append(
                (path.parent, config.get("val_fraction", 0.1) > 0, load(eval_path=path)))
    return out


def with_baselines(runs, root=None) -> list:
    """Each run paired with the random-init evaluation of its network (None if there is none):
    the one in the run's own folder first (the same sweep), then one made beside a run on the
    training split."""
    baselines = random_baselines(root)
    where = {p.stem: p.parent for p in current_files(root) if not p.stem.endswith("_eval")}
    pairs = []
    for run in runs:
        found = sorted(baselines.get(network_key(run.config), []),
                       key=lambda f: (f[0] != where.get(run.name), not f[1]))
        pairs.append(Pair(run, found[0][2] if found else None))
    return pairs


@dataclasses.dataclass
class Recipe:
    """The recipe trained on the training split, one run per seed, each with its random init."""
    pairs: list

    @property
    def seeds(self) -> list:
        return [p.run.config.get("seed", 0) for p in self.pairs]

    def mean(self, what: str):
        values = [self.value(p, what) for p in self.pairs]
        values = [v for v in values if v is not None]
        return statistics.mean(values) if values else None

    def spread(self, what: str) -> tuple:
        values = [v for v in (self.value(p, what) for p in self.pairs) if v is not None]
        return (min(values), max(values)) if values else (None, None)

    @staticmethod
    def value(pair: Pair, what: str):
        """what: knn, linear (accuracy in %), knn_margin, linear_margin (points), knn0, linear0 (random init %)."""
        if what.endswith("_margin"):
            return pair.margin(what.removesuffix("_margin"))
        if what.endswith("0"):
            v = getattr(pair.baseline, what[:-1], None) if pair.baseline else None
        else:
            v = getattr(pair.run, what)
        return None if v is None else 100 * v

    def text(self, what: str, fmt=lambda v: f"{v:.1f}", unit: str = "") -> str:
        """The mean, and the range over seeds when there are several: '51.8% (50.0 to 52.7)'."""
        m = self.mean(what)
        if m is None:
            return "–"
        if len(self.pairs) < 2:
            return fmt(m) + unit
        lo, hi = self.spread(what)
        return f"{fmt(m)}{unit} ({fmt(lo)} to {fmt(hi)})"


def recipe(root=None) -> Recipe:
    """The evaluated runs of today's recipe on the training split, one per seed (a dedicated
    seed run preferred to a tuning run with the same settings), each with its random init."""
    runs = evaluated(on_training_split(training_runs(root)))
    by_seed = {}
    for run in runs:
        if set(differences(run.config)) <= {"seed"}:
            seed = run.config.get("seed", 0)
            if seed not in by_seed or run.name.startswith("r_"):
                by_seed[seed] = run
    return Recipe(with_baselines([by_seed[s] for s in sorted(by_seed)], root))


def eval_only(name: str, root=None):
    path = Path(root or results_dir()) / name
    return load(eval_path=path) if path.is_file() else None


def pixels(root=None):
    """The Sobel-pixels baseline on the validation split (eval file), or None."""
    return eval_only("cifar10_pixels_eval.json", root)


def supervised(root=None):
    """The supervised baseline nearest to the recipe (softmax, Sobel) on the training split."""
    runs = evaluated(on_training_split(training_runs(root)))
    run, _ = pick([r for r in runs if r.config.get("objective") == "softmax"], DEFAULTS, objective="softmax")
    return run


def study(anchor_vary: dict, field: str, values, root=None, runs=None) -> list:
    """One ablation: the run nearest to the recipe with anchor_vary, then for each value of
    `field` (or each dict of fields) the run nearest to that anchor with it.
    -> [(value, Record or None, {other differences from the anchor})]."""
    runs = runs if runs is not None else evaluated(on_training_split(training_runs(root)))
    anchor, _ = pick(runs, DEFAULTS, **anchor_vary)
    if anchor is None:
        return [(v, None, {}) for v in values]
    return [(v, *pick(runs, anchor.config, **(v if isinstance(v, dict) else {field: v}))) for v in values]


def snapshots(run: Record, baseline: Record = None) -> dict:
    """{epoch: Record} of a run's evaluated snapshots (NAME_epochE_eval.json beside its results
    file), its final evaluation at its last epoch, and its random init at epoch 0 if given."""
    out = {0: baseline} if baseline is not None else {}
    for path in current_files(None, f"{run.name}_epoch*_eval.json"):
        epoch = path.stem.removeprefix(f"{run.name}_epoch").removesuffix("_eval")
        if epoch.isdigit():
            out[int(epoch)] = load(eval_path=path)
    if run.evaluation is not None:
        out[len(run.history)] = run
    return dict(sorted(out.items()))


# Seeds --------------------------------------------------------------------------------------------
def seed_groups(runs=None, root=None) -> list:
    """Groups of evaluated runs on the training split that differ only by their seed (at least
    two seeds each), largest first -> [[Pair, ...], ...] (each with its random init)."""
    runs = runs if runs is not None else evaluated(on_training_split(training_runs(root)))
    groups = {}
    for pair in with_baselines(runs, root):
        key = tuple(sorted((f, str(v)) for f, v in differences(pair.run.config).items() if f != "seed"))
        groups.setdefault(key, {}).setdefault(pair.run.config.get("seed", 0), pair)
    out = [list(g.values()) for g in groups.values() if len(g) >= 2]
    return sorted(out, key=lambda g: (-len(g), len(differences(g[0].run.config))))


# Tables -------------------------------------------------------------------------------------------
def main_table(rec: Recipe = None, pix=None, sup=None, root=None) -> str:
    """The recipe against its baselines on the validation split, as a Markdown table: each seed of
    the recipe, its network at random initialisation, Sobel pixels and (if given) the supervised
    network; margins over random initialisation in points."""
    rec = rec if rec is not None else recipe(root)
    rows = []
    base = rec.pairs[0].baseline if rec.pairs else None
    for p in rec.pairs:
        rows.append([f"NAT, the recipe (seed {p.run.config.get('seed', 0)})", "yes, no labels", pct(p.run.knn),
                     pct(p.run.linear), pts(p.margin("knn")), pts(p.margin("linear"))])
    if base is not None:
        rows.append(["the same network at random initialisation", "no", pct(base.knn), pct(base.linear), "", ""])
    if pix is not None:
        rows.append(["Sobel pixels, no network (linear probe on every pixel)", "no", pct(pix.knn), pct(pix.linear),
                     "", ""])
    if sup is not None:
        rows.append([f"the same network trained with labels ({describe(sup.config)})", "yes, with labels",
                     pct(sup.knn), pct(sup.linear), "", ""])
    return md_table(["network", "trained on the 45,000 training images", "kNN-20", "linear probe",
                     "kNN-20 margin", "linear margin"], rows)


# Chapter 10: the sweep that chose the recipe, the paired tests ------------------------------------
def sweep(root=None) -> list:
    """The evaluated runs of the sweep that chose the recipe (results/recipe/; the r_* files there are
    the recipe's own seeds, made after the choice, and left out), each with its random init: the
    recipe itself first, then the rest by kNN-20 accuracy."""
    folder = Path(root or results_dir()) / "recipe"
    runs = [load(p) for p in current_files(folder) if not p.stem.endswith("_eval")
            and not p.stem.startswith("r_") and p.with_name(p.stem + "_eval.json").is_file()]
    runs = [r for r in evaluated(runs) if r.config.get("objective", "nat") == "nat"]
    pairs = with_baselines(runs, root)
    return sorted(pairs, key=lambda p: (describe(p.run.config) != "the recipe", -(p.run.knn or 0)))


def sweep_start(pairs):
    """The sweep's starting point: the run from which the others differ least (each changed one thing)."""
    if not pairs:
        return None
    return min(pairs, key=lambda p: sum(len(differences(q.run.config, p.run.config)) for q in pairs)).run


def sweep_table(pairs) -> str:
    """The sweep as a Markdown table: each run by what it changed from the sweep's starting point,
    its accuracies and margins; the run whose settings became the recipe is marked."""
    start = sweep_start(pairs)
    rows = []
    for p in pairs:
        changed = words(differences(p.run.config, start.config)) if p.run is not start else "nothing: the starting point"
        if describe(p.run.config) == "the recipe":
            changed += " (**the recipe**)"
        rows.append([changed, len(p.run.history), pct(p.run.knn), pct(p.run.linear), pts(p.margin("knn")),
                     pts(p.margin("linear"))])
    head = (f"The sweep's starting point was {variant(start.config)}; each other run changed what its row says.\n\n"
            if start is not None else "")
    return head + md_table(["what the run changed", "epochs", "kNN-20", "linear probe", "kNN-20 margin",
                            "linear margin"], rows)


def old_recipe(root=None):
    """The margins of the earlier recipe (re-solving in every epoch, 3 epochs on 22,500 images), read
    from the archive -> (kNN-20 margin, linear margin, epochs, images) or None."""
    archive = Path(root or results_dir()) / "archive"
    run_file, base_file = archive / "ablations_25k" / "a_nat_sobel.json", archive / "cifar10_random_init_eval.json"
    if not (run_file.is_file() and base_file.is_file()):
        return None
    pair = Pair(load(run_file), load(eval_path=base_file))
    if pair.run.evaluation is None:
        return None
    return pair.margin("knn"), pair.margin("linear"), len(pair.run.history), pair.run.results["n"]


def paired_table(rows) -> str:
    """Rows of nattools.study.paired.rows as a Markdown table."""
    from .paired import p_text
    out = [[f"{r['a']} vs {r['b']}", r["judge"], pct(r["acc_a"]), pct(r["acc_b"]),
            f"{100 * r['diff']:+.1f} ± {100 * r['se']:.1f}", f"{r['a_only']:,} / {r['b_only']:,}", p_text(r["p"])]
           for r in rows]
    return md_table(["comparison (a vs b)", "judge", "a", "b", "a - b (points, ± paired SE)",
                     "only a right / only b right", "McNemar"], out)


# Chapter 11: the ablations ------------------------------------------------------------------------
STUDIES = {
    # study: (anchor: the recipe with these settings, the field varied, {label: value})
    "loss": ({"objective": "softmax"}, "objective", {"softmax": "softmax", "square loss": "square"}),
    "input": ({}, "input", {"Sobel": "sobel", "grey": "grey", "colour (RGB)": "rgb"}),
    "targets": ({}, "targets", {"continuous": "sphere", "10 codes": {"targets": "discrete", "k_codes": 10},
                                "100 codes": {"targets": "discrete", "k_codes": 100},
                                "1000 codes": {"targets": "discrete", "k_codes": 1000}}),
    "reassignment": ({"reassign_every": 1}, "reassign_every",
                     {"every epoch": 1, "every third epoch": 3, "never": 0}),
}


def ablations(root=None) -> dict:
    """{study: {label: (Pair or None, {other differences from the study's anchor})}} for STUDIES."""
    runs = evaluated(on_training_split(training_runs(root)))
    out = {}
    for key, (anchor, field, values) in STUDIES.items():
        found = study(anchor, field, list(values.values()), runs=runs)
        pairs = with_baselines([run for _, run, _ in found if run is not None], root)
        by_name = {p.run.name: p for p in pairs}
        out[key] = {label: (by_name.get(run.name) if run is not None else None, other)
                    for label, (_, run, other) in zip(values, found)}
    return out


def study_table(found: dict) -> str:
    """One study ({label: (Pair or None, other differences)}) as a Markdown table."""
    rows = []
    for label, (pair, other) in found.items():
        if pair is None:
            rows.append([label, "not made yet", "", "", "", "", ""])
            continue
        also = words(other)
        rows.append([label, len(pair.run.history), pct(pair.run.knn), pct(pair.run.linear),
                     pts(pair.margin("knn")), pts(pair.margin("linear")), also])
    return md_table(["run", "epochs", "kNN-20", "linear probe", "kNN-20 margin", "linear margin",
                     "also differs from the first row"], rows)


def snapshot_run(root=None, allowed=("weight_decay", "seed")) -> tuple:
    """The run of the recipe (or of a variant differing only in `allowed` fields) with the most
    evaluated snapshots, the recipe itself preferred on ties -> (Pair, {epoch: Record}) or (None, {})."""
    pairs = with_baselines(evaluated(on_training_split(training_runs(root))), root)
    best, key = (None, {}), None
    for pair in pairs:
        diff = differences(pair.run.config)
        if not set(diff) <= set(allowed):
            continue
        snaps = snapshots(pair.run, pair.baseline)
        rank = (len(snaps), -len(diff), pair.run.name.startswith("r_"))
        if len(snaps) > 2 and (key is None or rank > key):
            best, key = (pair, snaps), rank
    return best


def snapshot_figure(curves: dict, title: str = "Accuracy of the snapshots", chance: float = 0.1):
    """{label: {epoch: Record}} -> two panels (kNN-20, linear probe) of accuracy against the epoch
    (epoch 0 = random initialisation)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    from .plotting import PALETTE
    fig = make_subplots(rows=1, cols=2, subplot_titles=("kNN-20 (embedding)", "linear probe (features)"),
                        horizontal_spacing=0.1)
    for k, (label, snaps) in enumerate(curves.items()):
        epochs = sorted(snaps)
        for col, metric in ((1, "knn"), (2, "linear")):
            fig.add_trace(go.Scatter(x=epochs, y=[getattr(snaps[e], metric) for e in epochs], mode="lines+markers",
                                     name=label, legendgroup=label, showlegend=col == 1,
                                     line=dict(color=PALETTE[k % len(PALETTE)])), row=1, col=col)
    fig.add_hline(y=chance, line=dict(color="grey", dash="dot"))
    fig.update_xaxes(title_text="epoch (0 = random initialisation)")
    fig.update_yaxes(tickformat=".0%")
    fig.update_layout(title=title, height=430, legend=dict(orientation="h", y=-0.25), margin=dict(t=80))
    return fig


