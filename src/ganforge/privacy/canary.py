"""One-run canary audit of private training (Steinke, Nasr & Jagielski 2023): train once with canaries
whose membership is decided by secret coin flips, score each canary with the final D, guess, and turn
the correct guesses into a lower bound on epsilon (:mod:`.one_run`).

* Canaries: m images the run's data does not contain, each included in the training set independently
  with probability 1/2. They should be easy for a D to memorise one by one, so that a run whose privacy
  is broken shows it: by default they come from another data set than the training images.
* Score: the final D's logit on each canary (white-box: D's weights are released by DP-SGD too, and a
  record D was trained to call real scores higher). Guesses: "member" for the k+ highest scores,
  "non-member" for the k- lowest, no guess on the rest.
* Only public entry points: a :class:`~ganforge.config.Config`, :class:`~ganforge.training.loop.Trainer`
  on an in-memory data set (the training images and the included canaries), the run folder's final
  checkpoint and the privacy metadata saved beside it. The audit does not depend on how D's private step
  is written, which is what it tests.

A lower bound far above the epsilon a run claims means the claim is false (at the stated confidence);
a bound below it is consistent with the claim, not a proof of it.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import ImageDataset
from ..errors import GanforgeError
from ..pixels import from_uint8
from .one_run import best_possible_bound, epsilon_lower_bound
from .roc import roc_auc


def make_canaries(m: int, like: ImageDataset, source: str | None = None, seed: int = 0,
                  cache_dir: str | None = None) -> torch.Tensor:
    """m canaries at the geometry of ``like``: uint8 (m, C, R, R).

    Without ``source``, each canary is its own pattern of uniformly random pixels: nothing like the data
    and nearly orthogonal to every other canary, so a D that memorises records memorises each one apart
    (in a pilot on MNIST they separated far better than Fashion-MNIST images or held-out digits did).
    With ``source``, m images of it (a seeded choice) fitted as the training images were."""
    from ..data import load_dataset

    _, c, r, _ = like.images.shape
    generator = torch.Generator().manual_seed(seed)
    if source is None:
        return torch.randint(0, 256, (m, c, r, r), generator=generator, dtype=torch.uint8)
    g = like.geometry
    images = load_dataset(source, resolution=g.resolution, channels=g.channels, fit=g.fit, cache_dir=cache_dir,
                          progress=False).images
    if len(images) < m:
        raise GanforgeError(f"{source} has {len(images)} images, fewer than the {m} canaries asked for")
    return images[torch.randperm(len(images), generator=generator)[:m]].contiguous()


def draw_coins(m: int, seed: int) -> np.ndarray:
    """m independent fair coins (True: the canary joins the training set): shape (m,) bool."""
    return np.random.default_rng(seed).random(m) < 0.5


def with_canaries(data: ImageDataset, canaries: torch.Tensor, included: np.ndarray) -> ImageDataset:
    """``data`` plus the included canaries (uint8 (m, C, R, R) at the data's geometry), appended after the
    training images (the private run's sampling is Poisson, so position does not matter)."""
    if canaries.shape[1:] != data.images.shape[1:]:
        raise GanforgeError(f"canaries of shape {tuple(canaries.shape[1:])} do not fit the data's "
                            f"{tuple(data.images.shape[1:])}")
    if data.labels is not None:
        raise GanforgeError("the canary audit trains an unconditional run; drop --conditional")
    images = torch.cat([data.images, canaries[torch.from_numpy(included)]]).contiguous()  # (N + m_in, C, R, R)
    return ImageDataset(images, None, [], data.geometry, data.source)


def guesses(scores: np.ndarray, k_pos: int, k_neg: int) -> np.ndarray:
    """+1 ("member") for the k_pos highest scores, -1 for the k_neg lowest, 0 (abstain) for the rest: (m,)."""
    m = len(scores)
    if k_pos < 0 or k_neg < 0 or k_pos + k_neg > m:
        raise GanforgeError(f"--guesses must fit the {m} canaries: k+ + k- = {k_pos + k_neg}")
    order = np.argsort(-scores, kind="stable")  # highest first
    out = np.zeros(m, dtype=np.int64)
    out[order[:k_pos]] = 1
    out[order[m - k_neg:]] = -1
    return out


@dataclass
class CanaryResult:
    """What one audit found (the counts, the bound) and what the run claims."""

    canaries: int  # m
    included: int  # canaries in the training set (the coins' outcome)
    k_pos: int
    k_neg: int
    guesses: int  # r = k_pos + k_neg
    correct: int  # v
    confidence: float
    delta: float  # the delta the bound is stated at (the run's)
    epsilon_lower: float  # the audit's lower bound on epsilon at delta
    epsilon_lower_max: float  # the bound if every guess were right (what these counts could show at most)
    epsilon_claimed: float | None  # what the run's accountant reports (None: not a private run)
    auc: float  # ROC AUC of the scores, members against non-members (0.5: chance), for reading, not the bound

    @property
    def violation(self) -> bool:
        """The audit refutes the run's claim: its lower bound exceeds the claimed epsilon."""
        return self.epsilon_claimed is not None and self.epsilon_lower > self.epsilon_claimed

    def to_dict(self) -> dict:
        return {**asdict(self), "violation": self.violation}


def judge(scores: np.ndarray, included: np.ndarray, k_pos: int, k_neg: int, delta: float,
          confidence: float = 0.95, epsilon_claimed: float | None = None) -> CanaryResult:
    """scores (m,), included (m,) bool -> the guesses' counts and the lower bound on epsilon at delta."""
    guess = guesses(scores, k_pos, k_neg)  # (m,) in {-1, 0, 1}
    truth = np.where(included, 1, -1)
    m, r = len(scores), int(k_pos + k_neg)
    v = int(((guess != 0) & (guess == truth)).sum())
    return CanaryResult(
        canaries=m, included=int(included.sum()), k_pos=k_pos, k_neg=k_neg, guesses=r, correct=v,
        confidence=confidence, delta=delta, epsilon_lower=epsilon_lower_bound(m, r, v, delta, confidence),
        epsilon_lower_max=best_possible_bound(m, r, delta, confidence), epsilon_claimed=epsilon_claimed,
        auc=roc_auc(scores[included], scores[~included]) if 0 < included.sum() < m else float("nan"))


@torch.no_grad()
def score_with_final_d(run_dir: str | os.PathLike, canaries: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """The final checkpoint's D on each canary (uint8 (m, C, R, R)): logits (m,)."""
    from ..models import build_discriminator, model_config
    from ..runs import find_checkpoint, load_network_weights, read_network_meta
    from .audit import discriminator_scores

    folder = find_checkpoint(Path(run_dir))
    meta = read_network_meta(folder, "discriminator")
    D = build_discriminator(meta["arch"], model_config(meta["arch"], **meta["model"]))
    load_network_weights(folder, "discriminator", D)
    return discriminator_scores(D, from_uint8(canaries), None, batch_size)


def run_privacy(run_dir: str | os.PathLike) -> dict | None:
    """The privacy metadata saved beside the run's final D (None for a run without DP)."""
    from ..runs import find_checkpoint, read_network_meta

    return read_network_meta(find_checkpoint(Path(run_dir)), "discriminator").get("privacy")


def save_result(result: CanaryResult, scores: np.ndarray, included: np.ndarray, out_dir: str | os.PathLike,
                **about) -> Path:
    """canary.json (the result and ``about``: the seed, the canaries' source) and canary-scores.npz (each
    canary's score and coin) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "canary-scores.npz", scores=scores, included=included)
    path = out / "canary.json"
    path.write_text(json.dumps({**result.to_dict(), **about}, indent=2) + "\n")
    return path


def canary_audit(cfg, run_dir: str | os.PathLike, m: int, k_pos: int | None = None, k_neg: int = 0,
                 source: str | None = None, seed: int | None = None, confidence: float = 0.95,
                 dataset: ImageDataset | None = None) -> CanaryResult:
    """Train ``cfg`` in ``run_dir`` on its data plus the canaries that the coins let in, score the canaries
    with the final D, and judge the guesses (k_pos: m // 5 by default); results in ``run_dir``/audit.

    ``seed`` draws the canaries and the coins (None: a fresh one from the operating system, saved in
    canary.json); training's own randomness is separate (a private run's noise and sampling come from its
    secret seed). ``dataset``: the training images already loaded (else ``cfg.data``)."""
    from ..data import load_dataset
    from ..training.loop import Trainer
    from .accounting import default_delta

    if cfg.model.conditional:
        raise GanforgeError("the canary audit trains an unconditional run; drop --conditional")
    if m < 2:
        raise GanforgeError("the canary audit needs at least 2 canaries")
    k_pos = m // 5 if k_pos is None else k_pos
    guesses(np.zeros(m), k_pos, k_neg)  # the counts fit m: fail before training, not after
    d = cfg.data
    base = dataset or load_dataset(d.source, resolution=d.resolution, channels=d.channels, fit=d.fit,
                                   max_bad_fraction=d.max_bad_fraction, limit=d.limit, cache_dir=d.cache_dir,
                                   progress=cfg.train.progress)
    base = ImageDataset(base.images, None, [], base.geometry, base.source)  # unconditional: labels unused
    seed = secrets.randbits(63) if seed is None else seed
    canaries = make_canaries(m, base, source, seed, d.cache_dir)  # (m, C, R, R) uint8
    included = draw_coins(m, seed)  # (m,) bool: the secret the attack tries to recover
    trained = Trainer(cfg, run_dir, dataset=with_canaries(base, canaries, included)).run()
    if trained["interrupted"]:
        raise GanforgeError("training was interrupted before its limit; the audit needs the finished run")
    scores = score_with_final_d(run_dir, canaries)  # (m,)
    privacy = run_privacy(run_dir)
    delta = privacy["delta"] if privacy else (cfg.dp.delta or default_delta(len(base) + int(included.sum())))
    result = judge(scores, included, k_pos, k_neg, delta, confidence,
                   epsilon_claimed=privacy["epsilon"] if privacy else None)
    save_result(result, scores, included, Path(run_dir) / "audit", seed=seed, source=source, privacy=privacy)
    return result
