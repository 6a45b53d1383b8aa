"""TrainConfig and the named presets. Each setting says once what it is (`help`), what it may be
(`choices`, or a `check` and its `rule`) and its role: "network" builds the model (a checkpoint is
rebuilt from these), "recipe" changes what is trained, "run" (names, folders, devices, checkpoints)
may change on resume. The command line, the validation and the resume check all read them."""
import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

DATASETS = ("cifar10", "digits", "imagefolder", "stl10", "tinyimagenet")
MODELS = ("small", "alexnet")
INPUTS = ("sobel", "grey", "rgb")
OBJECTIVES = ("nat", "square", "softmax", "deepcluster", "sela")
SUCCESSORS = ("deepcluster", "sela")  # learned targets: pseudo-labels for a classifier on the embedding
TARGETS = ("sphere", "discrete")
SCHEDULES = ("cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")  # file names stay under 255 bytes


class UsageError(Exception):
    """Something the user can fix (a setting, a path, a file): the command line prints it as one line.
    Raised in a data-loader worker, it comes back with the worker's traceback: its own last line is kept."""

    def __init__(self, message: str = ""):
        if message.startswith("Caught ") and "\nOriginal Traceback" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


class ConfigError(UsageError, ValueError):
    """A setting that cannot work, named with its allowed values."""


def _opt(default, role: str, help: str, choices=None, check=None, rule: str = ""):
    return field(default=default, metadata={"role": role, "help": help, "choices": choices,
                                            "check": check, "rule": rule})


def _finite(lo, hi, lo_open=False, hi_open=False):
    """A check: finite and between lo and hi (None: unbounded)."""
    def ok(v):
        return (math.isfinite(v) and (lo is None or (v > lo if lo_open else v >= lo))
                and (hi is None or (v < hi if hi_open else v <= hi)))
    return ok


