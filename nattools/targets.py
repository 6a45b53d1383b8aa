"""Noise targets: fixed points on the unit sphere that the network learns to predict. Every target is a
pure function of (seed, target id): a counter-based generator (SplitMix64 in counter mode) turns the pair
into Gaussian numbers, and a Gaussian vector divided by its norm is uniform on the sphere. So a store of
1.28M x 4096 targets costs no memory at all (a dense table would be 21 GB), rows are bit-for-bit
reproducible on every rank (for a given kind of device), and `sample_sphere(n, d, seed)` is just the
first n rows of `TargetStore(n, d, seed)`."""
import math

import torch

_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment (golden ratio)


def _i64(x: int) -> int:
    """An unsigned 64-bit constant as the signed int64 torch stores."""
    return x - (1 << 64) if x >= (1 << 63) else x


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's >> is arithmetic)."""
    return (x >> s).bitwise_and_((1 << (64 - s)) - 1)


_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # SplitMix64's multipliers
_C1, _C2 = _i64(_M1), _i64(_M2)


def _mix_(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser, in place on int64 bit patterns (multiplication wraps mod 2^64)."""
    z ^= _shr(z, 30)
    z *= _C1
    z ^= _shr(z, 27)
    z *= _C2
    z ^= _shr(z, 31)
    return z


def _mix_int(z: int) -> int:
    """SplitMix64's finaliser on one Python integer (the reference for `_mix_`)."""
    z = ((z ^ (z >> 30)) * _M1) % (1 << 64)
    z = ((z ^ (z >> 27)) * _M2) % (1 << 64)
    return z ^ (z >> 31)


def _start(seed: int) -> int:
    """State before output 0 of the stream of `seed`: SplitMix64's first output from state `seed`,
    so streams of different seeds lie at unrelated places of the 2^64 cycle (not shifted copies)."""
    return _mix_int((seed + _GAMMA) % (1 << 64))


def splitmix64(counter: torch.Tensor, seed: int) -> torch.Tensor:
    """Output number `counter` (0, 1, ...) of the SplitMix64 stream of `seed`: 64 random bits as int64.
    SplitMix64 adds GAMMA to its state and mixes it, so output i is mix(start + (i + 1) * GAMMA mod 2^64):
    any output is computed directly from i."""
    return _mix_(counter * _i64(_GAMMA) + _i64((_start(seed) + _GAMMA) % (1 << 64)))


class TargetStore:
    """k targets in R^d, uniform on S^{d-1}, generated on demand: store[ids] -> (len(ids), d) float32.

    Row i, coordinates 2j and 2j+1 (j < ceil(d/2)), come from the 64 bits
    w = splitmix64(i * ceil(d/2) + j, seed) by Box-Muller in float32 (w[a:b] = bits a..b-1):
    u1 = (w[41:64] + 1/2) / 2^23 in (0, 1), a = 2 pi w[0:24] / 2^24,
    (sqrt(-2 ln u1) cos a, sqrt(-2 ln u1) sin a); the row is then divided by its norm.
    Every step is exact in float32 except ln/cos/sin, so a row is bit-for-bit the same for any batch,
    order or thread count on a given kind of device (CPU and GPU maths libraries may differ in the last
    bit). As u1 >= 2^-24, the radius of a Gaussian pair stops at sqrt(48 ln 2) = 5.77 (a tail of mass
    2^-24 = 6e-8 per pair), far below anything a test or a training run can see. Memory per target: zero."""

    chunk_values = 1 << 16  # Gaussian pairs generated at a time: bounds the temporaries (a few MB)

    def __init__(self, n: int, d: int, seed: int = 0):
        if any(isinstance(v, bool) or int(v) != v for v in (n, d, seed)):
            raise TypeError(f"TargetStore needs integer n, d and seed, got n={n!r}, d={d!r}, seed={seed!r}")
        if n < 1:
            raise ValueError(f"TargetStore needs n >= 1 targets, got n={n}")
        if d < 2:
            raise ValueError(f"targets need dimension d >= 2 to lie on a sphere, got d={d}")
        self.n, self.d, self.seed = int(n), int(d), int(seed)
        self.pairs = (self.d + 1) // 2  # one 64-bit draw gives two Gaussians (Box-Muller)
        self.device = None              # None: rows come out where the ids are

    def to(self, device) -> "TargetStore":
        """A store that generates its rows on `device` (e.g. the GPU the loss runs on)."""
        store = TargetStore(self.n, self.d, self.seed)
        store.device = torch.device(device)
        return store

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"TargetStore(n={self.n}, d={self.d}, seed={self.seed})"

    def __getitem__(self, ids) -> torch.Tensor:
        ids = torch.as_tensor(ids)
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise TypeError(f"target ids must be integers (a LongTensor), got dtype {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.n):  # where the ids are: CPU ids
            raise IndexError(f"target ids must lie in [0, {self.n}), got range "   # never wait for a GPU
                             f"[{int(ids.min())}, {int(ids.max())}]")
        ids = ids.long() if self.device is None else ids.to(self.device, torch.long)
        flat = ids.reshape(-1)
        rows = torch.empty(len(flat), self.d, device=ids.device)
        step = max(1, self.chunk_values * (64 if ids.is_cuda else 1) // self.pairs)  # GPU: 64x fewer launches
        for i in range(0, len(flat), step):
            self._rows(flat[i:i + step], out=rows[i:i + step])
        return rows.reshape(*ids.shape, self.d)

    def _rows(self, ids: torch.Tensor, out: torch.Tensor) -> None:
        # counter = id * pairs + j, so counter * GAMMA + c0 = (id * pairs * GAMMA + c0) + j * GAMMA (mod 2^64)
        first = ids * _i64(self.pairs * _GAMMA % (1 << 64)) + _i64((_start(self.seed) + _GAMMA) % (1 << 64))
        step = torch.arange(self.pairs, device=ids.device) * _i64(_GAMMA)
        w = _mix_(first[:, None] + step[None, :])                                 # (B, d/2) random bits
        r = _shr(w, 41).float().add_(0.5).mul_(2.0 ** -23).log_().mul_(-2.0).sqrt_()
        a = (w & 0xFFFFFF).float().mul_(2 * math.pi * 2.0 ** -24)
        g = torch.stack((torch.cos(a).mul_(r), a.sin_().mul_(r)), -1).view(len(ids), -1)[:, : self.d]
        torch.div(g, torch.linalg.vector_norm(g, dim=1, keepdim=True), out=out)  # (B, d) unit rows

    def all(self) -> torch.Tensor:
        """Every target as one dense (n, d) tensor: only for small stores."""
        return self[torch.arange(self.n)]


def sample_sphere(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) float32 rows drawn uniformly on the unit sphere S^{d-1}."""
    return TargetStore(n, d, seed).all()


def discrete_targets(n: int, k: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) targets that take only k distinct values ("cluster codes"), each used by n/k samples
    (balanced, like the paper's discrete variant): one-hot vectors when d >= k (the paper's choice),
    else k points drawn uniformly on the sphere."""
    if not 1 <= k <= n:
        raise ValueError(f"discrete targets need 1 <= k <= n codes, got k={k}, n={n}")
    codes = torch.eye(d)[:k] if d >= k else sample_sphere(k, d, seed)
    return codes[torch.arange(n) % k]
