"""A picture of ROC curves, drawn with Pillow (no plotting library needed)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from .roc import AttackResult

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
SIZE, MARGIN = 480, 56  # the square plot area and the space around it for axes and labels


def plot_roc(attacks: Sequence[AttackResult], path: str | os.PathLike, title: str = "") -> Path:
    """ROC curves of ``attacks`` on linear axes, with the chance diagonal and a legend of AUCs."""
    width, height = SIZE + 2 * MARGIN, SIZE + 2 * MARGIN
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def xy(fpr: float, tpr: float) -> tuple[float, float]:
        return MARGIN + fpr * SIZE, MARGIN + (1 - tpr) * SIZE

    draw.rectangle([xy(0, 1), xy(1, 0)], outline="black")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = xy(tick, 0)
        draw.line([(x, y), (x, y + 4)], fill="black")
        draw.text((x - 10, y + 8), f"{tick:.2f}", fill="black")
        x, y = xy(0, tick)
        draw.line([(x - 4, y), (x, y)], fill="black")
        draw.text((x - 36, y - 6), f"{tick:.2f}", fill="black")
    draw.line([xy(0, 0), xy(1, 1)], fill=(160, 160, 160))  # chance
    draw.text((MARGIN + SIZE / 2 - 50, MARGIN + SIZE + 26), "false-positive rate", fill="black")
    draw.text((6, MARGIN - 20), "true-positive rate", fill="black")
    if title:
        draw.text((MARGIN, 12), title, fill="black")
    for k, attack in enumerate(attacks):
        colour = COLOURS[k % len(COLOURS)]
        draw.line([xy(f, t) for f, t in zip(attack.fpr, attack.tpr)], fill=colour, width=2)
        x, y = MARGIN + SIZE * 0.42, MARGIN + SIZE - 22 * (len(attacks) - k) - 8
        draw.line([(x, y + 6), (x + 20, y + 6)], fill=colour, width=3)
        draw.text((x + 26, y), f"{attack.name}: AUC {attack.auc:.3f}", fill="black")
    path = Path(path)
    image.save(path)
    return path
