"""What NAT's features are for: fine-tuning with few labels, and frozen probes on images the network never
saw. The paper's test of a feature is transfer ("pretrain the CNN with this algorithm; fix the CNN, and
fine-tune on image classification and detection tasks"); this module is that test at CPU scale.

The fine-tuning protocol, one for every starting point (a NAT checkpoint, the same network at random
init, a supervised network), set by FinetuneConfig's defaults:
- labelled images: `labels_per_class` images of every class of the target's training split, drawn with
  `seed` (data.labelled_subset); scored on the target's whole validation split, centre crops;
- the network: the start's front end and conv trunk with its head replaced by one linear layer on the
  conv map average-pooled to 2 x 2 and standardised (the features the frozen linear probe reads, as it reads
  them: a trained trunk's features are far smaller than a random one's);
- every layer trains: SGD with momentum 0.9 and weight decay 5e-4, lr 0.01 decayed to 0 on a cosine, batch
  128; 30 epochs of the labelled images, but at least 300 and at most 3,000 steps (10 labels per class
  still take 300 steps; all 45,000 CIFAR-10 images take 3,000 steps, 8.5 epochs); the recipe's random
  crops (at least 20% of the area) and flips.
"""
import dataclasses
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as D
from .checkpoint import load_checkpoint
from .config import DATASETS, ConfigError
from .evaluate import extract, initial_model, knn_accuracy, linear_probe, random_init


@dataclasses.dataclass
class FinetuneConfig:
    """The fine-tuning protocol (module docstring); every field is a command-line option of `finetune`."""
    dataset: str = "cifar10"      # the target data set (its training split gives the labels, its val split scores)
    data_root: str = ""           # where it is (default: $NATTOOLS_DATA or ~/.cache/nattools)
    labels_per_class: int = 50    # labelled training images per class (0 = every one)
    seed: int = 0                 # the draw of the labelled images, the crops and the head's init
    lr: float = 0.01
    trunk_lr: float = 1.0         # the conv trunk's learning rate, as a multiple of lr (the new head takes lr)
    epochs: int = 30
    min_steps: int = 300
    max_steps: int = 3000
    batch_size: int = 128
    weight_decay: float = 5e-4
    crop_min: float = 0.2
    val_fraction: float = 0.1     # the carved validation split, where the data set has no official one
    image_size: int = 0           # crops the network sees (0 = the checkpoint's; another size is refused)

    def validate(self) -> "FinetuneConfig":
        if self.dataset not in DATASETS or self.dataset == "imagefolder" and not self.data_root:
            raise ConfigError(f"dataset={self.dataset!r}: choose one of {', '.join(DATASETS)} (imagefolder needs "
                              f"--data_root)")
        for name in ("labels_per_class", "epochs", "min_steps", "max_steps", "batch_size"):
            if getattr(self, name) < (0 if name == "labels_per_class" else 1):
                raise ConfigError(f"{name}={getattr(self, name)}: must be >= {0 if name == 'labels_per_class' else 1}")
        if not (0 < self.lr <= 10 and 0 <= self.trunk_lr <= 10 and 0 <= self.weight_decay <= 1 and 0 < self.crop_min <= 1):
            raise ConfigError(f"lr={self.lr}, trunk_lr={self.trunk_lr}, weight_decay={self.weight_decay}, crop_min="
                              f"{self.crop_min}: must lie in (0, 10], [0, 10], [0, 1] and (0, 1]")
        return self


