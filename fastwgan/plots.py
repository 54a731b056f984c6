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


def plot_losses(history: list[dict], path: str | os.PathLike) -> None:
    """Critic loss, W-estimate and gradient penalty (left), generator loss (right), against the step."""
    fig, (ax_d, ax_g) = figure(2, (11, 4))
    steps = [h["step"] for h in history]

    def series(key):
        return [math.nan if h.get(key) is None else h[key] for h in history]

    for key, label in (("critic_loss", "critic loss"), ("w_estimate", "W-estimate E[D(real)] - E[D(fake)]"),
                       ("gp", "gradient penalty (unweighted)"), ("w_heldout", "W-estimate, held-out real")):
        ys = series(key)
        if any(not math.isnan(y) for y in ys):
            ax_d.plot(steps, ys, label=label, lw=1)
    ax_d.set_xlabel("generator step")
    ax_d.set_title("critic")
    ax_d.legend(fontsize=8)
    ax_g.plot(steps, series("generator_loss"), color="C3", lw=1)
    ax_g.set_xlabel("generator step")
    ax_g.set_title("generator loss -E[D(G(z))]")
    fig.tight_layout()
    save(fig, path)


def scatter(fake: torch.Tensor, path: str | os.PathLike, real: torch.Tensor | None = None,
            title: str = "") -> None:
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
