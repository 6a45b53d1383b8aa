"""What the project's runs say, in words: the results files read as a whole, and the "What we
found" boxes that close the results chapters.

Every figure in a box comes from a file in data/results (or from a measurement the chapter has
just made and passes in); nothing is typed by hand. Runs are found by what they are (their
config: the recipe, the recipe with one thing changed, a supervised baseline), not by their file
names, and described in words (`describe`): a run made later (more seeds, a new ablation) joins
the tables and boxes without a change of code. A run that is not there yet leaves a one-line
note instead of a figure (`Missing`).
"""
import dataclasses
import statistics
from pathlib import Path

from ..config import DEFAULTS, PRESETS, fields_with_role
from .margins import network_key
from .plotting import md_table
from .runs import Run, data_dir, load, read_json

RECIPE_FIELDS = fields_with_role("recipe", "network")
SUPERVISED_IRRELEVANT = ("reassign_every", "targets", "k_codes", "k", "views")


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------
def pct(p) -> str:
    """An accuracy (a fraction of 1) in per cent: 0.5296 -> '53.0%'."""
    return "–" if p is None else f"{100 * p:.1f}%"


def pts(x) -> str:
    """A difference in percentage points, signed: 20.76 -> '+20.8'."""
    return "–" if x is None else f"{x:+.1f}"


def box(title: str, parts, kind: str = "important") -> str:
    """A MyST admonition holding paragraphs, bullet lists (lists of str) and tables (str)."""
    body = []
    for part in parts:
        if part is None:
            continue
        body.append("\n".join(f"- {item}" for item in part) if isinstance(part, (list, tuple)) else part)
    return f":::{{admonition}} {title}\n:class: {kind}\n" + "\n\n".join(body) + "\n:::"


def show(markdown: str):
    """Markdown for the page (the book renders it as MyST: admonitions, tables, maths)."""
    from IPython.display import Markdown
    return Markdown(markdown)


# ---------------------------------------------------------------------------
# Runs described in words
# ---------------------------------------------------------------------------
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
    return ", ".join(WORDS.get(f, lambda v, f=f: f"{f} {v}")(v) for f, v in diff.items()) or "the recipe"


def variant(config: dict) -> str:
    """'the recipe', or 'the recipe with weight decay 0.0005' (val_fraction and seed left out)."""
    words = describe(config, ignore=("val_fraction", "seed"))
    return words if words == "the recipe" else f"the recipe with {words}"


# ---------------------------------------------------------------------------
# The results, found by what they are
# ---------------------------------------------------------------------------
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
    -> (Run, {field: value} of the remaining differences) or (None, {})."""
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
    run: Run
    baseline: Run = None

    def margin(self, metric: str):
        if self.baseline is None or getattr(self.run, metric) is None or getattr(self.baseline, metric) is None:
            return None
        return 100 * (getattr(self.run, metric) - getattr(self.baseline, metric))


def current_files(root=None, pattern: str = "*.json") -> list:
    """The files under results/ matching pattern, the archive of older recipes left out."""
    root = Path(root or results_dir())
    return [p for p in sorted(root.rglob(pattern)) if "archive" not in p.relative_to(root).parts]


def random_baselines(root=None) -> dict:
    """{network_key: [(folder, held out validation?, Run), ...]} of the random-init evaluations
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