class Classifier(nn.Module):
    """A network's front end and conv trunk, then one linear layer on the 2 x 2-pooled conv map, standardised
    first: a trained trunk's features can be far smaller than a random one's (weight decay shrinks its
    BatchNorm scales), and a head on the raw values would learn at another speed for every start."""

    def __init__(self, net, classes: int, size: int = 32):
        super().__init__()
        self.front, self.trunk = net.front, net.trunk
        with torch.no_grad():
            channels = self.trunk(self.front(torch.zeros(2, 3, size, size))).shape[1]
        self.standardise = nn.BatchNorm1d(4 * channels, affine=False)   # as the linear probe standardises
        self.linear = nn.Linear(4 * channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (B, 3, S, S) in [0, 1] -> (B, classes)
        return self.linear(self.standardise(F.adaptive_avg_pool2d(self.trunk(self.front(x)), 2).flatten(1)))


def start(checkpoint, random: bool = False):
    """-> (network, its TrainConfig): a checkpoint's weights, or (random=True) the exact weights its run
    started from (the random-init twin: its BatchNorm statistics are re-estimated before any probe)."""
    model, cfg = load_checkpoint(checkpoint)
    return (initial_model(cfg) if random else model), cfg


def target_splits(fcfg: FinetuneConfig, image_size: int, progress: bool = False):
    """The target's labelled training images and its validation split, as uint8 tensors in memory."""
    root = fcfg.data_root or None
    train = D.labelled_subset(D.load(fcfg.dataset, "train", root, fcfg.val_fraction), fcfg.labels_per_class,
                              fcfg.seed)
    val = D.load(fcfg.dataset, "val", root, fcfg.val_fraction)
    if len(val) == 0:
        raise ConfigError(f"{fcfg.dataset} has no validation split with val_fraction={fcfg.val_fraction}")
    return tuple(D.training_set(s, image_size, progress=progress) for s in (train, val)), len(train.classes)


def check_size(cfg, fcfg: FinetuneConfig) -> int:
    """The size the start's network was trained at (another one is refused: its filters would see other
    scales); and on the start's own data set, the same held-out split it was carved with, never its own
    training images."""
    fixed = bool(D.held_out(fcfg.dataset, fcfg.data_root or None, 0))  # an official split, not a carved one
    if fcfg.dataset == cfg.dataset and not fixed and (cfg.val_fraction == 0 or cfg.val_fraction != fcfg.val_fraction):
        raise ConfigError(f"the checkpoint trained on {cfg.dataset} with val_fraction {cfg.val_fraction}: scoring it "
                          f"with val_fraction {fcfg.val_fraction} would use images it trained on" +
                          (" (with torchvision's CIFAR-10, --data_root FOLDER, it is scored on the official test split)"
                           if cfg.val_fraction == 0 else f"; use --val_fraction {cfg.val_fraction}"))
    if fcfg.image_size not in (0, cfg.image_size):
        raise ConfigError(f"the checkpoint's network was trained on {cfg.image_size} px crops, not {fcfg.image_size} px; "
                          f"fine-tune it at {cfg.image_size} px (the target's images are resized to it)")
    return cfg.image_size


def centre(x: torch.Tensor, size: int) -> torch.Tensor:
    """Stored uint8 images (B, 3, L, L) -> their centre size x size crops as floats in [0, 1]."""
    o = (x.shape[-1] - size) // 2
    return x[..., o:o + size, o:o + size].float().div(255)


def finetune(net, cfg, fcfg: FinetuneConfig, device: str = "cpu", progress: bool = False) -> dict:
    """Fine-tune every layer of `net` (trained with TrainConfig cfg, or its random init) on the labelled
    images of fcfg.dataset -> accuracy on its validation split, with what was trained."""
    fcfg.validate()
    t0, size = time.time(), check_size(cfg, fcfg)
    (train, val), classes = target_splits(fcfg, size, progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fcfg.seed)
        model = Classifier(net, classes, size).to(device, memory_format=torch.channels_last).train()
    groups = [{"params": list(model.linear.parameters()), "scale": 1.0},
              {"params": list(model.front.parameters()) + list(model.trunk.parameters()), "scale": fcfg.trunk_lr}]
    opt = torch.optim.SGD(groups, lr=fcfg.lr, momentum=0.9, weight_decay=fcfg.weight_decay)
    batch = min(fcfg.batch_size, len(train))
    steps = min(fcfg.max_steps, max(fcfg.min_steps, math.ceil(fcfg.epochs * len(train) / batch)))
    g = torch.Generator().manual_seed(fcfg.seed)
    order = torch.cat([torch.randperm(len(train), generator=g) for _ in range(math.ceil(steps * batch / len(train)))])
    for step, idx in enumerate(order[: steps * batch].view(steps, batch)):
        for group in opt.param_groups:
            group["lr"] = group["scale"] * fcfg.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        x = D.augment(train.images[idx].to(device), size, fcfg.crop_min, g).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), train.labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(centre(x.to(device), size)).argmax(1).cpu() for x in val.images.split(512)])
    return {"accuracy": float((pred == val.labels).float().mean()), "final_loss": loss.item(), "steps": steps,
            "batch": batch, "n_labelled": len(train), "n_val": len(val), "classes": classes,
            "seconds": time.time() - t0, "protocol": dataclasses.asdict(fcfg)}


def frozen(net, cfg, fcfg: FinetuneConfig, random: bool = False, device: str = "cpu", probe_epochs: int = 30) -> dict:
    """The frozen protocol on the target: kNN-20 on `embed` and the linear probe on the 2 x 2-pooled conv
    features, both learning from the same labelled images as fine-tuning does. random=True: `net` is a
    random init, its BatchNorm statistics re-estimated on the target's labelled images."""
    fcfg.validate()
    size = check_size(cfg, fcfg)
    (train, val), _ = target_splits(fcfg, size)
    sets = [torch.utils.data.TensorDataset(centre(s.images, size), s.labels, torch.arange(len(s))) for s in (train, val)]
    if random:
        net = random_init(cfg, sets[0], device=device)
    (ztr, ftr, ytr), (zva, fva, yva) = (extract(net, s, device=device) for s in sets)
    return {"knn20_embed": knn_accuracy(ztr, ytr, zva, yva, k=min(20, len(ztr))),
            "linear_features_2x2": linear_probe(ftr, ytr, fva, yva, epochs=probe_epochs, seed=fcfg.seed),
            "n_labelled": len(train), "n_val": len(val), "protocol": dataclasses.asdict(fcfg)}
