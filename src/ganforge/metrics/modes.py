"""Mode coverage: which classes (or mixture components) the generator produces, and how evenly.

``class_coverage`` works from a classifier's view of generated images (the domain network's
softmax, or predicted labels) against the class frequencies of the real data; given how the
classifier classifies labelled real images (``classifier_confusion``) it corrects for the
classifier's own mistakes, so that a one-class set does not read as several classes.
``mixture_modes`` scores samples of a 2-D Gaussian mixture (``ganforge.data.mixtures``)
against its known centres, as in the unrolled-GAN / VEEGAN / PacGAN experiments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.stacked import MODES, mode_codes
from ..errors import GanforgeError

KL_SMOOTHING = 1e-6  # weight of the uniform distribution mixed into both histograms before the KL
CONFUSION_PRIOR = 0.5  # pseudo-count added to every cell of a confusion row before it becomes rates
COVERAGE_Z = 2.0  # standard deviations by which a class's predictions must exceed the confusion it receives
EM_ITERATIONS = 20_000  # at most, for the class-share estimate; it usually stops far earlier
EM_TOLERANCE = 1e-12  # stop when no estimated share moves by more than this in one update


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


@dataclass(frozen=True)
class Confusion:
    """How a classifier classifies labelled real images, for :func:`class_coverage`.

    ``counts[t, k]``: over the labelled images of true class ``t``, the sum of their
    probability of class ``k`` (``soft``) or the number whose most probable class is ``k``
    (hard: the usual confusion matrix). Each row sums to the number of images of class ``t``.
    ``squares[t, k]``: the same sum of squared values (equal to ``counts`` when hard), for how
    precisely the rates are known.
    """

    counts: np.ndarray  # (K, K) float64
    squares: np.ndarray  # (K, K) float64
    soft: bool = False


def classifier_confusion(predicted, labels, num_classes: int | None = None, soft: bool = False) -> Confusion:
    """The :class:`Confusion` of a classifier from its outputs on labelled images.

    predicted: (N, K) class probabilities or (N,) integer predicted classes; labels: (N,) true
    classes. Hard (default): each image counts 1 for its most probable class. ``soft=True``
    (needs probabilities): each image spreads its 1 over the classes by its probabilities;
    :func:`class_coverage` then compares the generated samples' mean probabilities.
    """
    pred, k_pred = _fake_predictions(predicted)
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(pred) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise GanforgeError(
            f"a confusion matrix needs ({len(pred)},) non-negative integer labels, got {y.dtype} {y.shape}"
        )
    if soft and k_pred is None:
        raise GanforgeError("a soft confusion matrix needs (N, K) class probabilities, not predicted classes")
    k = max(num_classes or 0, k_pred or 0, int(pred.max()) + 1, int(y.max()) + 1)
    if num_classes is not None and k > num_classes:
        raise GanforgeError(f"confusion matrix: classes up to {k - 1} appear but num_classes is {num_classes}")
    y = y.astype(np.int64)
    if not soft:
        counts = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(np.float64)
        return Confusion(counts, counts.copy(), soft=False)
    probs = np.pad(np.asarray(predicted, dtype=np.float64), ((0, 0), (0, k - k_pred)))
    counts, squares = np.zeros((k, k)), np.zeros((k, k))
    np.add.at(counts, y, probs)
    np.add.at(squares, y, probs**2)
    return Confusion(counts, squares, soft=True)


def _estimate_shares(observed: np.ndarray, rates: np.ndarray, iterations: int = EM_ITERATIONS) -> np.ndarray:
    """True class shares that best explain the observed predicted-class shares.

    observed: (K,) shares of the predicted classes (or mean class probabilities); rates: (P, K)
    ``P(predicted | true)`` for the P candidate true classes, rows summing to 1. Finds the shares
    on the simplex whose implied predictions ``rates.T @ shares`` are closest to ``observed``
    in KL divergence (for hard predictions: the maximum-likelihood shares, the predictions
    being draws from that mixture). The EM update ``s_t <- s_t * sum_k rates[t, k] *
    observed[k] / (rates.T @ s)[k]`` (expectation-maximisation for a mixture with known
    components: the confusion-matrix form of the prior adjustment of Saerens, Latinne &
    Decaestecker 2002) keeps the shares on the simplex and never lowers the fit. Starts from
    uniform shares; a class the data does not need decays towards 0.
    """
    shares = np.full(len(rates), 1.0 / len(rates))
    for _ in range(iterations):
        expected = shares @ rates  # (K,) predicted-class shares the current estimate implies
        ratio = np.divide(observed, expected, out=np.zeros_like(observed), where=expected > 0)
        new = shares * (rates @ ratio)
        new /= new.sum()
        done = np.abs(new - shares).max() < EM_TOLERANCE
        shares = new
        if done:
            break
    return shares


def class_coverage(
    fake,
    real,
    min_share: float = 0.1,
    num_classes: int | None = None,
    real_is_histogram: bool | None = None,
    confusion: Confusion | np.ndarray | None = None,
    z: float = COVERAGE_Z,
) -> dict:
    """Class histogram of generated samples compared with the real one.

    fake: (N, K) class probabilities (each sample counts for its most probable class, as
        mode counting on stacked MNIST does; against a soft ``confusion`` the corrected count
        reads their mean instead) or (N,) integer predicted classes.
    real: the real class distribution, either (M,) integer labels or a (K,) histogram of
        counts or shares. Integer arrays are read as labels and float arrays as histograms
        unless ``real_is_histogram`` says otherwise (pass ``True`` for ``np.bincount`` output).
    min_share: a class is **covered** when its share of the generated samples is at least
        ``min_share`` times its share of the real data (default: 10% of its expected share, so
        with 10 balanced classes a class needs 1% of the samples). Classes absent from the real
        data are neither covered nor missing.
    confusion: optional, how the same classifier classifies labelled real images
        (:func:`classifier_confusion`; a plain (K, K) array is read as hard counts
        ``C[true, predicted]``), to correct for its own mistakes. Without it the predicted
        classes are taken at face value, and a classifier that is 88-91% accurate spreads a
        one-class set over several classes: 5,000 real Fashion-MNIST dresses put 2-5% each on
        T-shirt, coat and shirt, above the 1% threshold, and read as 4 classes. With it:

        * the true class shares of the generated samples are estimated from the observed ones
          through the confusion rates (the shares whose implied predictions fit the observed
          ones best, by EM, see ``_estimate_shares``). Each row of counts gets
          ``CONFUSION_PRIOR`` (0.5) added to every cell before it is normalised, so a mistake
          never seen among a class's labelled images still gets a small rate rather than an
          impossible 0. A soft confusion compares mean probabilities instead of top-class
          counts: they carry more than the top class (a shirt read 40% shirt, 45% T-shirt), so
          classes the counts confound stay apart, and ``fake`` must then be probabilities;
        * a class is covered when its **estimated** share is at least ``min_share`` times its
          real share **and** its observed share clearly exceeds what the confusion of the other
          classes explains: ``observed - explained > z * sd``, ``explained = sum over the other
          classes t of share_t * rate[t, c]``, ``sd`` combining the spread of N samples drawn
          from those other classes with that of each rate measured on the row's labelled images
          (so pass counts, not rates; rates known exactly can be passed as counts scaled by a
          large number). ``z`` = 2 (``COVERAGE_Z``): the share threshold is the main guard, the
          test keeps a handful of samples from counting when N or the labelled set is small.

        The correction assumes generated images of a class are classified like the labelled
        real ones; when the classifier was trained on those same labelled images its confusion
        is optimistic and the correction may leave part of the leakage (prefer a held-out
        labelled set). Only classes present in the real data are candidate true classes, and
        each needs labelled images. A class the classifier can hardly tell from others (say
        Fashion-MNIST shirts under a weak classifier with few labelled images) may go
        unconfirmed: its predictions are explained by its neighbours.

    Returns ``classes_covered`` (int), ``classes_total`` (classes present in the real data),
    ``missing`` (sorted list of class indices not covered), ``kl`` and the histograms
    ``histogram`` (generated shares per class, K floats: the corrected estimate when
    ``confusion`` is given, else the predicted shares) and ``real_histogram``; also
    ``raw_histogram`` (the most-probable-class shares, uncorrected), ``classes_covered_raw``
    (the count the uncorrected rule gives) and ``corrected`` (whether a confusion was used).
    ``kl`` is KL(generated || real) over classes, in nats, from ``histogram``: the generated
    class distribution measured against the real one. This direction is finite even without
    smoothing whenever the real data has every class, and a missing class raises it through the
    other classes' excess (10 balanced classes, one missing: ln(10/9) = 0.105); the reverse
    direction would be dominated by the smoothing constant. Both histograms are first mixed
    with a uniform distribution of weight ``KL_SMOOTHING`` (1e-6) so it also stays finite when
    the generator produces a class the real data lacks. 0 for identical histograms.
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
    if confusion is not None and not isinstance(confusion, Confusion):
        counts = np.asarray(confusion, dtype=np.float64)
        confusion = Confusion(counts, counts, soft=False)
    if confusion is not None:
        shape = confusion.counts.shape
        if (len(shape) != 2 or shape[0] != shape[1] or confusion.squares.shape != shape
                or not np.isfinite(confusion.counts).all() or (confusion.counts < 0).any()):
            raise GanforgeError(f"class coverage needs a square (K, K) confusion matrix of counts, got shape {shape}")
        if confusion.soft and k_fake is None:
            raise GanforgeError("class coverage with a soft confusion needs (N, K) class probabilities")
    k = max(num_classes or 0, k_fake or 0, len(real_hist), int(pred.max()) + 1,
            len(confusion.counts) if confusion is not None else 0)
    if num_classes is not None and k > num_classes:
        raise GanforgeError(f"class coverage: classes up to {k - 1} appear but num_classes is {num_classes}")
    real_hist = np.pad(real_hist, (0, k - len(real_hist)))
    real_share = real_hist / real_hist.sum()
    raw_share = np.bincount(pred, minlength=k) / len(pred)

    present = real_share > 0
    covered_raw = present & (raw_share >= min_share * real_share)
    if confusion is None:
        fake_share, covered = raw_share, covered_raw
    else:
        observed = raw_share
        if confusion.soft:
            mean_probs = np.pad(np.asarray(fake, dtype=np.float64).mean(axis=0), (0, k - k_fake))
            observed = mean_probs / mean_probs.sum()
        fake_share, covered = _corrected_coverage(observed, len(pred), real_share, confusion, min_share, z)
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
        "raw_histogram": [float(s) for s in raw_share],
        "classes_covered_raw": int(covered_raw.sum()),
        "corrected": confusion is not None,
    }