def committed(root=None):
    """The committed network's run (trained on every image): results/cifar10_nat.json, or None."""
    path = Path(root or results_dir()) / "cifar10_nat.json"
    return load(path) if path.is_file() else None


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
    -> [(value, Run or None, {other differences from the anchor})]."""
    runs = runs if runs is not None else evaluated(on_training_split(training_runs(root)))
    anchor, _ = pick(runs, DEFAULTS, **anchor_vary)
    if anchor is None:
        return [(v, None, {}) for v in values]
    return [(v, *pick(runs, anchor.config, **(v if isinstance(v, dict) else {field: v}))) for v in values]


def snapshots(run: Run, baseline: Run = None) -> dict:
    """{epoch: Run} of a run's evaluated snapshots (NAME_epochE_eval.json beside its results
    file), its final evaluation at its last epoch, and its random init at epoch 0 if given."""
    out = {0: baseline} if baseline is not None else {}
    for path in current_files(None, f"{run.name}_epoch*_eval.json"):
        epoch = path.stem.removeprefix(f"{run.name}_epoch").removesuffix("_eval")
        if epoch.isdigit():
            out[int(epoch)] = load(eval_path=path)
    if run.evaluation is not None:
        out[len(run.history)] = run
    return dict(sorted(out.items()))


class Missing(list):
    """Files a table or box is waiting for: one line for the page."""

    def note(self) -> str:
        if not self:
            return ""
        return f"Not made yet, so left out: {'; '.join(self)}."


# ---------------------------------------------------------------------------
# The paper beside ours
# ---------------------------------------------------------------------------
PUBLISHED = [
    # (what, figure in %, where it was published, how it was measured)
    ("NAT, AlexNet on ImageNet, conv5", "36.0",
     "Gidaris et al., ICLR 2018 (RotNet), table of ImageNet top-1 accuracy of classifiers trained on "
     "frozen conv4 and conv5 features",
     "ImageNet top-1, classifier on frozen conv5 features"),
    ("the same AlexNet trained with ImageNet labels, conv5", "59.7",
     "the same RotNet table (row 'ImageNet labels', from Bojanowski & Joulin, 2017)",
     "ImageNet top-1, classifier on frozen conv5 features"),
    ("a random AlexNet, conv5", "12.0",
     "the same RotNet table (row 'Random', from Noroozi & Favaro, 2016)",
     "ImageNet top-1, classifier on frozen conv5 features"),
    ("NAT on CIFAR-10, linear SVM", "48.62",
     "Hjelm et al., ICLR 2019 (DIM), their Table 3", "CIFAR-10 test split, linear SVM on conv features"),
    ("NAT on CIFAR-10, small MLP", "56.19",
     "Hjelm et al., ICLR 2019 (DIM), their Table 1", "CIFAR-10 test split, 200-unit MLP on conv features"),
]


def published_table() -> str:
    """The published NAT figures this book quotes, with their sources (Markdown)."""
    return md_table(["what", "accuracy", "measured as", "source"],
                    [[w, f"{f}%", how, src]
                     for w, f, src, how in PUBLISHED])


def deviations(root=None) -> str:
    """Our setting beside the paper's, as a Markdown table (ours read from the recipe's defaults
    and the committed run)."""
    paper = PRESETS["imagenet"]
    run = committed(root)
    n = f"{run.results['n']:,}" if run else "50,000"
    from ..config import TrainConfig
    from ..models import build_model
    conv = sum(p.numel() for p in build_model(TrainConfig()).trunk.parameters())
    rows = [
        ["network", "AlexNet with batch norm, 5 conv layers",
         f"a small net of 5 conv layers (width {DEFAULTS['width']}), {conv / 1e6:.2f} M conv parameters"],
        ["input", f"grey-scale Sobel gradients, {paper['image_size']} px crops",
         f"grey-scale Sobel gradients, {DEFAULTS['image_size']} px crops"],
        ["data", "ImageNet, 1.28 M training images, no labels", f"CIFAR-10, {n} training images, no labels"],
        ["targets and d", f"one per image on the sphere, d = {paper['d']}",
         f"one per image on the sphere, d = {DEFAULTS['d']}"],
        ["assignment", "re-solved per batch, every 3 epochs (the paper's code)",
         f"re-solved per batch, every {DEFAULTS['reassign_every']} epochs"],
        ["optimiser", "SGD, batch 256, constant learning rate 0.01 (the paper's code)",
         f"SGD, batch {DEFAULTS['batch_size']}, learning rate {DEFAULTS['lr']:g} with a cosine decay, "
         f"weight decay {DEFAULTS['weight_decay']:g}"],
        ["epochs", "the paper's ImageNet schedule (not restated here)",
         f"{DEFAULTS['epochs']} epochs (the committed network: on a 2-core CPU, in {run.wall_time_s / 60:.0f} "
         f"minutes)" if run is not None and run.wall_time_s else f"{DEFAULTS['epochs']} epochs"],
        ["probe", "classifiers on frozen conv layers (ImageNet), PASCAL VOC transfer",
         "kNN-20 on the embedding; a linear probe on the last conv block pooled 2x2; CIFAR-10 validation split"],
    ]
    return md_table(["", "the paper", "this book"], rows)


# ---------------------------------------------------------------------------
# Seeds, noise
# ---------------------------------------------------------------------------
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


def binomial_se(p: float, n: int) -> float:
    """The standard error of an accuracy p measured on n images, in points."""
    return 100 * (p * (1 - p) / n) ** 0.5


def seeds_sentence(rec: Recipe, root=None) -> str:
    """How much a second seed moves the margins: the recipe's own seeds if it has several, else
    the largest group of seeds of a close variant."""
    if len(rec.pairs) >= 2:
        return (f"Over the recipe's {len(rec.pairs)} seeds the kNN-20 margin ranges "
                f"{' to '.join(pts(v) for v in rec.spread('knn_margin'))} and the linear one "
                f"{' to '.join(pts(v) for v in rec.spread('linear_margin'))} points.")
    groups = seed_groups(root=root)
    if not groups:
        return "Only one seed of each setting has been evaluated: the seed-to-seed spread is not measured."
    group = Recipe(groups[0])
    what = describe(group.pairs[0].run.config, ignore=("val_fraction", "seed"))
    return (f"Only one seed of the recipe itself is evaluated so far; {len(group.pairs)} seeds of a close variant "
            f"({what}) gave margins from {' to '.join(pts(v) for v in group.spread('knn_margin'))} (kNN-20) and "
            f"{' to '.join(pts(v) for v in group.spread('linear_margin'))} (linear): a second seed moves a margin "
            f"by a point or more.")


def reassigned_epochs(history) -> list:
    return [h for h in history if h.get("reassigned", h.get("changed", 0) > 0)]


# ---------------------------------------------------------------------------
# The boxes
# ---------------------------------------------------------------------------
def recipe_sentence(rec: Recipe, pix=None) -> str:
    """The recipe's validation figures and margins, in one sentence."""
    if not rec.pairs:
        return "No run of the recipe on the training split has been evaluated yet."
    seeds = f"{len(rec.pairs)} seeds, mean and range" if len(rec.pairs) > 1 else "one seed"
    text = (f"Trained on the 45,000 images of the training split and scored on the 5,000 validation images, the "
            f"recipe ({seeds}) reaches **{rec.text('knn', unit='%')} with kNN-20** and "
            f"**{rec.text('linear', unit='%')} with the linear probe**; the same network at random initialisation "
            f"reaches {rec.text('knn0', unit='%')} and {rec.text('linear0', unit='%')}: margins of "
            f"**{rec.text('knn_margin', pts)}** and **{rec.text('linear_margin', pts)} points**.")
    if pix is not None and pix.knn is not None:
        text += (f" Sobel pixels, the network's own input with no network at all, reach {pct(pix.knn)} with kNN-20 "
                 f"and {pct(pix.linear)} with a linear probe on every pixel.")
    return text


