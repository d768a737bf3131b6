"""Mode coverage: which classes (or mixture components) the generator produces, and how evenly.

``class_coverage`` works from a classifier's view of generated images (the domain network's
softmax, or predicted labels) against the class frequencies of the real data.
``mixture_modes`` scores samples of a 2-D Gaussian mixture (``ganforge.data.mixtures``)
against its known centres, as in the unrolled-GAN / VEEGAN / PacGAN experiments.
"""
from __future__ import annotations

import numpy as np

from ..data.stacked import MODES, mode_codes
from ..errors import GanforgeError

KL_SMOOTHING = 1e-6  # weight of the uniform distribution mixed into both histograms before the KL


def _fake_predictions(fake) -> tuple[np.ndarray, int | None]:
    a = np.asarray(fake)
    if a.ndim == 2:  # class probabilities: the predicted class is the most probable one
        if a.shape[1] < 1 or len(a) == 0:
            raise GanforgeError(f"class coverage needs (N, K) class probabilities, got shape {a.shape}")
        return a.argmax(axis=1), a.shape[1]
    if a.ndim == 1 and len(a) > 0 and np.issubdtype(a.dtype, np.integer):
        if a.min() < 0:
            raise GanforgeError("class coverage: predicted classes must be non-negative integers")
        return a.astype(np.int64), None
    raise GanforgeError(
        "class coverage needs generated samples as (N, K) probabilities or (N,) integer classes, "
        f"got {a.dtype} {a.shape}"
    )


def class_coverage(
    fake,
    real,
    min_share: float = 0.1,
    num_classes: int | None = None,
    real_is_histogram: bool | None = None,
) -> dict:
    """Class histogram of generated samples compared with the real one.

    fake: (N, K) class probabilities (each sample counts for its most probable class, as
        mode counting on stacked MNIST does) or (N,) integer predicted classes.
    real: the real class distribution, either (M,) integer labels or a (K,) histogram of
        counts or shares. Integer arrays are read as labels and float arrays as histograms
        unless ``real_is_histogram`` says otherwise (pass ``True`` for ``np.bincount`` output).
    min_share: a class is **covered** when its share of the generated samples is at least
        ``min_share`` times its share of the real data (default: 10% of its expected share, so
        with 10 balanced classes a class needs 1% of the samples). Classes absent from the real
        data are neither covered nor missing.

    Returns ``classes_covered`` (int), ``classes_total`` (classes present in the real data),
    ``missing`` (sorted list of class indices not covered), ``kl`` and the histograms
    ``histogram`` (generated shares per class, K floats) and ``real_histogram``.
    ``kl`` is KL(generated || real) over classes, in nats: the generated class distribution
    measured against the real one. This direction is finite even without smoothing whenever
    the real data has every class, and a missing class raises it through the other classes'
    excess (10 balanced classes, one missing: ln(10/9) = 0.105); the reverse direction would be
    dominated by the smoothing constant. Both histograms are first mixed with a uniform
    distribution of weight ``KL_SMOOTHING`` (1e-6) so it also stays finite when the generator
    produces a class the real data lacks. 0 for identical histograms.
    """
    pred, k_fake = _fake_predictions(fake)
    r = np.asarray(real)
    if r.ndim != 1 or len(r) == 0:
        raise GanforgeError(f"class coverage needs the real classes as a 1-D array, got shape {r.shape}")
    as_hist = (not np.issubdtype(r.dtype, np.integer)) if real_is_histogram is None else real_is_histogram
    if as_hist:
        real_hist = r.astype(np.float64)
        if not np.isfinite(real_hist).all() or (real_hist < 0).any() or real_hist.sum() <= 0:
            raise GanforgeError("class coverage: the real histogram needs non-negative counts or shares, not all zero")
    else:
        if not np.issubdtype(r.dtype, np.integer) or r.min() < 0:
            raise GanforgeError("class coverage: real labels must be non-negative integers")
        real_hist = np.bincount(r.astype(np.int64)).astype(np.float64)
    k = max(num_classes or 0, k_fake or 0, len(real_hist), int(pred.max()) + 1)
    if num_classes is not None and k > num_classes:
        raise GanforgeError(f"class coverage: classes up to {k - 1} appear but num_classes is {num_classes}")
    real_hist = np.pad(real_hist, (0, k - len(real_hist)))
    real_share = real_hist / real_hist.sum()
    fake_share = np.bincount(pred, minlength=k) / len(pred)

    present = real_share > 0
    covered = present & (fake_share >= min_share * real_share)
    missing = np.flatnonzero(present & ~covered)

    p = (1 - KL_SMOOTHING) * fake_share + KL_SMOOTHING / k
    q = (1 - KL_SMOOTHING) * real_share + KL_SMOOTHING / k
    kl = float(np.sum(p * (np.log(p) - np.log(q))))
    return {
        "classes_covered": int(covered.sum()),
        "classes_total": int(present.sum()),
        "missing": [int(c) for c in missing],
        "kl": max(kl, 0.0),
        "histogram": [float(s) for s in fake_share],
        "real_histogram": [float(s) for s in real_share],
    }


