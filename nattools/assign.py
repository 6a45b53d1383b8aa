"""The assignment: which target each sample predicts. NAT keeps a one-to-one table sample -> target and
re-solves it batch by batch: the b targets a batch's samples hold (plus, when there are more targets than
samples, some free ones) are redistributed among them by the Hungarian algorithm so that
sum_i <z_i, c_assigned(i)> is maximal. Each batch update can only lower the loss, costs O(b^3) instead of
O(n^3), and keeps the table a permutation. Solvers (both exact): "scipy" (linear_sum_assignment, the
reference) and "lap" (LAPJV from the optional package `lap`, 2-3x faster on 256 x 256 scores; square
problems only, rectangular ones go to scipy)."""
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


SOLVERS = ("scipy", "lap")


def lapjv(score: np.ndarray) -> np.ndarray:
    """The optimum of a square score matrix (maximised) by LAPJV (package `lap`) -> columns (b,)."""
    try:
        import lap
    except ImportError as e:
        raise ImportError("solver 'lap' needs the package lap: pip install lap") from e
    return np.asarray(lap.lapjv(score.max() - score, return_cost=False)[0])   # costs >= 0, minimised


def batch_assignment(z: torch.Tensor, c: torch.Tensor, solver: str = "scipy") -> torch.LongTensor:
    """z: (b, d) embeddings, c: (m, d) candidate targets, m >= b -> perm (b,): b distinct indices into c
    that maximise sum_i <z_i, c[perm[i]]> (for unit rows, the same as minimising sum_i ||z_i - c[perm[i]]||^2).
    The scores are computed where z and c are (the GPU) and copied to the CPU once."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    if z.ndim != 2 or c.ndim != 2 or z.shape[1] != c.shape[1]:
        raise ValueError(f"batch_assignment needs z (b,d) and c (m,d), got {tuple(z.shape)} and {tuple(c.shape)}")
    if c.shape[0] < z.shape[0]:
        raise ValueError(f"need at least as many targets as samples, got {c.shape[0]} < {z.shape[0]}")
    return solve_scores((z.detach().float() @ c.detach().float().T).cpu(), solver)


def solve_scores(score: torch.Tensor, solver: str = "scipy") -> torch.LongTensor:
    """The exact optimum of a (b, m) score matrix, on the CPU -> perm (b,)."""
    score = score.double().numpy()
    if not np.isfinite(score).all():
        raise FloatingPointError("batch_assignment got non-finite embeddings or targets")
    if solver == "lap" and score.shape[0] == score.shape[1]:
        return torch.from_numpy(lapjv(score)).long()   # LAPJV's own column reduction: no reductions here
    # Every sample gets exactly one target, so subtracting a constant from a row changes no optimum; when
    # b = m every target is used once, so neither does a constant per column. The reduced costs un-tie the
    # near-equal scores of look-alike embeddings (a network at initialisation): scipy then solves faster.
    score -= score.max(1, keepdims=True)
    if score.shape[0] == score.shape[1]:
        score -= score.max(0, keepdims=True)
    rows, cols = linear_sum_assignment(score, maximize=True)          # rows == arange(b)
    return torch.from_numpy(cols).long()


class Assignment:
    """The one-to-one table sample -> target, for n samples and k >= n targets: `table[i]` is the target of
    sample i, `owner[j]` the sample holding target j, or -1 if it is free (only when k > n). Lives in the
    main process (data-loader workers never see it), updated identically on every rank (see `apply`)."""

    def __init__(self, n: int, k: int, seed: int = 0, solver: str = "scipy"):
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
        if k < n:
            raise ValueError(f"NAT needs at least one target per sample: k={k} < n={n}; set k >= n")
        self.solver, self.n, self.k = solver, n, k
        self.generator = torch.Generator().manual_seed(seed)
        self.table = torch.randperm(k, generator=self.generator)[:n].clone()  # (n,) random start
        self.owner = torch.full((k,), -1, dtype=torch.long)
        self.owner[self.table] = torch.arange(n)

    def candidates(self, idx: torch.Tensor, rank: int = 0, world: int = 1) -> torch.Tensor:
        """Targets that the batch idx competes for: the ones it holds, then (k > n) len(idx) free targets
        drawn at random. With several ranks every rank draws the same world * len(idx) free targets and
        keeps its own slice, so no two ranks can hand out the same free target in one step."""
        held = self.table[idx]
        if self.k == self.n:
            return held
        free = torch.nonzero(self.owner < 0).squeeze(1)
        b = len(idx)
        pick = torch.randperm(len(free), generator=self.generator)[: b * world]
        return torch.cat([held, free[pick[rank * b:(rank + 1) * b]]])

    def solve(self, idx: torch.Tensor, z: torch.Tensor, targets, rank: int = 0, world: int = 1, rows: bool = False):
        """The batch's best targets without changing the table: idx (b,) sample ids, z (b, d) embeddings,
        targets a TargetStore or (k, d) -> new targets (b,); rows=True -> (them, their rows (b, d) on z's
        device, taken from the candidates: no second generation)."""
        cand = self.candidates(idx.cpu(), rank, world)
        c = targets[cand].to(z.device)                                   # (m, d), made once
        perm = batch_assignment(z, c, self.solver)
        return (cand[perm], c[perm.to(c.device)]) if rows else cand[perm]

    def update(self, idx: torch.Tensor, z: torch.Tensor, targets) -> int:
        """Solve the batch and apply it (one process); returns how many samples changed target."""
        return self.apply(idx.cpu(), self.solve(idx, z, targets))

    def apply(self, idx: torch.Tensor, new: torch.Tensor) -> int:
        """Give target new[i] to sample idx[i] -> how many samples changed target; raises unless one-to-one."""
        old = self.table[idx]
        if len(torch.unique(new)) != len(new):
            raise RuntimeError("assignment update gives one target to two samples")
        taken = self.owner[new]
        if not torch.all((taken < 0) | torch.isin(taken, idx)):
            raise RuntimeError("assignment update takes a target held by a sample outside the batch")
        self.owner[old] = -1
        self.owner[new] = idx
        self.table[idx] = new
        return int((old != new).sum())

    def state_dict(self) -> dict:
        return {"n": self.n, "k": self.k, "table": self.table.clone(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if (state["n"], state["k"]) != (self.n, self.k):
            raise ValueError(f"assignment in checkpoint is for n={state['n']}, k={state['k']}, "
                             f"this run has n={self.n}, k={self.k}")
        table = torch.as_tensor(state["table"])
        if table.shape != (self.n,) or table.is_floating_point() or len(table) and (
                int(table.min()) < 0 or int(table.max()) >= self.k or len(table.unique()) < self.n):
            raise ValueError(f"assignment in checkpoint is not a one-to-one table of {self.n} samples to "
                             f"targets in [0, {self.k})")
        self.table = table.long().clone()
        self.owner.fill_(-1)
        self.owner[self.table] = torch.arange(self.n)
        self.generator.set_state(state["generator"])