def training_box(run, every=None, rec: Recipe = None, pix=None, root=None):
    """Chapter 5: the committed run, the churn of the assignment, the recipe's figures."""
    rec = rec if rec is not None else recipe(root)
    parts, missing = [], Missing()
    if run is None:
        missing.append("the committed run's results file (results/cifar10_nat.json)")
    else:
        h, solved = run.history, reassigned_epochs(run.history)
        fixed = [x for x in h if x not in solved]
        move = "fell" if fixed and fixed[-1]["loss"] < fixed[0]["loss"] else "did not fall"
        text = (f"**The committed network** trained on all {run.results['n']:,} images for {len(h)} epochs in "
                f"{run.wall_time_s / 60:.0f} minutes on this project's 2-core CPU. ")
        if fixed:
            text += (f"In the {len(fixed)} epochs that keep the targets fixed, its loss {move} from "
                     f"{fixed[0]['loss']:.2f} (epoch {fixed[0]['epoch']}) to {fixed[-1]['loss']:.2f} (epoch "
                     f"{fixed[-1]['epoch']}): the network learns to predict targets that do not move. ")
        if solved:
            text += (f"In the {len(solved)} epochs that re-solve the assignment the loss stays near "
                     f"{statistics.mean(x['loss'] for x in solved):.2f}, because each batch first takes the "
                     f"targets that suit it best; {solved[0]['changed']:.1%} of the images changed target in the "
                     f"first of them and {solved[-1]['changed']:.1%} in the last (epoch {solved[-1]['epoch']}).")
        parts.append(text)
    if every is not None and every.history:
        parts.append(
            f"**Churn.** A run of the same length that re-solves the assignment in every epoch still changed the "
            f"target of {every.history[-1]['changed']:.0%} of its images in its last epoch: its targets never "
            f"settle, and chapter 11 shows that its features get worse as it trains.")
    parts.append(recipe_sentence(rec, pix))
    if rec.pairs:
        n = rec.pairs[0].run.evaluation.get("n_val", 5000)
        parts.append(
            f"**How sure.** On {n:,} validation images an accuracy near 50% carries a binomial standard error of "
            f"{binomial_se(0.5, n):.1f} points, so these margins are far beyond the test set's noise; chapter 10 "
            f"compares the networks image by image (McNemar's test). {seeds_sentence(rec, root)}")
    took = f", trained in {run.wall_time_s / 60:.0f} minutes on a CPU" if run is not None and run.wall_time_s else ""
    parts.append(
        "**Not reproduced here.** The paper's scale: AlexNet on the 1.28 million images of ImageNet. This recipe is "
        f"the paper's method and assignment schedule on a small network and CIFAR-10{took}. The live run on this "
        "page is far too short to learn much: it shows the mechanics, not the result.")
    parts.append(
        "**Beside the paper.** The schedule (re-solving every third epoch) is the paper's code's. Its figures are "
        "ImageNet accuracies of AlexNet's layers, not comparable with ours; chapter 10 quotes them with their "
        "sources, and the closing page lists every deviation.")
    parts.append(missing.note() or None)
    return show(box("What we found", parts))


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


