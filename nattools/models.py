"""Networks: a fixed Sobel front end, AlexNet with batch norm (the paper), and a small net of the same
spirit for 32-96 px images that trains on a laptop CPU. Every model maps ToTensor() images (B,3,H,W in
[0,1]) to unit vectors, `embed(x)` -> (B,d), and exposes `features(x)` -> the last conv block's map.
The layer before the L2 normalisation is linear: a ReLU there would make every output non-negative, so
the outputs could never reach targets spread over the whole sphere."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import INPUTS, MODELS


class FrontEnd(nn.Module):
    """Fixed preprocessing: normalise, then grey-scale + Sobel (2 channels), grey only (1) or RGB (3). Sobel
    pads by replicating the border, so the image frame itself is not an edge. No parameters: buffers only,
    so it stays out of the optimiser and travels inside every checkpoint."""

    def __init__(self, input: str = "sobel"):
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"unknown input {input!r}; choose one of {INPUTS}")
        self.input = input
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        gx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        self.register_buffer("sobel", torch.stack([gx, gx.T]).unsqueeze(1))  # (2,1,3,3): d/dx, d/dy

    @property
    def out_channels(self) -> int:
        return {"sobel": 2, "grey": 1, "rgb": 3}[self.input]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B,3,H,W) in [0,1]
        if not x.is_floating_point():
            raise TypeError(f"the network takes float images in [0, 1] (ToTensor()), got {x.dtype}: divide by 255")
        x = (x - self.mean) / self.std
        if self.input == "rgb":
            return x
        grey = x.mean(dim=1, keepdim=True)                     # (B,1,H,W)
        if self.input == "grey":
            return grey
        return F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), self.sobel)  # (B,2,H,W)


def _conv(cin, cout, k, stride=1, pad=0):
    return [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class NATNet(nn.Module):
    """front end -> conv trunk (`features`) -> MLP head -> linear -> L2 norm (`embed`)."""

    def __init__(self, front: FrontEnd, trunk: nn.Sequential, head: nn.Sequential, d: int):
        super().__init__()
        self.front, self.trunk, self.head, self.d = front, trunk, head, d

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B,C,h,w): the last conv block, as torchvision's AlexNet.features."""
        return self.trunk(self.front(x))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B,d) before normalisation (for studying collapse)."""
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B,d) rows of unit L2 norm."""
        return F.normalize(self.project(x), dim=1)

    def forward(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.embed(x) if normalize else self.project(x)


def small_net(d: int = 128, input: str = "sobel", width: int = 64, hidden: int = 512) -> NATNet:
    """AlexNet in miniature for 32-96 px: five 3x3/5x5 conv layers with BN, pools after conv1, conv2, conv5,
    then fc-BN-ReLU (hidden units; none if hidden=0) and a linear layer to d."""
    front = FrontEnd(input)
    w = [width, 2 * width, 3 * width, 3 * width, 2 * width]
    trunk = nn.Sequential(
        *_conv(front.out_channels, w[0], 5, pad=2), nn.MaxPool2d(2),
        *_conv(w[0], w[1], 5, pad=2), nn.MaxPool2d(2),
        *_conv(w[1], w[2], 3, pad=1),
        *_conv(w[2], w[3], 3, pad=1),
        *_conv(w[3], w[4], 3, pad=1), nn.MaxPool2d(2),
    )
    mlp = [nn.Linear(4 * w[4], hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)] if hidden else []
    head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), *mlp,
                         nn.Linear(hidden or 4 * w[4], d))  # linear: no ReLU before the normalisation
    return NATNet(front, trunk, head, d)


def alexnet(d: int = 4096, input: str = "sobel") -> NATNet:
    """AlexNet with batch norm as in the paper's code, for 224 px crops: conv 96-256-384-384-256, pools
    after conv1, conv2, conv5 (-> 256x6x6), fc 4096-4096 with BN and dropout, then a linear layer to d."""
    front = FrontEnd(input)
    trunk = nn.Sequential(
        *_conv(front.out_channels, 96, 11, stride=4, pad=2), nn.MaxPool2d(3, 2),
        *_conv(96, 256, 5, pad=2), nn.MaxPool2d(3, 2),
        *_conv(256, 384, 3, pad=1),
        *_conv(384, 384, 3, pad=1),
        *_conv(384, 256, 3, pad=1), nn.MaxPool2d(3, 2),
    )
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(6), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(256 * 36, 4096, bias=False), nn.BatchNorm1d(4096), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(4096, 4096, bias=False), nn.BatchNorm1d(4096), nn.ReLU(inplace=True),
        nn.Linear(4096, d),
    )
    return NATNet(front, trunk, head, d)


def build_model(cfg) -> NATNet:
    """The network a TrainConfig names (cfg.model, cfg.d, cfg.input, cfg.width); DeepCluster and SeLa add
    `classifier`, a linear layer from the projection to heads x clusters pseudo-classes."""
    if cfg.model not in MODELS:
        raise ValueError(f"unknown model {cfg.model!r}; choose one of {MODELS}")
    model = small_net(cfg.d, cfg.input, cfg.width, cfg.hidden) if cfg.model == "small" else alexnet(cfg.d, cfg.input)
    if getattr(cfg, "objective", "nat") in ("deepcluster", "sela"):  # NAT's successors: a classifier on top
        model.classifier = nn.Linear(cfg.d, cfg.heads * cfg.clusters)
    return model
