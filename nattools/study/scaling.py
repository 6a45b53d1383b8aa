"""Chapter 6: what a full run costs. Hours per epoch against the number of GPUs (the dry-run plan's
arithmetic on measured throughputs), the assignment's share of a training step at each batch size (the
committed benchmarks), and the memory of the target store (bench/targets_memory.py)."""
import re

import plotly.graph_objects as go

from .plotting import PALETTE

# Lines of `python -m nattools bench` and of bench/gpu_check.py, as committed under data/results.
BENCH_STEP = re.compile(r"batch\s+(\d+): NAT\s+([\d.]+) ms\s+fixed\s+([\d.]+) ms")
ALEXNET = re.compile(r"AlexNet 224px on (.+?), batch (\d+),.*fixed targets ([\d.]+) ms/step")
ALEXNET_NAT = re.compile(r"NAT, solver scipy: ([\d.]+) ms/step")
TRAINER = re.compile(r"trainer decode=workers .*?: (\d+) img/s")


def bench_steps(text: str) -> dict:
    """Step times in a `nattools bench` log -> {batch: (NAT ms, fixed-target ms)}; a batch measured
    twice keeps its last (the longer) measurement."""
    return {int(b): (float(nat), float(fixed)) for b, nat, fixed in BENCH_STEP.findall(text)}


def alexnet_steps(text: str) -> dict:
    """AlexNet 224 px step times in a bench/gpu_check.py log -> {batch: (NAT ms with scipy, fixed ms)}."""
    out, batch = {}, None
    for line in text.splitlines():
        if m := ALEXNET.search(line):
            batch, fixed = int(m.group(2)), float(m.group(3))
        elif (m := ALEXNET_NAT.search(line)) and batch:
            out[batch] = (float(m.group(1)), fixed)
    return out


def trainer_rate(text: str) -> float:
    """Images per second of the whole trainer (JPEGs decoded by workers) in a gpu_check log."""
    return float(TRAINER.search(text).group(1))


def assignment_share(steps: dict) -> dict:
    """{batch: (NAT ms, fixed ms)} -> {batch: share of a NAT step that the fixed-target step does not
    spend}: the cost of re-solving the assignment (and of reading the targets it chose)."""
    return {b: (nat - fixed) / nat for b, (nat, fixed) in steps.items()}


def share_figure(shares: dict):
    """{setting: {batch: share}} -> the assignment's share of a step against the batch size."""
    fig = go.Figure()
    for k, (name, s) in enumerate(shares.items()):
        fig.add_trace(go.Scatter(x=list(s), y=list(s.values()), mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[k % len(PALETTE)]), marker=dict(size=9)))
    fig.update_layout(title="The assignment's share of a step", height=400,
                      xaxis=dict(type="log", title="batch size per process", tickvals=[256, 512, 1024]),
                      yaxis=dict(title="share of the NAT step", tickformat=".0%", range=[0, 1]),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def epoch_hours(n: int, nat_ips: float, fixed_ips: float, epochs: int, reassign_every: int) -> float:
    """Hours of one epoch on one device, averaged over a run: epochs that re-solve the assignment run
    at the NAT step's rate, the others at the fixed-target rate (the dry-run plan's arithmetic)."""
    solving = sum(1 for e in range(epochs) if reassign_every and e % reassign_every == 0)
    return n * (solving / nat_ips + (epochs - solving) / fixed_ips) / epochs / 3600


def epochs_figure(hours_on_one: dict, gpus=(1, 2, 4, 8, 16, 32, 64)):
    """{setting: hours per epoch on one device} -> hours per epoch against the number of devices,
    scaling linearly (each process its own batch of 256 and its own assignment)."""
    fig = go.Figure()
    for k, (name, h) in enumerate(hours_on_one.items()):
        fig.add_trace(go.Scatter(x=list(gpus), y=[h / g for g in gpus], mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[k % len(PALETTE)]),
                                 hovertemplate="%{x} devices: %{y:.3g} h per epoch<extra></extra>"))
    fig.update_layout(title="One epoch of ImageNet, AlexNet at 224 px", height=420,
                      xaxis=dict(type="log", title="devices (processes)", tickvals=list(gpus)),
                      yaxis=dict(type="log", title="hours per epoch", dtick=1),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def memory_figure(rows: dict):
    """{what: megabytes} -> horizontal bars on a log scale."""
    fig = go.Figure(go.Bar(x=list(rows.values()), y=list(rows), orientation="h", marker_color=PALETTE[0],
                           text=[f"{v:,.0f} MB" for v in rows.values()], textposition="outside"))
    fig.update_layout(title="ImageNet's 1,281,167 targets of dimension 4096", height=330,
                      xaxis=dict(type="log", title="megabytes (log scale)", range=[0.8, 5.2]),
                      yaxis=dict(autorange="reversed"), margin=dict(l=330))
    return fig