def _mean_se(values) -> tuple:
    """(mean, standard error) of a 1-D tensor or list."""
    import torch
    v = torch.as_tensor(values, dtype=torch.float64)
    return float(v.mean()), float(v.std() / len(v) ** 0.5) if len(v) > 1 else 0.0


def filters_box(cosines: dict, smoother: dict, purity: dict, chance: float, layer_names: list, nat_config: dict,
                conv1_shape: tuple = (32, 5)):
    """Chapter 7. cosines: {network: (C,) cosine of each conv1 filter with its start};
    smoother: {network: share of its learned parts smoother than 95% of chance draws};
    purity: {network: [per-channel class purity (C_l,) for each layer]}; chance: purity of random
    images; nat_config: the NAT checkpoint's config; conv1_shape: (filters, kernel size)."""
    import torch
    nat, sup = cosines.get("NAT"), cosines.get("supervised")
    parts = [f"The NAT network here is the committed one ({describe(nat_config)}, {nat_config.get('epochs')} "
             f"epochs); the supervised one trained on the training split with labels."]
    if nat is not None and sup is not None:
        more = "less" if float(nat.median()) > float(sup.median()) else "more"
        parts.append(
            f"**How far the first layer moved.** The median cosine between a trained conv1 filter and its own "
            f"random start is {float(nat.median()):.3f} for NAT and {float(sup.median()):.3f} for the supervised "
            f"network (1 means unchanged; the lowest NAT filter is at {float(nat.min()):.3f}). NAT moved its first "
            f"layer {more} than labels did" + (", and its filters still look much like their starting noise."
                                                 if float(nat.median()) > 0.9 else "."))
    if smoother:
        parts.append(
            "**What training added.** The part of each filter orthogonal to its start is smoother than 95% of "
            "the chance draws for " + ", ".join(f"{share:.0%} of {name}'s filters" for name, share in smoother.items())
            + " (5% would be chance): training added smooth, slowly varying structure, not noise.")
    rows = []
    for li, name in enumerate(layer_names):
        cells = []
        for net in purity:
            m, se = _mean_se(purity[net][li])
            cells.append(f"{m:.1%} ± {se:.1%}")
        rows.append([name, *cells])
    parts.append(f"**Channels and classes.** Class purity of a channel's top images, mean ± standard error over "
                 f"the layer's channels (chance {chance:.1%}):")
    parts.append(md_table(["layer", *purity], rows))
    if "NAT" in purity and "random" in purity:
        ahead = sum(float(torch.as_tensor(a).mean()) > float(torch.as_tensor(b).mean())
                    for a, b in zip(purity["NAT"], purity["random"]))
        parts.append(f"NAT's channels are purer than its random start's in {ahead} of {len(layer_names)} layers. "
                     "Labels only judge here; neither network saw them.")
    parts.append("**How sure.** One network of each kind and one seed: the standard errors above are over channels "
                 "and images, not over training runs.")
    parts.append(f"**Beside the paper.** The paper's first layer is AlexNet's, 96 filters of 11 x 11 pixels on "
                 f"224-pixel crops; ours has {conv1_shape[0]} filters of {conv1_shape[1]} x {conv1_shape[1]} on "
                 f"{nat_config.get('image_size', 32)}-pixel images. We compare no numbers with the "
                 "paper here: the pictures are not comparable one to one.")
    return show(box("What we found", parts))


