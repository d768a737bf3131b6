"""Membership-inference audit of a trained run: does it reveal which images it was trained on?

Two attacks, each scoring a query image (higher: "it was a training image"):

* white-box, LOGAN (Hayes et al. 2019): D's logit for the query. D was fitted to call the training
  images real, so an overfitted D scores them higher than unseen images of the same distribution.
* black-box, GAN-Leaks full black-box (Chen et al. 2020): minus the squared L2 distance from the query
  to its nearest generated sample. A G that memorised reproduces its training images closely.

Members (training images) and non-members (held-out images of the same distribution) are queried in
equal numbers; the report gives each attack's ROC AUC with a bootstrap 95% interval, its true-positive
rate at 1% false positives, and a plot of the ROC curves. AUC 0.5 is chance; a private run should stay
near it, and its epsilon bounds how far any attack can get.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import GanforgeError
from ..pixels import from_uint8
from .roc import AttackResult


@torch.no_grad()
def discriminator_scores(D: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
                         batch_size: int = 500) -> np.ndarray:
    """images (N, C, R, R) in [-1, 1] [labels (N,)] -> D's logits (N,): LOGAN's white-box score."""
    D.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        c = labels[start:start + batch_size] if labels is not None else None
        out.append((D(x) if c is None else D(x, c)).float().cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def nearest_sample_scores(queries: torch.Tensor, generated: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """queries (N, C, R, R), generated (M, C, R, R), both in [-1, 1] -> minus each query's squared L2
    distance to its nearest generated image (N,): GAN-Leaks' full black-box score."""
    g = generated.flatten(1).float()  # (M, D)
    g_sq = g.square().sum(1)  # (M,)
    out = []
    for start in range(0, len(queries), batch_size):
        q = queries[start:start + batch_size].flatten(1).float()  # (b, D)
        d2 = q.square().sum(1, keepdim=True) - 2 * q @ g.T + g_sq  # (b, M) squared distances
        out.append(-d2.min(dim=1).values.clamp(min=0).cpu())
    return torch.cat(out).numpy()


@dataclass
class AuditReport:
    run: str
    step: int
    n_members: int
    n_non_members: int
    n_generated: int
    attacks: list[AttackResult] = field(default_factory=list)
    privacy: dict | None = None  # the run's DP guarantee, when it has one

    def to_dict(self) -> dict:
        return {"run": self.run, "step": self.step, "members": self.n_members, "non_members": self.n_non_members,
                "generated": self.n_generated, "privacy": self.privacy,
                "attacks": [a.to_dict() for a in self.attacks]}

    def table(self) -> str:
        lines = [f"{'attack':<24}{'AUC':>8}  {'95% interval':<17}{'TPR@1%FPR':>10}"]
        for a in self.attacks:
            lines.append(f"{a.name:<24}{a.auc:>8.3f}  [{a.auc_low:.3f}, {a.auc_high:.3f}]  {a.tpr_at_1pct_fpr:>9.3f}")
        return "\n".join(lines)


def _queries(source: str, geometry, n: int, seed: int, needs_labels: bool, progress: bool):
    """n images of ``source`` fitted as the run's training images were, in [-1, 1], with labels if needed."""
    from ..data import load_dataset

    data = load_dataset(source, resolution=geometry.resolution, channels=geometry.channels, fit=geometry.fit,
                        progress=progress)
    if needs_labels and data.labels is None:
        raise GanforgeError(f"the run's D is class-conditional: {source} must have labels")
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    labels = data.labels[pick] if needs_labels else None
    return from_uint8(data.images[pick]), labels


def audit_run(run: str | os.PathLike, members: str, non_members: str, n_queries: int = 1000,
              n_generated: int = 10000, seed: int = 0, device: str = "auto", batch_size: int = 500,
              progress: bool = True, bootstrap_rounds: int = 1000) -> AuditReport:
    """Run both attacks on ``run`` with up to ``n_queries`` members and as many non-members."""
    from ..devices import resolve_device
    from ..models import build_discriminator, model_config
    from ..runs import find_checkpoint, load_network_weights, read_network_meta
    from ..sampling import load_generator

    dev = resolve_device(device)
    folder = find_checkpoint(Path(run))
    gen = load_generator(folder, device=dev)
    meta = read_network_meta(folder, "discriminator")
    D = build_discriminator(meta["arch"], model_config(meta["arch"], **meta["model"]))
    load_network_weights(folder, "discriminator", D)
    D.to(dev)
    conditional = gen.num_classes > 0
    member_x, member_c = _queries(members, gen.geometry, n_queries, seed, conditional, progress)
    other_x, other_c = _queries(non_members, gen.geometry, n_queries, seed + 1, conditional, progress)
    n = min(len(member_x), len(other_x))  # equal numbers: AUC and TPR@FPR are then read at face value
    if n < 10:
        raise GanforgeError(f"the audit needs at least 10 members and 10 non-members, got {n}")
    member_x, other_x = member_x[:n].to(dev), other_x[:n].to(dev)
    member_c = member_c[:n].to(dev) if conditional else None
    other_c = other_c[:n].to(dev) if conditional else None

    labels = gen.labels_for(n_generated, None, seed) if conditional else None
    generated = gen.generate(gen.noise(n_generated, seed), batch_size, progress, labels=labels, seed=seed)
    report = AuditReport(str(run), gen.step, n, n, n_generated, privacy=gen.privacy)
    report.attacks.append(AttackResult.from_scores(
        "white-box (D logit)", discriminator_scores(D, member_x, member_c, batch_size),
        discriminator_scores(D, other_x, other_c, batch_size), bootstrap_rounds, seed))
    report.attacks.append(AttackResult.from_scores(
        "black-box (nearest G)", nearest_sample_scores(member_x, generated), nearest_sample_scores(other_x, generated),
        bootstrap_rounds, seed))
    return report


def save_report(report: AuditReport, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """audit.json and roc.png in ``out_dir``."""
    from .roc_plot import plot_roc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "audit.json"
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return json_path, plot_roc(report.attacks, out / "roc.png", title=f"membership inference, step {report.step}")
