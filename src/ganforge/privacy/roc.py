"""ROC curves, AUC with a bootstrap interval and the true-positive rate at a low false-positive rate.

Scores: higher means "member". Written with NumPy alone (no scikit-learn at run time); the tests check
them against scikit-learn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def roc_curve(members: np.ndarray, non_members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr), both from 0 to 1, over every threshold between distinct scores (ties move together)."""
    scores = np.concatenate([members, non_members]).astype(np.float64)
    is_member = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
    order = np.argsort(-scores, kind="mergesort")
    scores, is_member = scores[order], is_member[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # a threshold after each distinct score
    tp = np.cumsum(is_member)[last_of_tie]
    fp = np.cumsum(1 - is_member)[last_of_tie]
    tpr = np.r_[0.0, tp / max(len(members), 1)]
    fpr = np.r_[0.0, fp / max(len(non_members), 1)]
    return fpr, tpr


def roc_auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """P(score of a random member > score of a random non-member) + half the chance of a tie."""
    fpr, tpr = roc_curve(members, non_members)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids: ties count half


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float = 0.01) -> float:
    """The highest true-positive rate of a threshold whose false-positive rate is at most ``target``."""
    return float(tpr[fpr <= target + 1e-12].max())


def bootstrap_auc(members: np.ndarray, non_members: np.ndarray, rounds: int = 1000, level: float = 0.95,
                  seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of the AUC: members and non-members resampled separately."""
    rng = np.random.default_rng(seed)
    values = [roc_auc(rng.choice(members, len(members)), rng.choice(non_members, len(non_members)))
              for _ in range(rounds)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass
class AttackResult:
    """One membership-inference attack's success."""

    name: str
    auc: float
    auc_low: float  # bootstrap interval (95%)
    auc_high: float
    tpr_at_1pct_fpr: float
    fpr: np.ndarray  # the ROC curve
    tpr: np.ndarray

    @classmethod
    def from_scores(cls, name: str, members: np.ndarray, non_members: np.ndarray, rounds: int = 1000,
                    seed: int = 0) -> "AttackResult":
        fpr, tpr = roc_curve(members, non_members)
        low, high = bootstrap_auc(members, non_members, rounds, seed=seed)
        return cls(name, roc_auc(members, non_members), low, high, tpr_at_fpr(fpr, tpr, 0.01), fpr, tpr)

    def to_dict(self) -> dict:
        return {"attack": self.name, "auc": round(self.auc, 4), "auc_ci95": [round(self.auc_low, 4),
                round(self.auc_high, 4)], "tpr_at_1pct_fpr": round(self.tpr_at_1pct_fpr, 4)}
