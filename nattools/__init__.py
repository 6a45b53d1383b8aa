"""nattools: Noise As Targets (Bojanowski & Joulin, ICML 2017) in a few small modules."""
__version__ = "0.1.0"

from . import assign, data, evaluate, models, targets  # noqa: E402
from .models import build_model  # noqa: E402
from .train import TrainConfig, load_checkpoint, train  # noqa: E402

__all__ = ["TrainConfig", "build_model", "load_checkpoint", "train",
           "assign", "data", "evaluate", "models", "targets"]
