"""Chapter 3: the assignment. Toy problems against brute force, the cost of one exact solve,
the batch update against the full assignment, and the alternatives (greedy, Sinkhorn).

`sweep` is the batch update alone, over embeddings held fixed: one pass of the trainer's
re-solving (nattools.assign.Assignment.update, batch after batch) without a network. This
chapter measures how close it gets to the exact optimum; chapters 5 and 9 use it on a trained
network's embeddings.
"""
import itertools
import math
import time

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from scipy.optimize import linear_sum_assignment

from ..assign import Assignment, batch_assignment
from .plotting import PALETTE


def greedy_assignment(z: torch.Tensor, c: torch.Tensor) -> torch.LongTensor:
    """Greedy alternative: repeatedly take the best remaining (sample, target) pair.
    O(b m log(b m)); a baseline for the chapter on the assignment, not optimal."""
    return greedy_rounding(z.float() @ c.float().T)


def sinkhorn_assignment(z: torch.Tensor, c: torch.Tensor, eps: float = 0.05, iters: int = 100) -> torch.LongTensor:
    """Entropic (Sinkhorn) relaxation for square problems, rounded to a permutation
    with the Hungarian algorithm on the transport plan. Fast on GPUs, approximate."""
    if z.shape[0] != c.shape[0]:
        raise ValueError("sinkhorn_assignment is written for square problems (b == m)")
    log_plan = sinkhorn_log_plan(z.float() @ c.float().T, eps, iters)
    _, cols = linear_sum_assignment(log_plan.cpu().numpy(), maximize=True)
    return torch.from_numpy(cols).long()


def _score(z, c, perm) -> float:
    """sum_i <z_i, c_perm[i]>: what the assignment maximises."""
    return float((z * c[torch.as_tensor(perm)]).sum())


def sweep(assignment: Assignment, z: torch.Tensor, targets, order: torch.Tensor, batch_size: int,
          full_batches: bool = False) -> int:
    """One pass of NAT's batch assignment over embeddings z (n, d) held fixed: the batches of
    `order` (sample ids), in turn, each re-solve among the targets they hold (plus as many free
    ones when k > n), as the trainer does in an epoch that reassigns. full_batches: skip a last,
    short batch (the trainer drops it). -> how many samples changed target."""
    return sum(assignment.update(idx, z[idx], targets) for idx in order.split(batch_size)
               if not full_batches or len(idx) == batch_size)


def toy_problems(n: int = 6, draws: int = 12, seed: int = 0) -> list:
    """`draws` toy problems in the plane: n outputs and n targets on the unit circle. For each: the
    Hungarian solution (nattools.assign.batch_assignment), the greedy one, and the best of all n!
    permutations by brute force, with their scores."""
    g = torch.Generator().manual_seed(seed)
    perms = np.array(list(itertools.permutations(range(n))))          # (n!, n), every permutation
    problems = []
    for k in range(draws):
        z = F.normalize(torch.randn(n, 2, generator=g), dim=1)
        c = F.normalize(torch.randn(n, 2, generator=g), dim=1)
        hung = batch_assignment(z, c)
        greedy = greedy_assignment(z, c)
        brute = perms[(z @ c.T).numpy()[np.arange(n), perms].sum(1).argmax()]
        problems.append(dict(z=z, c=c, hungarian=hung, greedy=greedy, s_hungarian=_score(z, c, hung),
                             s_greedy=_score(z, c, greedy), s_brute=_score(z, c, brute)))
    return problems