def neighbours_box(share10: dict, diffs: dict, knn: dict, chance: float, queries: int, memory: int,
                   nat_config: dict, rec: Recipe = None, pix=None):
    """Chapter 8. share10: {space: share of the 10 nearest in the query's class}; diffs: {other space:
    (difference in points, standard error) of NAT minus it at m = 10, paired over the queries}; knn:
    {space: kNN-20 accuracy on this page's memory}; chance: the chance share."""
    nat = share10.get("NAT embedding")
    parts = [f"The network is {variant(nat_config)}, trained on the training split: the {queries:,} validation "
             f"images used as queries are new to it."]
    if nat is not None:
        others = ", ".join(f"{share:.1%} for {space}" for space, share in share10.items() if space != "NAT embedding")
        parts.append(f"**Neighbours.** Of the 10 nearest training images (among {memory:,}) of a validation image, "
                     f"{nat:.1%} share its class in NAT's embedding, against {others} (chance {chance:.1%}).")
    if diffs:
        parts.append("**NAT minus each other space**, at 10 neighbours, paired over the same queries: " + "; ".join(
            f"{space} {d:+.1f} ± {se:.1f} points ({'beyond' if abs(d) > 2 * se else 'within'} two standard errors)"
            for space, (d, se) in diffs.items()) + ".")
    rec = rec if rec is not None else recipe()
    if rec.pairs and pix is not None:
        parts.append(f"With the whole training split as memory (the evaluation files), NAT's kNN-20 accuracy is "
                     f"{rec.text('knn', unit='%')}, Sobel pixels' {pct(pix.knn)} and the random network's "
                     f"{rec.text('knn0', unit='%')}.")
    rgb, sobel = share10.get("RGB pixels"), share10.get("Sobel pixels")
    if rgb is not None and sobel is not None and rgb > sobel:
        parts.append("**A shortcut NAT does not take.** Raw RGB pixels find more same-class neighbours than Sobel "
                     "pixels: colour and background carry class information on CIFAR-10, and NAT's network never "
                     "sees colour (chapter 4).")
    parts.append("**Beside the paper.** We compare no figure with the paper here: its evaluations are classifiers "
                 "trained on frozen features, on ImageNet and PASCAL VOC (chapter 10).")
    return show(box("What we found", parts))


def coverage_box(runs: dict, separation: dict):
    """Chapter 9. runs: {key: a run measured by coverage.measure}; separation: {key: {"NAT": (separation,
    share of same-class neighbours), "random init": (...)}}, with the chance share under "chance"."""
    from .coverage import coverage_stats, sphere_uniformity
    parts = []
    for key, r in runs.items():
        u = {label: coverage_stats(z)["uniformity"] for label, z in
             (("targets", r["targets"][r["own"]]), ("crops", r["views"]), ("whole", r["z"]), ("random", r["z_random"]))}
        closed = lambda label: (u["random"] - u[label]) / (u["random"] - u["targets"])  # noqa: E731
        hist = r["stored"]["history"]
        solved = reassigned_epochs(hist) or hist
        cos = 1 - hist[-1]["loss"] / 2
        cfg = r["cfg"]
        text = (f"**{key}** ({describe(dataclasses.asdict(cfg))}, {cfg.epochs} epochs). Uniformity of the "
                f"embeddings of training crops {u['crops']:.2f}, of the targets they hold {u['targets']:.2f}, of the "
                f"random-init network {u['random']:.2f} (exact for uniform points: {sphere_uniformity(cfg.d):.2f}): "
                f"training closed {closed('crops'):.0%} of the gap between random init and the targets for crops, "
                f"{closed('whole'):.0%} for whole images. The last epoch's loss, {hist[-1]['loss']:.2f}, means a "
                f"mean cosine of {cos:.2f} between an output and its target: the outputs spread like the targets "
                f"{'without sitting on them' if cos < 0.5 else 'and sit close to them'}; at the last re-solve "
                f"(epoch {solved[-1]['epoch']}) {solved[-1]['changed']:.0%} of the images changed target.")
        if key in separation:
            s = separation[key]
            text += (f" Same-class neighbours: {s['NAT'][1]:.0%} for NAT, {s['random init'][1]:.0%} for the random "
                     f"network (chance {s['chance']:.0%}).")
        parts.append(text)
    parts.append("**How sure.** Each figure is measured on the images printed at the top of the page (one network, "
                 "one seed); the uniformity of a few thousand points moves in the second decimal from one sample "
                 "to another.")
    parts.append("**Beside the paper.** The paper's abstract says that fixed targets avoid \"the standard "
                 "unsupervised learning issues of trivial solutions and collapsing of features\": here no collapse "
                 "happens, and the outputs cover the sphere much as the noise does, though not exactly. We compare "
                 "no coverage figure with the paper.")
    return show(box("What we found", parts))