def mixture_modes(
    points,
    centers,
    std: float,
    threshold: float = 3.0,
    min_count: int = 1,
) -> dict:
    """Modes covered and sample quality for samples of a Gaussian mixture with known centres.

    The conventions of VEEGAN (Srivastava et al. 2017), also used by PacGAN (Lin et al. 2018)
    for the 2-D ring and grid of unrolled GAN (Metz et al. 2017): a sample is **high quality**
    when it lies within ``threshold`` = 3 standard deviations of its nearest mixture centre
    (Euclidean distance < 3 std, the components being isotropic); a mode is **covered** when
    it is the nearest centre of at least ``min_count`` = 1 high-quality sample (VEEGAN: "the
    number of mixture components whose mean is nearest to at least one high quality sample").
    VEEGAN draws 2,500 samples per model. For exact samples of a 2-D component, 98.9% fall
    within 3 std (1 - exp(-4.5)), so a perfect generator scores about 0.989, not 1.

    points: (N, D) samples; centers: (M, D) centres; std: the components' standard deviation.
    Returns ``modes_covered``, ``modes_total`` (M), ``high_quality_share`` (share of all
    samples) and ``per_mode_counts`` (high-quality samples per centre, M ints).
    """
    x = np.asarray(points, dtype=np.float64)
    c = np.asarray(centers, dtype=np.float64)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1] or len(x) == 0 or len(c) == 0:
        raise GanforgeError(
            f"mixture modes need points (N, D) and centers (M, D) of the same D, got {x.shape} and {c.shape}"
        )
    if not std > 0:
        raise GanforgeError(f"mixture modes need a positive std, got {std}")
    if not np.isfinite(x).all():
        finite = np.isfinite(x).all(axis=1)  # diverged samples are never high quality
        x = np.where(finite[:, None], x, np.inf)
    dist = np.sqrt(((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2))  # (N, M)
    dist = np.nan_to_num(dist, nan=np.inf)
    nearest = dist.argmin(axis=1)
    good = dist[np.arange(len(x)), nearest] < threshold * std
    counts = np.bincount(nearest[good], minlength=len(c))
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "modes_total": len(c),
        "high_quality_share": float(good.mean()),
        "per_mode_counts": [int(n) for n in counts],
    }


def stacked_modes(channel_digits) -> dict:
    """Modes of Stacked MNIST samples (``ganforge.data.stacked``) from the digit seen in each channel.

    channel_digits: (N, 3) integers 0..9, the classifier's digit for the red, green and blue
    channel of each sample. Following VEEGAN / PacGAN (26,000 samples), a mode is **covered**
    when at least one sample falls in it, and ``kl`` is KL(generated mode histogram || uniform
    over the 1,000 modes) in nats (0 when every mode is equally frequent).
    Returns ``modes_covered``, ``modes_total`` and ``kl``.
    """
    d = np.asarray(channel_digits)
    if d.ndim != 2 or d.shape[1] != 3 or len(d) == 0 or not np.issubdtype(d.dtype, np.integer):
        raise GanforgeError(f"stacked modes need (N, 3) integer digits, got {d.dtype} {d.shape}")
    if d.min() < 0 or d.max() > 9:
        raise GanforgeError("stacked modes need digits 0..9")
    codes = mode_codes(d)
    share = np.bincount(codes, minlength=MODES) / len(codes)
    nonzero = share > 0
    kl = float(np.sum(share[nonzero] * np.log(share[nonzero] * MODES)))
    return {"modes_covered": int(nonzero.sum()), "modes_total": MODES, "kl": max(kl, 0.0)}


def channel_digits(net, images, batch_size: int = 500) -> np.ndarray:
    """uint8 (N, C, H, W) images -> (N, C) the most probable class of each channel alone under a
    one-channel domain classifier (``ganforge.metrics.domain``); for Stacked MNIST."""
    import torch

    from .domain import extract

    images = torch.as_tensor(images)
    n, c, h, w = images.shape
    _, probs = extract(net, images.reshape(n * c, 1, h, w), batch_size=batch_size)  # (N * C, classes)
    if probs is None:
        raise GanforgeError("classifying channels needs a classifier domain network (trained with labels)")
    return probs.argmax(dim=1).reshape(n, c).numpy()
