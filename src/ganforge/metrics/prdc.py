"""k-nearest-neighbour manifold metrics: precision, recall, density and coverage.

Each set's manifold is the union of balls around its samples, each ball's radius being the
distance to the sample's k-th nearest neighbour within its own set (the sample itself excluded).

* precision (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models"): share of fake samples inside the real manifold — fidelity;
* recall (same paper): share of real samples inside the fake manifold — diversity;
* density (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models"):
  mean over fake samples of the number of real balls containing them, divided by k
  (about 1 when fake matches real; can exceed 1);
* coverage (same paper): share of real samples whose ball contains at least one fake sample.

Defaults follow the papers: k = 3 for precision/recall, k = 5 for density/coverage.

Numerics follow the ``prdc`` package (the reference code of Naeem et al.) exactly: Euclidean
distances as scikit-learn computes them (|x|² - 2 x·y + |y|² in float64, clipped at 0, rounded to
float32 before the square root when both inputs are float32, zero distance of a sample to itself),
the radius is the (k+1)-th smallest distance of a row (the first being the sample itself), and a
point is inside a ball when its distance is strictly below the radius. On the same arrays the
four values equal the package's. The distances are computed in blocks of rows, so memory stays
bounded (about ``_BLOCK_BYTES`` per block) whatever the set sizes, instead of holding three full
N x N matrices.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import GanforgeError

_BLOCK_BYTES = 64 * 2**20  # size of one block of the distance matrix (float64)


def as_rows(name: str, x, metric: str) -> np.ndarray:
    """(N, ...) array -> (N, D) float array (float32 kept, other types become float64)."""
    a = np.asarray(x)
    if a.ndim < 2 or len(a) == 0:
        raise GanforgeError(f"{metric} needs {name} samples as an (N, D) array, got shape {a.shape}")
    a = a.reshape(len(a), -1)
    if a.dtype != np.float32:
        a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise GanforgeError(f"{metric}: the {name} samples contain NaN or infinite values")
    return a


def _row_norms_sq(a: np.ndarray) -> np.ndarray:
    a64 = a.astype(np.float64, copy=False)
    return np.einsum("ij,ij->i", a64, a64)


def distance_blocks(x: np.ndarray, y: np.ndarray, same: bool = False) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (rows, distances[rows, :]) blocks of the Euclidean distance matrix between x and y.

    Computed like scikit-learn's ``euclidean_distances``; ``same=True`` (y is x) sets the
    distance of each sample to itself to exactly 0.
    """
    # -2 x·y as (-2 x)·y: scaling by a power of two is exact, so this equals -2 * (x @ y.T) bit for bit.
    x_m2, y64 = -2 * x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    xx, yy = _row_norms_sq(x), _row_norms_sq(y)
    single = x.dtype == np.float32 and y.dtype == np.float32
    rows = max(1, _BLOCK_BYTES // (8 * max(1, len(y))))
    for start in range(0, len(x), rows):
        s = slice(start, min(start + rows, len(x)))
        d = x_m2[s] @ y64.T
        d += xx[s, None]
        d += yy[None, :]
        if single:
            d = d.astype(np.float32)
        np.maximum(d, 0, out=d)
        if same:
            idx = np.arange(s.start, s.stop)
            d[idx - s.start, idx] = 0
        np.sqrt(d, out=d)
        yield s, d


def kth_neighbour_distances(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of x to its k-th nearest other row of x: (N,)."""
    if not 1 <= k < len(x):
        raise GanforgeError(f"k-nearest-neighbour radii need 1 <= k < N = {len(x)}, got k={k}")
    out = np.empty(len(x), dtype=np.float32 if x.dtype == np.float32 else np.float64)
    for s, d in distance_blocks(x, x, same=True):
        out[s] = np.partition(d, k, axis=1)[:, k]
    return out


def prdc(real: np.ndarray, fake: np.ndarray, nearest_k: int = 5) -> dict:
    """Precision, recall, density and coverage at one k, equal to ``prdc.compute_prdc``."""
    same = real is fake
    x, y = as_rows("real", real, "prdc"), as_rows("fake", fake, "prdc")
    if x.shape[1] != y.shape[1]:
        raise GanforgeError(f"prdc: real samples have {x.shape[1]} values and fake ones {y.shape[1]}")
    k = int(nearest_k)
    real_radii = kth_neighbour_distances(x, k)
    fake_radii = kth_neighbour_distances(y, k)
    real_balls_per_fake = np.zeros(len(y), dtype=np.int64)  # density; > 0: precision
    real_in_fake = np.zeros(len(x), dtype=bool)  # recall
    real_covered = np.zeros(len(x), dtype=bool)  # coverage
    for s, d in distance_blocks(x, y, same=same):  # d: (rows of real, all fake)
        real_balls_per_fake += np.count_nonzero(d < real_radii[s, None], axis=0)
        real_in_fake[s] = (d < fake_radii[None, :]).any(axis=1)
        real_covered[s] = d.min(axis=1) < real_radii[s]
    return {
        "precision": float((real_balls_per_fake > 0).mean()),
        "recall": float(real_in_fake.mean()),
        "density": float((1.0 / k) * real_balls_per_fake.mean()),
        "coverage": float(real_covered.mean()),
    }


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019): {"precision", "recall"}."""
    out = prdc(real, fake, k)
    return {"precision": out["precision"], "recall": out["recall"]}


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict:
    """Density and coverage (Naeem et al. 2020): {"density", "coverage"}."""
    out = prdc(real, fake, k)
    return {"density": out["density"], "coverage": out["coverage"]}