# ---------------------------------------------------------------------------
# Chapter 10: the sweep that chose the recipe, the paired tests, the box
# ---------------------------------------------------------------------------
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


def sweep_summary(pairs) -> str:
    """What the sweep says, in words, from its figures: the spread between settings against the
    spread between seeds of one setting."""
    if not pairs:
        return "No run of the sweep is in data/results/recipe yet."
    knn = [100 * p.run.knn for p in pairs]
    text = (f"The {len(pairs)} runs span {min(knn):.1f}% to {max(knn):.1f}% with kNN-20 and "
            f"{min(100 * p.run.linear for p in pairs):.1f}% to {max(100 * p.run.linear for p in pairs):.1f}% with the "
            f"linear probe.")
    groups = seed_groups([p.run for p in pairs])
    if groups:
        seeds = [100 * p.run.knn for p in groups[0]]
        text += (f" Seeds alone move kNN-20 by up to {max(seeds) - min(seeds):.1f} points ({len(seeds)} seeds of "
                 f"{describe(groups[0][0].run.config, ignore=('val_fraction', 'seed'))}), about as much as any change "
                 f"of setting: the sweep picked the best run, and ruled out the settings that were clearly worse, "
                 f"but the gains between the top settings are within a seed's noise.")
    return text


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


def old_recipe_sentence(root=None) -> str:
    old = old_recipe(root)
    if old is None:
        return ""
    knn, lin, epochs, n = old
    return (f"An earlier recipe re-solved the assignment in every epoch and trained {epochs} epochs on {n:,} images; "
            f"its margins over random initialisation were {pts(lin)} (linear) and {pts(knn)} (kNN-20) points. It was "
            f"replaced because re-solving in every epoch keeps almost every target moving, and longer training then "
            f"made its features worse, not better (chapter 11).")


def paired_table(rows) -> str:
    """Rows of nattools.study.paired.rows as a Markdown table."""
    from .paired import p_text
    out = [[f"{r['a']} vs {r['b']}", r["judge"], pct(r["acc_a"]), pct(r["acc_b"]),
            f"{100 * r['diff']:+.1f} ± {100 * r['se']:.1f}", f"{r['a_only']:,} / {r['b_only']:,}", p_text(r["p"])]
           for r in rows]
    return md_table(["comparison (a vs b)", "judge", "a", "b", "a - b (points, ± paired SE)",
                     "only a right / only b right", "McNemar"], out)


def published_gap_share() -> str:
    """Where NAT sits between a random and a supervised network, in the published ImageNet table."""
    nat, sup, rnd = (float(f) for _, f, _, _ in PUBLISHED[:3])
    return f"{(nat - rnd) / (sup - rnd):.0%}"


def evaluation_box(rec: Recipe, pix, sup, paired_rows, layers: dict = None, sweep_pairs=None, nat_config=None):
    """Chapter 10: the recipe against its baselines, how sure, by depth, beside the paper."""
    parts = [recipe_sentence(rec, pix)]
    if sup is not None:
        parts[0] += (f" With labels, the same network reaches {pct(sup.knn)} and {pct(sup.linear)}.")
    if paired_rows:
        from .paired import p_text
        lines = [f"{r['a']} vs {r['b']}, {r['judge']}: {100 * r['diff']:+.1f} ± {100 * r['se']:.1f} points "
                 f"({p_text(r['p'])})" for r in paired_rows]
        who = variant(nat_config) if nat_config is not None else "a run of the recipe"
        parts.append(f"**How sure.** Image by image on the same validation images, recomputed here from the "
                     f"checkpoints (NAT's is {who}, trained on the training split), McNemar's test:")
        parts.append(lines)
        parts.append(seeds_sentence(rec))
    if layers:
        best = {label: max(rows, key=lambda r: r["linear"]) for label, rows in layers.items()}
        nat, rnd = best.get("NAT"), best.get("random init")
        if nat and rnd:
            verdict = ("beats" if rnd["linear"] > nat["linear"] else "does not beat")
            gains = [(a["layer"], 100 * (a["linear"] - b["linear"])) for a, b in zip(layers["NAT"], layers["random init"])]
            top = max(gains, key=lambda g: g[1])
            parts.append(f"**By depth** (probes on a subset, the chapter's budget): NAT's best block is "
                         f"conv{nat['layer']} ({pct(nat['linear'])}), its random start's conv{rnd['layer']} "
                         f"({pct(rnd['linear'])}): the random network's best layer {verdict} NAT's best layer. NAT's "
                         f"largest gain over its start is at conv{top[0]} ({pts(top[1])} points), its smallest at "
                         f"conv{min(gains, key=lambda g: g[1])[0]} ({pts(min(g[1] for g in gains))}).")
    if sweep_pairs:
        parts.append("**How the recipe was chosen.** " + sweep_summary(sweep_pairs))
    parts.append(
        f"**Not reproduced here.** The paper's ImageNet experiments. **Beside the paper:** in RotNet's table, NAT's "
        f"conv5 features on ImageNet close {published_gap_share()} of the gap between a random and a supervised "
        f"AlexNet; here the linear probe of the last block closes "
        + (f"{(rec.mean('linear') - rec.mean('linear0')) / (100 * sup.linear - rec.mean('linear0')):.0%}"
           if sup is not None and rec.pairs else "–")
        + " of the gap between the random and the supervised small network. DIM's NAT on CIFAR-10 (another network, "
          "the test split, an SVM or an MLP) reads 48.62% and 56.19%; our linear probe reads "
        + (rec.text('linear', unit='%') if rec.pairs else "–") + " on the validation split. Orders of magnitude agree; "
          "the settings differ too much for a closer comparison.")
    return show(box("What we found", parts))