@dataclass
class TrainConfig:
    """Defaults: the scaled-down CIFAR-10 recipe (small net, 32 px, Sobel), tuned on the validation split
    (data/results/recipe/README.md); all 50,000 images train in 59 minutes alone on this 2-core CPU."""
    name: str = _opt("", "run", "run name: files OUT/checkpoints/NAME.pt and OUT/results/NAME.json "
                     "(default: DATASET_nat)", check=lambda v: v == "" or bool(NAME_RULE.fullmatch(v)),
                     rule="letters, digits, '.', '_' and '-', not starting with '.', no '/', at most 200")
    dataset: str = _opt("cifar10", "recipe", "what to train on", choices=DATASETS)
    data_root: str = _opt("", "run", "folder of the data (default: $NATTOOLS_DATA or ~/.cache/nattools); "
                          "imagefolder: <class>/<image> folders, train/ (+ val/), or a flat folder of images")
    download: bool = _opt(False, "run", "let torchvision download the dataset (needs internet)")
    val_fraction: float = _opt(0.1, "recipe", "share of the training images held out for validation (where the "
                               "dataset has no official split)", check=_finite(0, 1, hi_open=True), rule="in [0, 1)")
    limit: int = _opt(0, "recipe", "train on this many images drawn with a fixed seed (0 = all)",
                      check=lambda v: v >= 0, rule=">= 0")
    model: str = _opt("small", "network", "small: 32-96 px net that trains on a CPU; alexnet: the paper's",
                      choices=MODELS)
    width: int = _opt(32, "network", "small net: conv widths w-2w-3w-3w-2w", check=lambda v: 1 <= v <= 1024,
                      rule="in [1, 1024]")
    hidden: int = _opt(512, "network", "small net: units of the head's hidden layer (0 = none)",
                       check=lambda v: 0 <= v <= 65536, rule="in [0, 65536]")
    input: str = _opt("sobel", "network", "what the network sees: grey-scale Sobel gradients, grey, or colour",
                      choices=INPUTS)
    image_size: int = _opt(32, "network", "side of the training crops in pixels",
                           check=lambda v: 8 <= v <= 512, rule="in [8, 512] (alexnet: >= 64)")
    crop_min: float = _opt(0.2, "recipe", "random crops keep at least this share of the image's area",
                           check=_finite(0, 1, lo_open=True), rule="in (0, 1]")
    jitter: float = _opt(0.0, "recipe", "brightness and contrast jitter, as ColorJitter's (0 = off)",
                         check=_finite(0, 1, hi_open=True), rule="in [0, 1)")
    views: int = _opt(1, "recipe", "augmented views of each image per step, all fitted to its one target",
                      check=lambda v: 1 <= v <= 64, rule="in [1, 64]")
    d: int = _opt(128, "network", "dimension of the outputs and targets (points on the sphere S^(d-1))",
                  check=lambda v: 2 <= v <= 65536, rule="in [2, 65536]")
    k: int = _opt(0, "recipe", "number of targets (0 = one per image; otherwise >= the number of images)",
                  check=lambda v: v >= 0, rule=">= 0")
    objective: str = _opt("nat", "recipe", "nat: noise as targets; square, softmax: supervised baselines "
                          "(labels; d = classes); deepcluster, sela: NAT's successors (k-means or Sinkhorn "
                          "pseudo-labels, re-solved every reassign_every-th epoch)", choices=OBJECTIVES)
    clusters: int = _opt(100, "network", "deepcluster, sela: number of clusters K (the classifier's outputs)",
                         check=lambda v: 2 <= v <= 1_000_000, rule="in [2, 1000000]")
    heads: int = _opt(1, "network", "sela: clusterings of the embedding at once (one classifier each)",
                      check=lambda v: 1 <= v <= 64, rule="in [1, 64]")
    sela_lambda: float = _opt(10.0, "recipe", "sela: Sinkhorn-Knopp on the probabilities to this power (large: "
                              "nearer the hard assignment)", check=_finite(0, 1000, lo_open=True), rule="in (0, 1000]")
    targets: str = _opt("sphere", "recipe", "sphere: continuous targets; discrete: k_codes cluster codes",
                        choices=TARGETS)
    k_codes: int = _opt(10, "recipe", "number of codes of discrete targets", check=lambda v: v >= 1, rule=">= 1")
    epochs: int = _opt(36, "recipe", "passes over the training images", check=lambda v: 1 <= v <= 100000,
                       rule="in [1, 100000]")
    batch_size: int = _opt(256, "recipe", "images per step and per process (one assignment problem)",
                           check=lambda v: 2 <= v <= 65536, rule="in [2, 65536]")
    lr: float = _opt(0.05, "recipe", "SGD learning rate", check=_finite(0, 10, lo_open=True), rule="in (0, 10]")
    momentum: float = _opt(0.9, "recipe", "SGD momentum", check=_finite(0, 1, hi_open=True), rule="in [0, 1)")
    ema: float = _opt(0.0, "recipe", "keep a moving average of the weights with this decay per step (0 = off); "
                      "the average is then the run's result", check=_finite(0, 1, hi_open=True), rule="in [0, 1)")
    weight_decay: float = _opt(2e-3, "recipe", "SGD weight decay", check=_finite(0, 1), rule="in [0, 1]")
    schedule: str = _opt("cosine", "recipe", "learning rate over the run: cosine decay to 0, or constant",
                         choices=SCHEDULES)
    reassign_every: int = _opt(3, "recipe", "re-solve the assignment on every batch of every N-th epoch "
                               "(0 = never); the paper's 3: in between, the network fits fixed targets",
                               check=lambda v: v >= 0, rule=">= 0")
    seed: int = _opt(0, "recipe", "seed of every random choice (weights, targets, crops, order)",
                     check=lambda v: 0 <= v < 2 ** 63, rule="in [0, 2^63)")
    workers: int = _opt(2, "run", "data-loading processes", check=lambda v: 0 <= v <= 256, rule="in [0, 256]")
    device: str = _opt("auto", "run", "auto: the GPU if there is one", choices=DEVICES)
    precision: str = _opt("auto", "run", "auto: bf16 autocast where the device computes bf16 natively (a CUDA GPU "
                          "with bf16, a CPU with AVX512-BF16 or AMX), else fp32; the run records what it used and "
                          "a resume must use the same (--bf16: alias of --precision bf16)", choices=PRECISIONS)
    solver: str = _opt("scipy", "run", "the assignment's exact solver: scipy (the reference) or lap (LAPJV, "
                       "2-3x faster; pip install lap); both find the optimum", choices=("scipy", "lap"))
    out: str = _opt("runs", "run", "folder for checkpoints/ and results/ (the project's own results go to "
                    "data/ only when asked: --out data)", check=lambda v: v.strip() != "", rule="a folder, not ''")
    ckpt_every: int = _opt(0, "run", "also checkpoint every N steps (0 = at the end of each epoch only)",
                           check=lambda v: v >= 0, rule=">= 0")
    snapshot_every: int = _opt(0, "run", "also keep the weights of every N-th epoch: NAME_epochE.pt (0 = never)",
                               check=lambda v: v >= 0, rule=">= 0")
    max_steps: int = _opt(0, "run", "stop after N steps in all (0 = run every epoch)", check=lambda v: v >= 0,
                          rule=">= 0")
    resume: bool = _opt(True, "run", "continue OUT/checkpoints/NAME.pt if it exists (same recipe)")
    overwrite: bool = _opt(False, "run", "with --no-resume: replace an existing checkpoint of the same name")
    eval_knn: bool = _opt(True, "run", "kNN-20 on the validation split at the end")

    def __post_init__(self):
        if not self.name:
            self.name = f"{self.dataset}_nat"

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.out).expanduser() / "checkpoints" / f"{self.name}.pt"

    @property
    def results_path(self) -> Path:
        return Path(self.out).expanduser() / "results" / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        return Path(self.out).expanduser() / "results" / f"{self.name}.jsonl"

    def validate(self, n: int = None) -> "TrainConfig":
        """Raise ConfigError naming the bad value and what is allowed; n = training-set size if known."""
        for f in dataclasses.fields(self):
            v, meta = getattr(self, f.name), f.metadata
            if f.type in (bool, "bool"):
                if not isinstance(v, bool):
                    raise ConfigError(f"{f.name}={v!r}: expected true or false")
            elif isinstance(v, bool) or not isinstance(v, type(f.default)) and not (
                    isinstance(f.default, float) and isinstance(v, int)):
                raise ConfigError(f"{f.name}={v!r}: expected {type(f.default).__name__}")
            if meta["choices"] and v not in meta["choices"]:
                raise ConfigError(f"{f.name}={v!r}: choose one of {', '.join(meta['choices'])}")
            if meta["check"] and not meta["check"](v):
                raise ConfigError(f"{f.name}={v!r}: must be {meta['rule']}")
        if self.model == "alexnet" and self.image_size < 64:
            raise ConfigError(f"image_size={self.image_size}: alexnet needs crops of at least 64 px (224 in the paper)")
        if self.objective in ("square", "softmax") and self.views > 1:
            raise ConfigError(f"views={self.views}: the supervised baselines take one view per image")
        if self.heads > 1 and self.objective != "sela":
            raise ConfigError(f"heads={self.heads}: several clusterings at once are SeLa's (--objective sela)")
        if n is not None:
            if self.batch_size > n:
                raise ConfigError(f"batch_size={self.batch_size} > n={n} training images; lower --batch_size")
            if self.k and self.k < n:
                raise ConfigError(f"k={self.k} < n={n}: NAT needs one target per image; set --k 0 (k = n) or larger")
            if self.objective in SUCCESSORS and self.clusters > n:
                raise ConfigError(f"clusters={self.clusters} > n={n} training images: K must be at most n")
            if self.targets == "discrete" and self.k_codes > n:
                raise ConfigError(f"k_codes={self.k_codes} must be at most n={n}")
        return self


