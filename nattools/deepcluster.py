"""DeepCluster (Caron et al., ECCV 2018) beside NAT: the targets are learned too. In every re-solving
epoch, k-means on the embeddings of every training image gives K clusters; their ids are pseudo-labels
for a linear classifier on the embedding, re-initialised at each clustering, trained with cross-entropy.
One change from the paper: the classifier restarts as the nearest-centroid rule (its rows the unit
centroids / 0.1, as DeepCluster-v2's prototypes) rather than at random, since a random restart cannot be
fitted again in the last epochs of a cosine schedule, where the learning rate is near 0.
Collapse is held off by re-seeding empty clusters (a split of a non-empty one) and by sampling images
uniformly over clusters, so that a huge cluster cannot win by size. Everything runs with torch on the
run's device, and every random choice is a function of (seed, epoch)."""
import torch
import torch.nn.functional as F

from .data import seed_of


def kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0, init: torch.Tensor = None) -> tuple:
    """x (n, d) -> (centroids (k, d), labels (n,)) by Lloyd's iterations from k of its points (or init). A cluster
    left empty is re-seeded as DeepCluster does: a random non-empty cluster's centroid, nudged by a small
    perturbation (the original moves the other way), so that the next assignment splits its points."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means needs 1 <= K <= n points, got K={k}, n={len(x)}")
    g = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(len(x), generator=g)[:k].to(x.device)].clone() if init is None else init.clone()
    for _ in range(iters + 1):
        labels = torch.cdist(x, centroids).argmin(1)                                      # (n,)
        counts = torch.bincount(labels, minlength=k)
        for j in torch.nonzero(counts == 0).flatten().tolist():
            donors = torch.nonzero(counts > 1).flatten()
            i = int(donors[torch.randint(len(donors), (1,), generator=g)])
            eps = 1e-4 * torch.randn(x.shape[1], generator=g).to(x.device)
            centroids[j], centroids[i] = centroids[i] + eps, centroids[i] - eps
            mine = torch.nonzero(labels == i).flatten()                                   # split cluster i
            near_j = (x[mine] - centroids[j]).norm(dim=1) < (x[mine] - centroids[i]).norm(dim=1)
            labels[mine[near_j]] = j
            counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        centroids = sums / counts.clamp(min=1).unsqueeze(1).to(x.dtype)
    return centroids, labels


def uniform_over_clusters(labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """An epoch's order of n image ids in which every non-empty cluster has about n / (non-empty clusters)
    draws (with replacement where it is smaller), shuffled: DeepCluster's UnifLabelSampler."""
    n, g = len(labels), torch.Generator().manual_seed(seed)
    members = [torch.nonzero(labels == j).flatten() for j in range(k)]
    members = [m for m in members if len(m)]
    per = n // len(members) + 1
    picks = [m[torch.randint(len(m), (per,), generator=g)] if len(m) < per else m[torch.randperm(len(m), generator=g)[:per]]
             for m in members]
    order = torch.cat(picks)
    return order[torch.randperm(len(order), generator=g)[:n]]


class DeepCluster:
    """The pseudo-labels (n,) and the per-epoch order; the classifier lives on the model (model.classifier)."""

    def __init__(self, n: int, k: int, seed: int = 0):
        self.k, self.seed, self.centroids = k, seed, None
        self.labels = torch.randint(k, (n,), generator=torch.Generator().manual_seed(seed))  # until clustered

    def solve(self, z: torch.Tensor, logits: torch.Tensor, epoch: int) -> torch.LongTensor:
        """z (n, d): every training image's embedding (logits: unused) -> new labels (n,)."""
        self.centroids, labels = kmeans(z, self.k, seed=seed_of(self.seed, epoch, "kmeans"))
        return labels.cpu()

    def after_solve(self, classifier: torch.nn.Module, opt: torch.optim.Optimizer, epoch: int) -> None:
        """A fresh classifier for the new clusters (their ids mean nothing across clusterings), momentum too."""
        with torch.no_grad():
            classifier.weight.copy_(F.normalize(self.centroids, dim=1) / 0.1)
            classifier.bias.zero_()
        for p in classifier.parameters():
            opt.state.pop(p, None)

    def order(self, epoch: int) -> torch.Tensor:
        return uniform_over_clusters(self.labels, self.k, seed_of(self.seed, epoch, "order"))

    def loss(self, classifier, z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """z (v, b, d) projections -> cross-entropy of the classifier on their directions (what k-means
        clustered) against each image's cluster, every view."""
        logits = classifier(F.normalize(z, dim=-1))
        y = self.labels[idx.cpu()].to(logits.device).repeat(logits.shape[0])
        return F.cross_entropy(logits.flatten(0, 1), y)