# ---------------------------------------------------------------------------
# Chapter 11: the ablations
# ---------------------------------------------------------------------------
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


def gap_line(a, b, what: str, n: int = 5000) -> str:
    """a minus b (Pairs) in points for both judges, with two binomial standard errors of an unpaired
    difference (the files hold accuracies only)."""
    if a is None or b is None:
        return f"{what}: not made yet"
    out = []
    for metric, name in (("knn", "kNN-20"), ("linear", "linear")):
        x, y = getattr(a.run, metric), getattr(b.run, metric)
        band = 2 * (binomial_se(x, n) ** 2 + binomial_se(y, n) ** 2) ** 0.5
        g = 100 * (x - y)
        out.append(f"{name} {g:+.1f} ({'beyond' if abs(g) > band else 'within'} ±{band:.1f})")
    return f"{what}: " + ", ".join(out)


def snapshot_run(root=None, allowed=("weight_decay", "seed")) -> tuple:
    """The run of the recipe (or of a variant differing only in `allowed` fields) with the most
    evaluated snapshots, the recipe itself preferred on ties -> (Pair, {epoch: Run}) or (None, {})."""
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


def ablations_box(found: dict, curves: dict, rec: Recipe = None):
    """Chapter 11: found = ablations(); curves = {label: {epoch: Run}} of the reassignment schedules and
    of the recipe's features over training."""
    rec = rec if rec is not None else recipe()
    parts, missing = [], Missing()
    r = found.get("reassignment", {})
    every, third, never = (r.get(k, (None, {}))[0] for k in ("every epoch", "every third epoch", "never"))
    if every and third and never:
        parts.append(
            f"**How often to re-solve.** After {len(third.run.history)} epochs, re-solving every third epoch reaches "
            f"{pct(third.run.knn)} (kNN-20) and {pct(third.run.linear)} (linear), never re-solving "
            f"{pct(never.run.knn)} and {pct(never.run.linear)}, and re-solving in every epoch only "
            f"{pct(every.run.knn)} and {pct(every.run.linear)}: "
            + ("worse than never re-solving at all. " if every.run.knn < never.run.knn else "")
            + "Re-solving helps when the network has time to fit its targets in between; re-solving in every "
              "epoch keeps them moving.")
        for label, snaps in curves.items():
            epochs = [e for e in snaps if e > 0]
            if len(epochs) >= 2 and label != "features over training":
                a, b = snaps[epochs[0]], snaps[epochs[-1]]
                parts.append(f"{label.capitalize()}: kNN-20 {pct(a.knn)} at epoch {epochs[0]}, {pct(b.knn)} at "
                             f"epoch {epochs[-1]} ({'falls' if b.knn < a.knn else 'rises'}).")
    else:
        missing.append("the reassignment study's runs")
    for key, (x_label, y_label), what in (("loss", ("softmax", "square loss"), "the square loss instead of softmax"),
                                          ("input", ("Sobel", "colour (RGB)"), "colour input instead of Sobel"),
                                          ("input", ("Sobel", "grey"), "grey input instead of Sobel"),
                                          ("targets", ("continuous", "100 codes"), "100 discrete codes")):
        a, b = (found.get(key, {}).get(k, (None, {}))[0] for k in (x_label, y_label))
        if a is None or b is None:
            missing.append(f"{key} study: {y_label}")
            continue
        parts.append(f"**{what[0].upper() + what[1:]}:** " + gap_line(b, a, f"{y_label} minus {x_label}")
                     + " points.")
    snaps = curves.get("features over training", {})
    epochs = [e for e in snaps if e > 0]
    if len(epochs) >= 2:
        a, b = snaps[epochs[0]], snaps[epochs[-1]]
        rising = all(snaps[y].knn > snaps[x].knn for x, y in zip(epochs, epochs[1:]))
        parts.append(f"**Features over training.** From epoch {epochs[0]} to epoch {epochs[-1]}, kNN-20 goes "
                     f"{pct(a.knn)} to {pct(b.knn)} and the linear probe {pct(a.linear)} to {pct(b.linear)}"
                     + (": with the paper's schedule the features improve at every snapshot." if rising else
                        ", not at every snapshot."))
    parts.append("**How sure.** These files hold accuracies, not the networks, so each gap is given with two binomial "
                 "standard errors of a difference on 5,000 images (unpaired: generous to the noise). "
                 + seeds_sentence(rec))
    parts.append("**Beside the paper.** The paper asks these questions of AlexNet on ImageNet; we ask them of a small "
                 "network on CIFAR-10, one seed each, and compare directions, not figures.")
    parts.append(missing.note() or None)
    return show(box("What we found", parts))


