"""Chapter 10: what each layer knows. A linear probe per conv block, each block pooled to a
similar number of values, so that early, narrow layers are not judged on a few numbers."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..evaluate import frozen, linear_probe


def conv_blocks(model, x: torch.Tensor) -> list:
    """(B,3,H,W) -> the output of every conv block of model.trunk (after its ReLU),
    [(B,C1,h1,w1), ..., (B,C5,h5,w5)]: what a probe per layer reads."""
    outs, h = [], model.front(x)
    for layer in model.trunk:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            outs.append(h)
    return outs


def extract_layers(model, dataset, dims: int = 2048, batch_size: int = 256, device: str = "cpu",
                   progress: bool = False):
    """Frozen features of every conv block, each average-pooled to a p x p grid with
    C*p*p close to `dims` (so early, narrow layers are not judged on a few numbers;
    the usual per-layer protocol resizes each layer to a similar size)
    -> ([(N, C_l*p_l*p_l) per block], labels (N,), [p_l per block])."""
    grids = []

    def read(m, x):
        blocks = conv_blocks(m, x)
        grids[:] = grids or [max(1, min(b.shape[-1], round((dims / b.shape[1]) ** 0.5))) for b in blocks]
        return [F.adaptive_avg_pool2d(b, p).flatten(1) for b, p in zip(blocks, grids)]
    feats, labels = frozen(model, dataset, read, batch_size=batch_size, device=device, progress=progress)
    return feats, labels, grids


def probe_layers(model, train, val, dims: int = 2048, epochs: int = 30, device: str = "cpu") -> list:
    """Linear-probe accuracy on the validation set for every conv block (see extract_layers)."""
    ftr, ytr, grids = extract_layers(model, train, dims, device=device)
    fva, yva, _ = extract_layers(model, val, dims, device=device)
    return [{"layer": i + 1, "grid": p, "dims": a.shape[1], "linear": linear_probe(a, ytr, b, yva, epochs=epochs)}
            for i, (a, b, p) in enumerate(zip(ftr, fva, grids))]
