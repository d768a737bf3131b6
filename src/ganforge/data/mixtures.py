"""The standard 2-D Gaussian mixtures of the mode-collapse literature.

* ``ring8``: 8 isotropic Gaussians of standard deviation 0.02 whose means are equally spaced
  on a circle of radius 2, centre k at angle 2πk/8 (the ring of Metz et al. 2017, "Unrolled
  Generative Adversarial Networks", reused by VEEGAN);
* ``grid25``: 25 isotropic Gaussians of standard deviation 0.05 whose means form the 5 x 5 grid
  {-4, -2, 0, 2, 4}² (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018, whose released
  configuration lists exactly these means and standard deviation), centres ordered with the
  first coordinate varying slowest.

Each sample picks a component uniformly at random. Score a generator's samples with
``ganforge.metrics.modes.mixture_modes(points, mixture.centers, mixture.std)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import GanforgeError


@dataclass
class Mixture:
    points: np.ndarray  # (n, 2) float32 samples
    labels: np.ndarray  # (n,) int64 index of the component each sample came from
    centers: np.ndarray  # (M, 2) float64 component means
    std: float  # standard deviation of every component (isotropic)


def _sample(centers: np.ndarray, std: float, n: int, seed: int) -> Mixture:
    if n < 0:
        raise GanforgeError(f"a mixture needs n >= 0 samples, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(centers), n).astype(np.int64)
    points = centers[labels] + std * rng.standard_normal((n, 2))
    return Mixture(points=points.astype(np.float32), labels=labels, centers=centers, std=std)


def ring8_centers(radius: float = 2.0) -> np.ndarray:
    angles = 2 * np.pi * np.arange(8) / 8
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def grid25_centers() -> np.ndarray:
    ticks = np.arange(-4.0, 5.0, 2.0)
    return np.array([(a, b) for a in ticks for b in ticks])


def ring8(n: int, seed: int = 0) -> Mixture:
    """n samples of 8 Gaussians (std 0.02) on a circle of radius 2."""
    return _sample(ring8_centers(), 0.02, n, seed)


def grid25(n: int, seed: int = 0) -> Mixture:
    """n samples of 25 Gaussians (std 0.05) on the grid {-4, -2, 0, 2, 4}²."""
    return _sample(grid25_centers(), 0.05, n, seed)


MIXTURES: dict[str, Callable[..., Mixture]] = {"ring8": ring8, "grid25": grid25}