def toy_assignment(n: int = 6, draws: int = 12, seed: int = 0):
    """The toy problems of `toy_problems` and a figure with a slider over the draws ("resample")."""
    problems = toy_problems(n, draws, seed)
    fig = go.Figure()
    t = np.linspace(0, 2 * np.pi, 200)
    fig.add_trace(go.Scatter(x=np.cos(t), y=np.sin(t), mode="lines", line=dict(color="#ddd"),
                             hoverinfo="skip", showlegend=False))
    per = []
    for k, p in enumerate(problems):
        z, c = p["z"].numpy(), p["c"].numpy()
        traces = []
        for key, style, label in (("greedy", dict(color="#d62728", dash="dot", width=2), "greedy"),
                                  ("hungarian", dict(color="#2ca02c", width=3), "Hungarian (optimal)")):
            seg = np.full((3 * n, 2), np.nan)
            seg[0::3], seg[1::3] = z, c[p[key].numpy()]
            traces.append(go.Scatter(x=seg[:, 0], y=seg[:, 1], mode="lines", line=style, name=label,
                                     legendgroup=key, showlegend=k == 0, visible=k == 0, hoverinfo="skip"))
        traces.append(go.Scatter(x=z[:, 0], y=z[:, 1], mode="markers+text", text=[f"z{i}" for i in range(n)],
                                 textposition="top center", marker=dict(size=11, color="#1f77b4"), name="outputs z",
                                 legendgroup="z", showlegend=k == 0, visible=k == 0))
        traces.append(go.Scatter(x=c[:, 0], y=c[:, 1], mode="markers+text", text=[f"c{i}" for i in range(n)],
                                 textposition="bottom center", marker=dict(size=11, symbol="x", color="#444"),
                                 name="targets c", legendgroup="c", showlegend=k == 0, visible=k == 0))
        per.append([fig.add_trace(tr) and len(fig.data) - 1 for tr in traces])
    steps = []
    for k, p in enumerate(problems):
        vis = [True] + [False] * (len(fig.data) - 1)
        for i in per[k]:
            vis[i] = True
        steps.append(dict(method="update", label=str(k + 1), args=[
            {"visible": vis},
            {"title.text": f"draw {k + 1}: score sum <z, c>: Hungarian {p['s_hungarian']:.3f} "
                           f"(brute force {p['s_brute']:.3f}), greedy {p['s_greedy']:.3f}"}]))
    fig.update_layout(title=dict(text=steps[0]["args"][1]["title.text"], font_size=13), height=560,
                      xaxis=dict(range=[-1.35, 1.35], scaleanchor="y", visible=False),
                      yaxis=dict(range=[-1.35, 1.35], visible=False),
                      sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="resample: draw "))])
    return problems, fig


def time_assignment(sizes, d: int = 64, repeats: int = 3, seed: int = 0):
    """Best-of-`repeats` wall time of batch_assignment (a b x b linear_sum_assignment plus
    the score matrix) on random unit vectors, for each size b. -> {b: seconds}"""
    g = torch.Generator().manual_seed(seed)
    times = {}
    for b in sizes:
        z = F.normalize(torch.randn(b, d, generator=g), dim=1)
        c = F.normalize(torch.randn(b, d, generator=g), dim=1)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            batch_assignment(z, c)
            best = min(best, time.perf_counter() - t0)
        times[b] = best
    return times


def fit_power_law(times: dict, min_size: int = 0):
    """Least-squares fit of log t = a log b + log s over sizes >= min_size -> (a, s)."""
    b = np.array([s for s in times if s >= min_size], dtype=float)
    t = np.array([times[s] for s in times if s >= min_size])
    a, logk = np.polyfit(np.log(b), np.log(t), 1)
    return float(a), float(np.exp(logk))


def timing_figure(times: dict, exponent: float, scale: float, min_size: int = 0):
    b = np.array(list(times), dtype=float)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=b, y=list(times.values()), mode="markers", name="measured",
                             marker=dict(size=9)))
    bb = b[b >= min_size]
    fig.add_trace(go.Scatter(x=bb, y=scale * bb ** exponent, mode="lines", name=f"fit: t ~ b^{exponent:.2f}"))
    fig.update_layout(title="Cost of one exact assignment (scipy's linear_sum_assignment)",
                      xaxis=dict(type="log", title="batch size b", tickvals=list(times)),
                      yaxis=dict(type="log", title="seconds", dtick=1),
                      height=400)
    return fig


