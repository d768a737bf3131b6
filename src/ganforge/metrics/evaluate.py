"""Evaluate generated images against real ones: quality, diversity and memorisation.

``evaluate`` takes uint8 image tensors at the data's own size, extracts features once per
set, and runs the requested metrics, each a small function in the ``METRICS`` registry.
Result names carry the extractor: ``fid_inception`` for the standard protocol, ``fd_domain``,
``kid_domain``, ``precision_domain``, ... otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import GanforgeError
from .features import Extractor, Features, cached_features, make_extractor
from .frechet import GaussianStats, frechet_distance
from .names import METRIC_NAMES


@dataclass
class EvalSets:
    """Features of the sets a metric may compare."""

    extractor: Extractor
    fake: Features
    real: Features  # the reference (held-out or training images)
    train: Features | None  # training images, for memorisation (None when they are the reference or unneeded)
    real_labels: np.ndarray | None
    classifier: Features | None = None  # domain-classifier view of fake, for class coverage
    real_classifier: Features | None = None  # domain-classifier view of real (when classifier is set)


def _suffix(sets: EvalSets) -> str:
    return sets.extractor.name


def metric_fd(sets: EvalSets) -> dict:
    name = "fid_inception" if sets.extractor.name == "inception" else f"fd_{sets.extractor.name}"
    return {name: frechet_distance(GaussianStats.of(sets.fake.features), GaussianStats.of(sets.real.features))}


def metric_kid(sets: EvalSets) -> dict:
    from .kid import kernel_inception_distance

    mean, std = kernel_inception_distance(sets.real.features, sets.fake.features)
    return {f"kid_{_suffix(sets)}": mean, f"kid_{_suffix(sets)}_std": std}


def metric_is(sets: EvalSets) -> dict:
    from .inception_score import inception_score

    if sets.fake.probs is None:
        raise GanforgeError("the Inception Score needs a classifier: the domain network has none for unlabelled data")
    mean, std = inception_score(sets.fake.probs)
    return {f"is_{_suffix(sets)}": mean, f"is_{_suffix(sets)}_std": std}


def metric_pr(sets: EvalSets) -> dict:
    from .prdc import precision_recall

    out = precision_recall(sets.real.features, sets.fake.features, k=3)
    return {f"{k}_{_suffix(sets)}": v for k, v in out.items()}


def metric_dc(sets: EvalSets) -> dict:
    from .prdc import density_coverage

    out = density_coverage(sets.real.features, sets.fake.features, k=5)
    return {f"{k}_{_suffix(sets)}": v for k, v in out.items()}


def metric_modes(sets: EvalSets) -> dict:
    """Classes the generated images cover, corrected for the domain classifier's own confusion.

    The classifier's confusion is measured on the labelled reference images: per true class,
    the mean class probabilities of its images (a soft confusion matrix, see
    :func:`ganforge.metrics.modes.classifier_confusion`), against which the generated images'
    mean probabilities are read. A one-class set then no longer reads as several classes through
    the few percent a 90%-accurate classifier spreads into neighbouring classes (see
    :func:`ganforge.metrics.modes.class_coverage`). Measured on held-out reference images (an
    Evaluator given separate ``train`` images) the confusion is unbiased; when the classifier
    was trained on the reference images themselves (no ``train``, as during training) it is
    optimistic and the correction may leave some leakage. The 3-epoch domain network barely
    overfits, though: on Fashion-MNIST it is 88.4% accurate on its own 20,000 training images
    against 88% on held-out ones, and 5,000 dresses read 1 class either way (4 uncorrected).
    ``classes_covered_raw`` is the uncorrected count (most probable class, 1% threshold).
    """
    from .modes import class_coverage, classifier_confusion

    fake = sets.classifier if sets.classifier is not None else sets.fake
    real = sets.real_classifier if sets.classifier is not None else sets.real
    if fake.probs is None or sets.real_labels is None or real is None or real.probs is None:
        raise GanforgeError("class coverage needs a labelled reference data set")
    confusion = classifier_confusion(real.probs, sets.real_labels, soft=True)
    out = class_coverage(fake.probs, sets.real_labels, confusion=confusion)
    return {"classes_covered": out["classes_covered"], "classes_total": out["classes_total"],
            "classes_missing": out["missing"], "class_kl": out["kl"],
            "classes_covered_raw": out["classes_covered_raw"]}


def metric_memorisation(sets: EvalSets) -> dict:
    from .memorisation import memorisation

    if sets.train is None:
        raise GanforgeError("memorisation needs held-out real images distinct from the training set: pass --real HELDOUT")
    out = memorisation(sets.train.features, sets.fake.features, sets.real.features)
    return {f"memorisation_{k}": v for k, v in out.items()}


# name -> metric_<name>, for every name of names.METRIC_NAMES
METRICS: dict[str, Callable[[EvalSets], dict]] = {name: globals()[f"metric_{name}"] for name in METRIC_NAMES}


class Evaluator:
    """Holds the extractor and the reference features, so repeated evaluations (during training) are cheap."""

    def __init__(
        self,
        real: torch.Tensor,  # uint8 (N, C, H, W) reference images
        real_labels: torch.Tensor | None = None,
        train: torch.Tensor | None = None,  # training images when ``real`` is a held-out set
        train_labels: torch.Tensor | None = None,
        extractor: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
        device: str | torch.device = "cpu",  # where the feature networks run (the images may be anywhere)
    ):
        self.cache_dir, self.progress = cache_dir, progress
        self.real_shape = tuple(real.shape[1:])  # (C, H, W) that generated images must match
        # The domain network is trained on the training images when given, else on the reference.
        base, base_labels = (train, train_labels) if train is not None else (real, real_labels)
        self.extractor = make_extractor(extractor, base, base_labels, cache_dir, progress, device)
        self.real = cached_features(self.extractor, real, cache_dir, progress)
        self._train_images, self._train = train, None  # features extracted when memorisation first asks
        self.real_labels = real_labels.numpy() if real_labels is not None else None
        self.classifier_extractor = self.real_classifier = None
        if self.extractor.name != "domain" and base_labels is not None:
            # Class coverage reads the domain classifier; its view of the reference gives its confusion matrix.
            self.classifier_extractor = make_extractor("domain", base, base_labels, cache_dir, progress, device)
            if real_labels is not None:
                self.real_classifier = cached_features(self.classifier_extractor, real, cache_dir, progress)

    def __call__(self, fake: torch.Tensor, metrics: list[str]) -> dict:
        """uint8 (N, C, H, W) generated images -> {metric name: value}."""
        if fake.shape[1:] != self.real_shape:
            raise GanforgeError(
                f"generated images are {tuple(fake.shape[1:])} but the real ones are {self.real_shape} (C, H, W)"
            )
        sets = EvalSets(
            extractor=self.extractor,
            fake=self.extractor(fake, progress=self.progress),
            real=self.real,
            train=self.train if "memorisation" in metrics else None,
            real_labels=self.real_labels,
            real_classifier=self.real_classifier,
        )
        if self.classifier_extractor is not None and "modes" in metrics:
            sets.classifier = self.classifier_extractor(fake, progress=self.progress)
        self.last_fake = sets.fake  # the generated images' features, for metrics computed beside these
        results: dict = {"extractor": self.extractor.name, "n_fake": len(fake), "n_real": len(self.real)}
        for name in metrics:
            results.update(METRICS[name](sets))
        return results

    @property
    def train(self) -> Features | None:
        """Features of the training images (None without them), extracted on first use: only
        memorisation reads them, and a large training set takes minutes on a CPU."""
        if self._train is None and self._train_images is not None:
            self._train = cached_features(self.extractor, self._train_images, self.cache_dir, self.progress)
            self._train_images = None
        return self._train


def evaluate(fake: torch.Tensor, real: torch.Tensor, metrics: list[str], real_labels=None, train=None,
             train_labels=None, extractor: str = "auto", cache_dir=None, progress: bool = True) -> dict:
    """One-shot evaluation; see :class:`Evaluator`."""
    return Evaluator(real, real_labels, train, train_labels, extractor, cache_dir, progress)(fake, metrics)


# The number that decides "best" for each metric, and whether higher is better.
PRIMARY = {
    "fd": (lambda r: next(k for k in r if k.startswith(("fd_", "fid_"))), False),
    "kid": (lambda r: next(k for k in r if k.startswith("kid_") and not k.endswith("_std")), False),
    "is": (lambda r: next(k for k in r if k.startswith("is_") and not k.endswith("_std")), True),
    "pr": (lambda r: next(k for k in r if k.startswith("recall_")), True),
    "dc": (lambda r: next(k for k in r if k.startswith("coverage_")), True),
    "modes": (lambda r: "classes_covered", True),
    "memorisation": (lambda r: "memorisation_near_copy_share", False),
}


def primary_value(metric: str, results: dict) -> tuple[str, float, bool]:
    """(result name, value, higher_is_better) of the number that ranks runs by ``metric``."""
    pick, higher = PRIMARY[metric]
    key = pick(results)
    return key, float(results[key]), higher
