"""SeLa, self-labelling (Asano, Rupprecht & Vedaldi, ICLR 2020) beside NAT: pseudo-labels for a linear
classifier on the embedding, chosen as an equipartition, every cluster holding n / K images. The labels
maximise the classifier's own log-probabilities under that constraint, an optimal-transport problem
solved approximately by Sinkhorn-Knopp on P ** lambda (lambda = 10 in the public CIFAR code; large
lambda approaches the exact, hard assignment). The equipartition is what holds off collapse, as NAT's
one-to-one table does; unlike NAT's targets, SeLa's classes are learned and can come to mean something.
Several heads (heads > 1) are several clusterings of the same embedding, as in the public code."""
import math

import torch
import torch.nn.functional as F


def sinkhorn(logits: torch.Tensor, lam: float = 10.0, tol: float = 1e-2, max_iters: int = 1000) -> torch.Tensor:
    """logits (n, K) -> log Q (n, K): Q = diag(r) P^lam diag(c), P = softmax(logits), scaled until its rows sum
    to 1/n and its columns to 1/K within `tol` (relative), in the log domain and float64 for stability."""
    if not lam > 0:
        raise ValueError(f"Sinkhorn's lambda must be > 0, got {lam}")
    n, k = logits.shape
    log_q = lam * F.log_softmax(logits.double(), dim=1)
    for _ in range(max_iters):
        log_q -= torch.logsumexp(log_q, dim=1, keepdim=True) + math.log(n)   # rows: 1/n each
        cols = torch.logsumexp(log_q, dim=0, keepdim=True) + math.log(k)      # log(K * column sum)
        if cols.exp().sub(1).abs().max() < tol:
            break
        log_q -= cols                                                         # columns: 1/K each
    return log_q


class SeLa:
    """Pseudo-labels (heads, n); the classifier (heads * K outputs) lives on the model (model.classifier)."""

    def __init__(self, n: int, k: int, heads: int = 1, lam: float = 10.0, seed: int = 0):
        self.k, self.heads, self.lam, self.seed = k, heads, lam, seed
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.stack([torch.randperm(n, generator=g) % k for _ in range(heads)])  # an equipartition

    def solve(self, z: torch.Tensor, logits: torch.Tensor, epoch: int) -> torch.LongTensor:
        """logits (n, heads * K) of every training image -> new labels (heads, n), one equipartition per head."""
        return torch.stack([sinkhorn(h, self.lam).argmax(1).cpu() for h in logits.split(self.k, dim=1)])

    def after_solve(self, classifier, opt, epoch: int) -> None:
        """SeLa keeps training the same classifier: its classes stay where they were."""

    def order(self, epoch: int):
        return None  # every image once, in the trainer's shuffle

    def loss(self, classifier, z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """z (v, b, d) projections -> cross-entropy of the classifier's heads against their labels, averaged over
        heads and views."""
        logits = classifier(z)
        v, b = logits.shape[:2]
        y = self.labels[:, idx.cpu()].to(logits.device)                               # (heads, b)
        logits = logits.view(v, b, self.heads, self.k).permute(2, 0, 1, 3)            # (heads, v, b, K)
        return F.cross_entropy(logits.flatten(0, 2), y.unsqueeze(1).expand(-1, v, -1).flatten())