def batch_vs_full(n: int = 1000, d: int = 32, batch_sizes=(16, 64, 256), epochs: int = 6, seed: int = 0):
    """How close repeated batch updates (`sweep`: the outputs z held fixed)
    get to the exact assignment of all n samples at once. Progress is the share of the
    possible gain achieved: (S - S_start) / (S_opt - S_start), S = sum_i <z_i, c_table[i]>.
    -> dict with the optimum, its time, and per batch size the progress after each epoch."""
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(n, d, generator=g), dim=1)
    c = F.normalize(torch.randn(n, d, generator=g), dim=1)
    t0 = time.perf_counter()
    best = batch_assignment(z, c)
    out = {"n": n, "d": d, "s_opt": _score(z, c, best), "full_seconds": time.perf_counter() - t0, "runs": {}}
    for b in batch_sizes:
        table = Assignment(n, n, seed=seed)
        s0 = _score(z, c, table.table)
        progress, seconds = [0.0], 0.0
        for epoch in range(epochs):
            order = torch.randperm(n, generator=g)
            t0 = time.perf_counter()
            sweep(table, z, c, order, b)
            seconds += time.perf_counter() - t0
            progress.append((_score(z, c, table.table) - s0) / (out["s_opt"] - s0))
        out["runs"][b] = {"progress": progress, "seconds_per_epoch": seconds / epochs}
    return out


def batch_vs_full_figure(res: dict):
    fig = go.Figure()
    for k, (b, r) in enumerate(res["runs"].items()):
        fig.add_trace(go.Scatter(x=list(range(len(r["progress"]))), y=r["progress"], mode="lines+markers",
                                 name=f"batches of {b}", line=dict(color=PALETTE[k % len(PALETTE)])))
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dot"), annotation_text="exact assignment of all n")
    fig.update_layout(title=f"Batch updates against the full assignment (n = {res['n']}, outputs fixed)",
                      xaxis_title="epochs of batch updates", yaxis_title="share of the optimal gain",
                      yaxis_range=[0, 1.05], height=400)
    return fig


def sinkhorn_log_plan(scores: torch.Tensor, eps: float = 0.05, iters: int = 100) -> torch.Tensor:
    """log of the entropic transport plan of scores (b, K) by Sinkhorn-Knopp in log space: every row
    (sample) carries mass 1 and every column (target, or cluster) b / K: an equipartition. With b == K the
    plan is doubly stochastic (chapter 3); SwAV runs 3 iterations of this on each batch (chapter 13)."""
    b, k = scores.shape
    log_plan = scores.float() / eps
    for _ in range(iters):  # alternate column and row normalisation
        log_plan = log_plan - torch.logsumexp(log_plan, dim=0, keepdim=True) + math.log(b / k)
        log_plan = log_plan - torch.logsumexp(log_plan, dim=1, keepdim=True)
    return log_plan


def sinkhorn_plan(z: torch.Tensor, c: torch.Tensor, eps: float = 0.05, iters: int = 100) -> torch.Tensor:
    """The transport plan of sinkhorn_assignment before its rounding: (b, b), rows and columns
    summing to 1 (a doubly stochastic matrix)."""
    return sinkhorn_log_plan(z.float() @ c.float().T, eps, iters).exp()


def greedy_rounding(plan: torch.Tensor) -> torch.LongTensor:
    """A one-to-one assignment from a (b, m) matrix of scores or a plan, m >= b: take its largest
    entry, strike out its row and column, repeat (one sort, then a walk down it in plain Python)."""
    b, m = plan.shape
    perm, taken, left = [-1] * b, [False] * m, b
    for flat in np.argsort(-plan.detach().float().numpy(), axis=None, kind="stable").tolist():
        i, j = divmod(flat, m)
        if perm[i] < 0 and not taken[j]:
            perm[i], taken[j], left = j, True, left - 1
            if left == 0:
                break
    return torch.tensor(perm)


