"""nattools: Noise As Targets (Bojanowski & Joulin, ICML 2017) in a few small modules."""
__version__ = "0.2.0"

from . import assign, data, evaluate, models, targets  # noqa: E402
from .checkpoint import load_checkpoint  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .models import build_model  # noqa: E402
from .step import nat_step  # noqa: E402
from .train import train  # noqa: E402

__all__ = ["TrainConfig", "build_model", "load_checkpoint", "nat_step", "train",
           "assign", "data", "evaluate", "models", "targets"]
