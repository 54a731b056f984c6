"""Early / middle / final sample pictures of a run, side by side, for the README (docs/img/).

python benchmarks/eval_figures.py runs/eval/25g docs/img/25gaussians.png --steps 1500 7500 15000
python benchmarks/eval_figures.py runs/eval/digits docs/img/digits.png --steps 300 1500 3000 --scale 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw


def strip(run: Path, steps: list[int], scale: float) -> Image.Image:
    tiles = []
    for s in steps:
        img = Image.open(run / "samples" / f"step_{s:06d}.png").convert("RGB")
        img = img.resize(
            (round(img.width * scale), round(img.height * scale)), Image.NEAREST if scale >= 1 else Image.LANCZOS
        )
        label = Image.new("RGB", (img.width, 16), "white")
        ImageDraw.Draw(label).text((4, 2), f"step {s}", fill="black")
        tile = Image.new("RGB", (img.width, img.height + 16), "white")
        tile.paste(label, (0, 0))
        tile.paste(img, (0, 16))
        tiles.append(tile)
    out = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + 8
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, nargs="+", required=True)
    p.add_argument("--scale", type=float, default=1.0)
    a = p.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    strip(a.run, a.steps, a.scale).save(a.out, optimize=True)
    print(f"wrote {a.out}")
