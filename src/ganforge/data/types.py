"""What the data loaders return: :class:`ImageDataset` (a decoded, fitted set) and
:class:`DataInfo` (a description of a source, for ``ganforge data info``).

Errors the user can fix are :class:`ganforge.errors.DataError`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from ganforge.data.geometry import Geometry


@dataclass
class ImageDataset:
    """A decoded data set, ready for training."""

    images: torch.Tensor  # (N, C, R, R) uint8, CPU, contiguous
    labels: torch.Tensor | None  # (N,) int64, or None when unlabelled / single class
    class_names: list[str]  # [] when unlabelled
    geometry: Geometry
    source: str  # as given by the user
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason) of unreadable files

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class DataInfo:
    """What a data source holds, for ``ganforge data info``."""

    source: str
    count: int  # readable images
    sizes: Counter  # (height, width) -> images
    channels: Counter  # channel count -> images
    classes: dict[str, int]  # class name -> images ({} when unlabelled)
    unreadable: list[tuple[str, str]]  # (file name, reason)

    def format(self) -> str:
        """A short human-readable table."""

        def counted(items, limit):
            items = list(items)
            text = ", ".join(f"{k} ({n:,})" for k, n in items[:limit])
            return text + (f", ... and {len(items) - limit} more" if len(items) > limit else "")

        count = f"{self.count:,}"
        if self.unreadable:
            count += f" readable, {len(self.unreadable):,} unreadable"
        lines = [f"source      {self.source}", f"images      {count}"]
        sizes = [(f"{h}x{w}", n) for (h, w), n in self.sizes.most_common()]
        if len(sizes) == 1:
            lines.append(f"size        {sizes[0][0]} (height x width)")
        elif sizes:
            lines.append(f"sizes       {len(sizes)} (height x width): {counted(sizes, 5)}")
        chans = sorted(self.channels.items())
        if len(chans) == 1:
            lines.append(f"channels    {chans[0][0]}")
        elif chans:
            lines.append(f"channels    mixed: {counted(chans, 4)}")
        if self.classes:
            lines.append(f"classes     {len(self.classes)}: {counted(self.classes.items(), 20)}")
        else:
            lines.append("classes     none (unlabelled)")
        if self.unreadable:
            lines.append(f"unreadable  {len(self.unreadable):,}:")
            lines += [f"  {name}: {reason}" for name, reason in self.unreadable[:10]]
            if len(self.unreadable) > 10:
                lines.append(f"  ... and {len(self.unreadable) - 10} more")
        return "\n".join(lines)


__all__ = ["DataInfo", "ImageDataset"]