def fields_with_role(*roles: str) -> tuple:
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["role"] in roles)


DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def on_this_machine(cfg: TrainConfig, **changes) -> TrainConfig:
    """cfg's name, network and recipe with today's run settings (device auto, default workers and
    folders, data from $NATTOOLS_DATA), then `changes`. A checkpoint's run settings belong to the machine
    it ran on (device 'cuda', its data_root, its out): never train or score with them here."""
    kept = {f: getattr(cfg, f) for f in fields_with_role("network", "recipe")}
    return TrainConfig(**{**kept, "name": cfg.name, **changes})


def from_dict(values: dict) -> TrainConfig:
    """A TrainConfig from a saved dict: unknown keys are dropped, missing ones take today's defaults
    (a config saved before `precision` existed says bf16 true or false)."""
    values = {"precision": "bf16" if values.get("bf16") else "fp32", **values}
    return TrainConfig(**{k: v for k, v in values.items() if k in DEFAULTS})


# Named recipes; command-line options override them. imagenet: the paper's setting (Bojanowski & Joulin,
# ICML 2017, arXiv:1704.05310, and its code); ours, not the paper's: epochs, lr 0.05 with a cosine
# schedule, crop scale, bf16 (precision auto on a GPU). batch_size is per process: on 8 GPUs --batch_size 32 keeps the paper's 256
# images per step, but each assignment problem then has only 32 images (chapter 3: smaller problems move
# the targets less well). stl10 is not in the paper: the small net at 96 px on the 100,000 unlabeled images.
PRESETS = {
    "cifar10": {},
    "digits": {"dataset": "digits", "epochs": 6, "batch_size": 128, "workers": 0, "crop_min": 0.5},
    "stl10": {"dataset": "stl10", "image_size": 96, "width": 64, "crop_min": 0.3, "epochs": 100,
              "weight_decay": 5e-4, "workers": 8},
    "deepcluster": {"objective": "deepcluster", "name": "cifar10_deepcluster", "reassign_every": 1, "clusters": 100},
    "sela": {"objective": "sela", "name": "cifar10_sela", "reassign_every": 3, "clusters": 128, "heads": 1},
    "imagenet": {"name": "imagenet_nat", "dataset": "imagefolder", "model": "alexnet", "image_size": 224,
                 "d": 4096, "crop_min": 0.08, "epochs": 100, "batch_size": 256, "lr": 0.05, "momentum": 0.9,
                 "weight_decay": 5e-4, "reassign_every": 3, "workers": 8, "val_fraction": 0.0,
                 "ckpt_every": 1000},
}
