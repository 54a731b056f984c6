"""PNG plots of a run: loss curves and 2-D scatter plots. Uses matplotlib's object API with the Agg canvas, so
no global pyplot state is touched."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch


def figure(ncols: int, size: tuple[float, float]):
    """A matplotlib Figure with ``ncols`` axes side by side on its own Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def save(fig, path: str | os.PathLike, dpi: int | None = None) -> None:
    """Write ``fig`` as a PNG atomically (a temporary file, then a rename), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, **({} if dpi is None else {"dpi": dpi}))
    os.replace(tmp, path)


#: The GAN trainers' panels: (title, [(history key, label), ...]) each. Other trainers pass their own.
GAN_PANELS = (
    (
        "critic",
        (
            ("critic_loss", "critic loss"),
            ("w_estimate", "W-estimate E[D(real)] - E[D(fake)]"),
            ("gp", "gradient penalty (unweighted)"),
        ),
    ),
    ("generator", (("generator_loss", "generator loss -E[D(G(z))]"),)),
)


def plot_losses(history: list[dict], path: str | os.PathLike, panels=GAN_PANELS, ticks: list[dict] = ()) -> None:
    """One panel per (title, [(key, label), ...]) entry, each curve against the step: from ``history`` (a record
    per step) or, for keys it lacks, from ``ticks`` (the log ticks' records, e.g. an evaluation metric). Curves
    with no value, and panels with no curve, are left out."""

    def series(key):
        rows = history if any(h.get(key) is not None for h in history) else ticks
        pts = [(h["step"], h[key]) for h in rows if h.get(key) is not None and "step" in h]
        return [s for s, _ in pts], [math.nan if v != v else v for _, v in pts]

    shown = [(title, [(k, lab, *series(k)) for k, lab in curves]) for title, curves in panels]
    shown = [(title, [c for c in curves if c[2]]) for title, curves in shown]
    shown = [(title, curves) for title, curves in shown if curves]
    if not shown:
        return
    fig, axes = figure(len(shown), (5.5 * len(shown), 4))
    for ax, (title, curves) in zip(axes, shown):
        for key, label, xs, ys in curves:
            ax.plot(xs, ys, label=label, lw=1)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


def scatter(fake: torch.Tensor, path: str | os.PathLike, real: torch.Tensor | None = None, title: str = "") -> None:
    """Scatter plot of 2-D samples (fake in orange over real in blue), the toy datasets' sample picture."""
    fig, (ax,) = figure(1, (5, 5))
    if real is not None:
        r = real[:5000].detach().cpu().float()
        ax.scatter(r[:, 0], r[:, 1], s=2, alpha=0.3, label="real", color="C0")
    f = fake.detach().cpu().float()
    ax.scatter(f[:, 0], f[:, 1], s=2, alpha=0.5, label="generated", color="C1")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save(fig, path)
