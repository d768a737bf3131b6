"""Evaluating a run (by sampling its generator) or a set of generated images: ``ganforge eval`` as a library call.

::

    from ganforge import evaluate_run

    results = evaluate_run("runs/00003-mnist", n=5000)  # against the run's own training data
    results = evaluate_run("samples.npz", real="mnist-test.npz", train="mnist", metrics="fd,memorisation")
    save_results(results)  # a run's results go to RUN/eval/step-N.json

This module does not import :mod:`ganforge.training`; it reads a run folder through
:mod:`ganforge.sampling` (its generator) and its config.json (its training data).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import GanforgeError

DEFAULT_METRICS = ["fd", "kid", "pr", "dc"]  # plus modes with labels, memorisation with held-out real images
DEFAULT_SEED = 0  # the samples' noise and the reference subset (periodic evaluation during training uses it too)


def run_folder(target: str | os.PathLike) -> Path | None:
    """The run folder of a run, one of its checkpoints or its best weights (RUN/best); None for a set of images."""
    target = Path(target)
    candidates = [target, target.parent.parent]
    if (target / "generator.safetensors").is_file():  # a generator folder directly in the run: RUN/best
        candidates.insert(1, target.parent)
    for folder in candidates:
        if (folder / "config.json").is_file() and (folder / "checkpoints").is_dir():
            return folder
    return None


def evaluate_run(
    target: str | os.PathLike,
    real: str | None = None,
    *,
    train: str | None = None,
    n: int = 10000,
    metrics: str | list[str] | None = None,
    extractor: str = "auto",
    seed: int = DEFAULT_SEED,
    cache_dir: str | os.PathLike | None = None,
    ema: bool = True,
    device: str = "cpu",
    progress: bool = True,
    say=print,
) -> dict:
    """Quality, diversity and memorisation of a run's samples, or of generated images, against real images.

    ``target``: a run folder, checkpoint folder or a run's ``best`` folder (``n`` samples of its
    generator, drawn with ``seed`` in float32; its moving-average weights unless ``ema=False``; on
    ``device``, where the feature networks run too), or a folder/zip/npz of generated
    images (a seeded subset of ``n``). ``real``: the reference images (default: the run's
    training data, at most ``n`` of them). ``train``: the training images (default: the run's
    data), compared for memorisation when ``real`` is a held-out set. ``metrics``: comma list or
    list of fd, kid, is, pr, dc, modes, memorisation (default: fd, kid, pr, dc, plus modes when
    the reference has labels and memorisation with a held-out ``real`` and training images).

    A differentially private run evaluated against a held-out ``real`` does not read its training images
    unless ``train`` names them (the domain feature network then learns the held-out images, and
    memorisation is skipped); ``say`` tells the user so in one line.

    A class-conditional run is sampled with balanced classes and, against a labelled reference,
    also gets per-class Fréchet distances and the Classification Accuracy Score
    (:func:`conditional_metrics`).

    Returns {result name: value} plus ``target``, ``real`` (its source) and ``step`` (the
    generator's training step; None for images). :func:`save_results` writes them.
    """
    from .evaluate import Evaluator
    from .names import parse_metrics
    from .images import load_at_own_size

    if n <= 1:
        raise GanforgeError(f"n must be at least 2, got {n}")
    target = Path(target)
    run_dir = run_folder(target)
    step, fake_labels, private = None, None, False
    if run_dir is not None or (target / "generator.safetensors").is_file():
        from ..sampling import load_generator

        gen = load_generator(target, device=device, ema=ema)
        fake_labels = gen.labels_for(n)  # balanced classes for a conditional run, else None
        fake, step = gen.sample(n, seed=seed, progress=progress, labels=fake_labels), gen.step
        private = gen.privacy is not None
    else:
        fake, _, _ = load_at_own_size(str(target), n=n, seed=seed, progress=progress)
    train_data = None
    if run_dir is not None:
        from ..config import Config

        train_data = Config.load(run_dir / "config.json").data
    held_out = real is not None
    if private and held_out and not train:
        # a private run's training images are read only when asked: the feature network learns the held-out ones
        train_data = None
        say("a differentially private run: its training images are not read (the feature network is trained on "
            "the held-out images, memorisation is skipped); pass --train SOURCE to read them")
    if train:
        train_data = train
    if real is None and train_data is None:
        raise GanforgeError("pass --real SOURCE: the real images to compare the generated ones with")

    # The training images matter only next to a held-out reference (memorisation, the domain network's training set).
    train_set = load_at_own_size(train_data, n=None, progress=progress) if held_out and train_data is not None else None
    real_images, real_labels, class_names = load_at_own_size(real if held_out else train_data, n=n, seed=seed,
                                                             progress=progress)
    if metrics:
        metrics = parse_metrics(metrics)
    else:
        metrics = DEFAULT_METRICS + (["modes"] if real_labels is not None else [])
        metrics += ["memorisation"] if train_set is not None else []

    evaluator = Evaluator(
        real_images, real_labels,
        train=train_set[0] if train_set is not None else None,
        train_labels=train_set[1] if train_set is not None else None,
        extractor=extractor, cache_dir=cache_dir, progress=progress, device=device,
    )
    results = evaluator(fake, metrics)
    if fake_labels is not None and real_labels is not None:
        results.update(conditional_metrics(evaluator, fake, fake_labels, real_images, real_labels, seed))
    if class_names and "classes_missing" in results:
        results["classes_missing"] = [class_names[i] for i in results["classes_missing"]]
    real_source = real if held_out else train_data if isinstance(train_data, str) else train_data.source
    results.update(target=str(target), real=str(real_source), step=step)
    return results


def conditional_metrics(evaluator, fake, fake_labels, real_images, real_labels, seed: int = 0) -> dict:
    """For a class-conditional generator: per-class Fréchet distance (generated class c against real
    class c, in the evaluator's feature space) and the Classification Accuracy Score (a classifier
    trained on the generated images with the labels they were drawn for, tested on the real ones;
    Ravuri & Vinyals 2019). CAS is meaningful against held-out real images. ``evaluator`` must just
    have evaluated ``fake``: its features are reused."""
    import numpy as np

    from .cas import classification_accuracy_score
    from .frechet import GaussianStats, frechet_distance

    fake_feats = evaluator.last_fake.features  # (N, D), extracted by the evaluation just run
    real_feats = evaluator.real.features
    fake_y, real_y = np.asarray(fake_labels), np.asarray(real_labels)
    per_class = []
    for c in range(int(max(fake_y.max(), real_y.max())) + 1):
        f, r = fake_feats[fake_y == c], real_feats[real_y == c]
        per_class.append(frechet_distance(GaussianStats.of(f), GaussianStats.of(r)) if min(len(f), len(r)) > 2
                         else float("nan"))
    name = evaluator.extractor.name
    return {
        f"fd_{name}_per_class": per_class,
        f"fd_{name}_class_mean": float(np.nanmean(per_class)),
        "cas": classification_accuracy_score(fake, fake_labels, real_images, real_labels, seed=seed),
    }


def results_path(results: dict) -> Path | None:
    """Where a run's results are kept by default: RUN/eval/step-N.json (None for a set of images)."""
    run_dir = run_folder(results["target"])
    step = results.get("step")
    return run_dir / "eval" / f"step-{step:08d}.json" if run_dir is not None and step is not None else None


def save_results(results: dict, path: str | os.PathLike | None = None) -> Path | None:
    """Write :func:`evaluate_run`'s results as JSON to ``path`` (default :func:`results_path`).

    Returns the path written, or None (no ``path`` and no run folder).
    """
    out = Path(path) if path else results_path(results)
    if out is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return out


def format_results(results: dict) -> str:
    """Results as an aligned two-column table."""
    width = max(len(k) for k in results)
    lines = []
    for key, value in results.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)