def compare_solvers(sizes=(64, 256, 512), d: int = 64, seed: int = 0, eps: float = 0.05):
    """Exact (Hungarian), greedy and Sinkhorn on random b x b problems: time and share of the optimal
    gain over a random assignment -> list of rows {b, method, seconds, quality}.

    Sinkhorn appears three ways. Its plan itself (fractional: its expected score); the plan rounded
    greedily (cheap, approximate); and the library's `sinkhorn_assignment`, which rounds with an exact
    assignment on log(plan). That last one scores 100 % by construction: Sinkhorn's iterations only
    add a constant per row and per column to S / eps, and every permutation picks one entry of each
    row and column, so the best permutation of log(plan) is the best permutation of S."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in sizes:
        z = F.normalize(torch.randn(b, d, generator=g), dim=1)
        c = F.normalize(torch.randn(b, d, generator=g), dim=1)
        s_rand, scores = _score(z, c, torch.randperm(b, generator=g)), z @ c.T
        t0 = time.perf_counter()
        s_opt = _score(z, c, batch_assignment(z, c))
        timed = [("exact (Hungarian)", time.perf_counter() - t0, s_opt)]
        t0 = time.perf_counter()
        timed.append(("greedy", None, _score(z, c, greedy_assignment(z, c))))
        timed[-1] = (timed[-1][0], time.perf_counter() - t0, timed[-1][2])
        t0 = time.perf_counter()
        plan = sinkhorn_plan(z, c, eps)
        t_plan = time.perf_counter() - t0
        timed.append(("Sinkhorn plan (fractional)", t_plan, float((plan * scores).sum())))
        t0 = time.perf_counter()
        timed.append(("Sinkhorn, greedy rounding", None, _score(z, c, greedy_rounding(plan))))
        timed[-1] = (timed[-1][0], t_plan + time.perf_counter() - t0, timed[-1][2])
        t0 = time.perf_counter()
        perm = sinkhorn_assignment(z, c, eps)
        timed.append(("Sinkhorn, exact rounding", time.perf_counter() - t0, _score(z, c, perm)))
        for name, dt, s in timed:
            rows.append({"b": b, "method": name, "seconds": dt, "quality": (s - s_rand) / (s_opt - s_rand)})
    return rows


def solver_quality(z: torch.Tensor, c: torch.Tensor, repeats: int = 3, seed: int = 0) -> dict:
    """One b x b problem: the exact solve's best-of-`repeats` time, and greedy's share of the optimal gain
    over a random permutation."""
    s_rand = _score(z, c, torch.randperm(len(z), generator=torch.Generator().manual_seed(seed)))
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        perm = batch_assignment(z, c)
        seconds.append(time.perf_counter() - t0)
    s_opt = _score(z, c, perm)
    return {"exact_seconds": min(seconds),
            "greedy_quality": (_score(z, c, greedy_assignment(z, c)) - s_rand) / (s_opt - s_rand)}


def solvers_figure(rows):
    fig = make_subplots(rows=1, cols=2, subplot_titles=("share of the optimal gain", "seconds (log)"))
    for k, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        sub = [r for r in rows if r["method"] == method]
        x = [f"b = {r['b']}" for r in sub]
        fig.add_trace(go.Bar(x=x, y=[r["quality"] for r in sub], name=method, legendgroup=method,
                             marker_color=PALETTE[k]), row=1, col=1)
        fig.add_trace(go.Bar(x=x, y=[r["seconds"] for r in sub], name=method, legendgroup=method,
                             showlegend=False, marker_color=PALETTE[k]), row=1, col=2)
    fig.update_yaxes(type="log", dtick=1, row=1, col=2)
    low = min(r["quality"] for r in rows)
    fig.update_yaxes(range=[max(0.0, low - 0.05), 1.005], tickformat=".0%", row=1, col=1)
    fig.update_layout(height=400, barmode="group", legend=dict(orientation="h", y=-0.15))
    return fig




def cluster_sizes_figure(sizes: dict, share: float):
    """{how: images per cluster (K,)} -> bars of the cluster sizes, largest first, with the equal share."""
    fig = go.Figure()
    for k, (how, s) in enumerate(sizes.items()):
        s = torch.sort(torch.as_tensor(s), descending=True).values
        fig.add_trace(go.Bar(x=list(range(1, len(s) + 1)), y=s.tolist(), name=how, marker_color=PALETTE[k]))
    fig.add_hline(y=share, line=dict(color="grey", dash="dot"), annotation_text="equal share")
    fig.update_layout(barmode="group", height=380, title="Images per prototype, largest first",
                      xaxis_title="prototype (by size)", yaxis_title="images",
                      legend=dict(orientation="h", y=-0.25))
    return fig
