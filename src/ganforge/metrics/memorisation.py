"""Memorisation: are generated samples closer to the training set than new real samples are?

For each generated sample, the Euclidean distance to its nearest training sample is compared
with the same distance for held-out real samples (real images the generator never saw). A
generator that copies its training set produces samples much closer to it than held-out
images are. Works on any (N, ...) arrays: feature vectors of any size or flattened pixels.

A generated sample is a **near-copy** when its distance to the training set is at most the
``copy_quantile`` quantile (default 0.01, the 1st percentile) of the held-out -> training
distances. So held-out real samples are near-copies at a rate of about ``copy_quantile`` (1%)
by construction, a generator that generalises like the real data scores about the same,
and exact copies of training samples (distance 0) always count, giving 100% for a generator
that only replays its training set. ``near_copy_share`` well above ``copy_quantile`` means
memorisation.

Nearest neighbours are found blockwise with the |x|² - 2 x·y + |y|² expansion, and the
distance to the chosen neighbour is then recomputed directly as |x - y|, so an exact copy
has distance exactly 0 even for large pixel values, where the expansion cancels badly.
"""
from __future__ import annotations

import numpy as np

from ..errors import GanforgeError
from .prdc import _BLOCK_BYTES, _row_norms_sq, as_rows


def nearest_distances(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row: (Nq,) float64."""
    q = queries.astype(np.float64, copy=False)
    r = reference.astype(np.float64, copy=False)
    rr = _row_norms_sq(r)
    out = np.empty(len(q))
    rows = max(1, _BLOCK_BYTES // (8 * len(r)))
    for start in range(0, len(q), rows):
        block = q[start : start + rows]
        # |q|² is the same for the whole row, so the nearest neighbour minimises |r|² - 2 q·r.
        nearest = np.argmin(rr[None, :] - 2 * (block @ r.T), axis=1)
        out[start : start + len(block)] = np.linalg.norm(block - r[nearest], axis=1)
    return out


def memorisation(
    train: np.ndarray,
    fake: np.ndarray,
    heldout: np.ndarray,
    copy_quantile: float = 0.01,
) -> dict:
    """Nearest-neighbour distances of generated and held-out samples to the training set.

    Returns (all floats):

    * ``fake_to_train_median``: median distance from a generated sample to its nearest training sample;
    * ``heldout_to_train_median``: the same for held-out real samples;
    * ``median_ratio``: fake / held-out medians (about 1 for a generalising generator, well
      below 1 when it memorises; above 1 when its samples are far from the data);
    * ``near_copy_threshold``: the ``copy_quantile`` quantile of the held-out distances;
    * ``near_copy_share``: share of generated samples at or below that threshold (see the module
      docstring: ~``copy_quantile`` for held-out data, 1.0 for exact copies);
    * ``heldout_near_copy_share``: the same share for the held-out samples (the baseline, ~``copy_quantile``).
    """
    t = as_rows("training", train, "memorisation")
    f = as_rows("generated", fake, "memorisation")
    h = as_rows("held-out", heldout, "memorisation")
    if not (t.shape[1] == f.shape[1] == h.shape[1]):
        raise GanforgeError(
            f"memorisation: training, generated and held-out samples have {t.shape[1]}, {f.shape[1]} "
            f"and {h.shape[1]} values each; they must match"
        )
    if not 0 < copy_quantile < 1:
        raise GanforgeError(f"memorisation: copy_quantile must be between 0 and 1, got {copy_quantile}")
    d_fake = nearest_distances(f, t)
    d_held = nearest_distances(h, t)
    threshold = float(np.quantile(d_held, copy_quantile))
    fake_median, held_median = float(np.median(d_fake)), float(np.median(d_held))
    if held_median == 0:
        raise GanforgeError("memorisation: most held-out samples also appear in the training set; "
                            "pass real samples the generator was not trained on")
    return {
        "fake_to_train_median": fake_median,
        "heldout_to_train_median": held_median,
        "median_ratio": fake_median / held_median,
        "near_copy_threshold": threshold,
        "near_copy_share": float((d_fake <= threshold).mean()),
        "heldout_near_copy_share": float((d_held <= threshold).mean()),
    }