def snapshot_figure(curves: dict, title: str = "Accuracy of the snapshots", chance: float = 0.1):
    """{label: {epoch: Run}} -> two panels (kNN-20, linear probe) of accuracy against the epoch
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


def closing_box(rec: Recipe, pix, sup, tests, found: dict, run=None):
    """The closing page: the book's findings in a few plain sentences, from the files and tests."""
    parts = []
    if rec.pairs:
        parts.append("**NAT learns features at this scale.** " + recipe_sentence(rec, pix))
    if tests:
        judged = {}
        for t in tests:
            if t["a"] == "NAT":
                judged.setdefault(t["b"], []).append(
                    f"{t['judge']} {100 * t['diff']:+.1f} points, " + ("p < 0.001" if t["p"] < 0.001 else
                                                                        f"p = {t['p']:.2g}"))
        parts.append("**How sure.** On the same validation images, image by image (McNemar's test), NAT against "
                     + "; ".join(f"{b}: {', '.join(j)}" for b, j in judged.items()) + ". " + seeds_sentence(rec))
    if sup is not None and rec.pairs:
        parts.append(f"**Far from labels.** The same network trained with labels reaches {pct(sup.knn)} (kNN-20) and "
                     f"{pct(sup.linear)} (linear probe).")
    r = found.get("reassignment", {})
    every, third, never = (r.get(k, (None, {}))[0] for k in ("every epoch", "every third epoch", "never"))
    if every and third and never:
        parts.append(f"**The schedule is the method.** Re-solving the assignment in every epoch ends at "
                     f"{pct(every.run.knn)} kNN-20, below fixed random targets ({pct(never.run.knn)}) and far below "
                     f"the paper's every-third-epoch schedule ({pct(third.run.knn)}). An earlier recipe of this book "
                     f"re-solved in every epoch; this is why it was replaced.")
    waiting = [f"{key}: {label}" for key, rows in found.items() for label, (pair, _) in rows.items() if pair is None]
    parts.append("**Not reproduced, or not yet.** The paper's ImageNet and PASCAL VOC experiments (out of reach of "
                 "this project's CPU). " + (f"Ablation runs not made yet: {'; '.join(waiting)}." if waiting else
                                            "Every ablation of chapter 11 is made."))
    parts.append(f"**Beside the paper.** In RotNet's table NAT's conv5 features close {published_gap_share()} of the "
                 f"gap between a random and a supervised AlexNet on ImageNet; here the recipe's linear probe closes "
                 + (f"{(rec.mean('linear') - rec.mean('linear0')) / (100 * sup.linear - rec.mean('linear0')):.0%}"
                    if sup is not None and rec.pairs else "–")
                 + " of that gap for the small network on CIFAR-10. DIM reports NAT at 48.62% (linear SVM) and "
                   "56.19% (MLP) on CIFAR-10's test split; our linear probe reads "
                 + (rec.text('linear', unit='%') if rec.pairs else "–") + " on the validation split.")
    return show(box("What we found", parts))