def _corrected_coverage(observed, n, real_share, confusion: Confusion, min_share, z):
    """(estimated true shares (K,), covered (K,) bool) from the observed class shares of n
    samples and the classifier's confusion; see class_coverage."""
    k = len(real_share)
    present = np.flatnonzero(real_share > 0)
    counts = np.pad(confusion.counts, (0, k - len(confusion.counts)))[present]  # (P, K)
    squares = np.pad(confusion.squares, (0, k - len(confusion.squares)))[present]
    sizes = counts.sum(axis=1)  # labelled images per candidate class
    if (sizes <= 0).any():
        unmeasured = [int(c) for c in present[sizes <= 0]]
        raise GanforgeError(f"class coverage: the confusion matrix has no labelled images of classes {unmeasured}")
    denom = (sizes + CONFUSION_PRIOR * k)[:, None]
    rates = (counts + CONFUSION_PRIOR) / denom  # mean of each class's score (indicator or probability)
    second = np.maximum((squares + CONFUSION_PRIOR) / denom, rates**2)  # mean of its square
    shares = _estimate_shares(observed, rates)

    explained = np.zeros(k)  # share of c's observations that the other classes' confusion explains
    var = np.zeros(k)
    for i, c in enumerate(present):
        others = np.arange(len(present)) != i
        s = shares[others]
        explained[c] = s @ rates[others, c]
        sample_var = max(s @ second[others, c] - explained[c] ** 2, 0.0) / n  # n draws from the other classes
        rate_var = (s**2) @ ((second[others, c] - rates[others, c] ** 2) / denom[others, 0])  # measured rates
        var[c] = sample_var + rate_var
    full = np.zeros(k)
    full[present] = shares
    covered = (real_share > 0) & (full >= min_share * real_share) & (observed - explained > z * np.sqrt(var))
    return full, covered


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
