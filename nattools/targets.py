"""Noise targets: fixed points on the unit sphere that the network learns to predict.

Every target is a pure function of (seed, target id): a counter-based generator
(SplitMix64 in counter mode) turns the pair into Gaussian numbers, and a
Gaussian vector divided by its norm is uniform on the sphere. So a store of
1.28M x 4096 targets costs no memory at all (a dense table would be 21 GB),
rows are bit-for-bit reproducible on every rank and device, and
`sample_sphere(n, d, seed)` is just the first n rows of `TargetStore(n, d, seed)`.
"""
import math

import torch

_MASK32 = 0xFFFFFFFF
_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment (golden ratio)


def _i64(x: int) -> int:
    """An unsigned 64-bit constant as the signed int64 torch stores."""
    return x - (1 << 64) if x >= (1 << 63) else x


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's >> is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def splitmix64(counter: torch.Tensor, seed: int) -> torch.Tensor:
    """SplitMix64 output for each counter: 64 random bits, as int64 (wrapping arithmetic)."""
    z = counter * _i64(_GAMMA) + _i64((seed * _GAMMA + _GAMMA) % (1 << 64))
    z = (z ^ _shr(z, 30)) * _i64(0xBF58476D1CE4E5B9)
    z = (z ^ _shr(z, 27)) * _i64(0x94D049BB133111EB)
    return z ^ _shr(z, 31)


class TargetStore:
    """k targets in R^d, uniform on S^{d-1}, generated on demand: store[ids] -> (len(ids), d) float32.

    Memory per target: zero. Row i is the same on every call, device and process.
    """

    def __init__(self, n: int, d: int, seed: int = 0):
        if n < 1:
            raise ValueError(f"TargetStore needs n >= 1 targets, got n={n}")
        if d < 2:
            raise ValueError(f"targets need dimension d >= 2 to lie on a sphere, got d={d}")
        self.n, self.d, self.seed = int(n), int(d), int(seed)
        self.pairs = (self.d + 1) // 2  # one 64-bit draw gives two Gaussians (Box-Muller)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, ids) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.n):
            raise IndexError(f"target ids must lie in [0, {self.n}), got range "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        shape = ids.shape
        ids = ids.reshape(-1)
        col = torch.arange(self.pairs, device=ids.device)
        z = splitmix64(ids[:, None] * self.pairs + col[None, :], self.seed)   # (B, d/2)
        u1 = (_shr(z, 32).double() + 0.5) * 2.0 ** -32                        # (0, 1)
        u2 = ((z & _MASK32).double() + 0.5) * 2.0 ** -32
        r = torch.sqrt(-2.0 * torch.log(u1))
        g = torch.stack([r * torch.cos(2 * math.pi * u2), r * torch.sin(2 * math.pi * u2)], -1)
        g = g.reshape(len(ids), -1)[:, : self.d]                              # (B, d) standard normal
        rows = (g / g.norm(dim=1, keepdim=True)).float()
        return rows.reshape(*shape, self.d)

    def all(self) -> torch.Tensor:
        """Every target as one dense (n, d) tensor: only for small stores."""
        return self[torch.arange(self.n)]


def sample_sphere(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) float32 rows drawn uniformly on the unit sphere S^{d-1}."""
    return TargetStore(n, d, seed).all()


def discrete_targets(n: int, k: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) targets that take only k distinct values ("cluster codes"), each used
    by n/k samples (balanced, like the paper's discrete variant).

    With d >= k the codes are one-hot vectors (the paper's choice); with d < k
    they are k points drawn uniformly on the sphere.
    """
    if not 1 <= k <= n:
        raise ValueError(f"discrete targets need 1 <= k <= n codes, got k={k}, n={n}")
    if d >= k:
        codes = torch.eye(d)[:k]
    else:
        codes = sample_sphere(k, d, seed)
    return codes[torch.arange(n) % k]
