"""Options refused under differential privacy, each with its reason.

The guarantee covers what D's private step computes and everything derived from D's weights. An
option that lets the private images or labels reach the weights any other way, or that couples the
records of a batch, would void it without a trace in epsilon; so it is refused before anything loads.
"""
from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .accounting import ACCOUNTANTS
from .labels import LABEL_MODES

PRIVATE_ARCHITECTURES = ("dcgan",)  # Ds built from layers Opacus computes per-sample gradients of, without BatchNorm


def check_privacy_values(cfg: Config) -> None:
    """The dp section's own values (checked whether DP is on or not)."""
    dp = cfg.dp
    if dp.accountant not in ACCOUNTANTS:
        raise ConfigError(f"dp.accountant must be one of {', '.join(ACCOUNTANTS)}, got {dp.accountant!r}")
    if dp.labels not in LABEL_MODES:
        raise ConfigError(f"dp.labels must be one of {', '.join(LABEL_MODES)}, got {dp.labels!r}")
    if dp.epsilon is not None and dp.epsilon <= 0:
        raise ConfigError("dp.epsilon must be positive")
    if dp.noise is not None and dp.noise <= 0:
        raise ConfigError("dp.noise (the noise multiplier) must be positive")
    if dp.delta is not None and not 0 < dp.delta < 1:
        raise ConfigError("dp.delta must be in (0, 1); leave it unset for a value below 1/N")
    if dp.max_grad_norm <= 0 or dp.label_noise <= 0:
        raise ConfigError("dp.max_grad_norm and dp.label_noise must be positive")


def _refusals(cfg: Config) -> list[str]:
    """Why each option set in ``cfg`` cannot be used in private training."""
    m, r, t = cfg.model, cfg.reg, cfg.train
    out = []
    if m.arch not in PRIVATE_ARCHITECTURES:
        out.append(f"model.arch={m.arch}: private training supports {', '.join(PRIVATE_ARCHITECTURES)} so far "
                   "(a D without BatchNorm or spectral norm whose per-sample gradients Opacus computes)")
    if getattr(m, "d_norm", "none") == "batch":
        out.append("model.d_norm=batch: BatchNorm mixes the records of a batch, so no gradient belongs to one "
                   "record; use model.d_norm=group or none")
    if getattr(m, "d_mbstd", False):
        out.append("model.d_mbstd: the minibatch standard deviation mixes the records of a batch; set it to false")
    if getattr(m, "d_spectral_norm", False):
        out.append("model.d_spectral_norm: Opacus computes per-sample gradients of plain weights, not of "
                   "spectral normalisation's parametrisation; set it to false")
    for name in ("r1_gamma", "r2_gamma", "gp_weight"):
        if getattr(r, name) > 0:
            out.append(f"reg.{name}: gradient penalties need a double backward pass whose per-sample gradients "
                       "Opacus cannot clip; set it to 0")
    if r.d_clip_norm > 0:
        out.append("reg.d_clip_norm: D's gradients are clipped per record by dp.max_grad_norm; set it to 0")
    if r.ada:
        out.append("reg.ada: its probability follows D's outputs on the private images outside the private step; "
                   "leave it off")
    positional = "is drawn per batch position, so adding a record would change the draws of the records after it"
    if r.augment:
        out.append(f"reg.augment: augmentation {positional}; set it to an empty string")
    if r.instance_noise > 0:
        out.append(f"reg.instance_noise: instance noise {positional}; set it to 0")
    if getattr(m, "d_dropout", 0) > 0:
        out.append(f"model.d_dropout: D's dropout mask {positional}; set it to 0")
    if cfg.loss.d == "relativistic":
        out.append("loss.d=relativistic: it pairs each record with a fake by batch position, so one record's "
                   "term depends on the others; use minimax, hinge, wasserstein or least_squares")
    if cfg.loss.g == "relativistic":
        out.append("loss.g=relativistic: G's loss would read D's outputs on private images; use nonsaturating")
    if t.eval_every > 0 and t.eval_data is None:
        out.append("train.eval_every: evaluating (and keeping the best weights) on the training images spends "
                   "privacy; name public or held-out images with train.eval_data, or evaluate afterwards: "
                   "ganforge eval RUN --real HELDOUT")
    if t.precision == "bf16":
        out.append("train.precision=bf16: per-record gradient norms are taken in float32; use fp32 (auto does)")
    if t.compile != "none":
        out.append(f"train.compile={t.compile}: Opacus computes per-record gradients with hooks on D's eager "
                   "layers, which a compiled D bypasses; set it to none")
    return out


def check_private(cfg: Config) -> None:
    """Raise a ConfigError naming every option that private training refuses, each with its reason."""
    check_privacy_values(cfg)
    if not cfg.dp.enabled:
        return
    refused = _refusals(cfg)
    if len(refused) == 1:
        raise ConfigError(f"differential privacy: {refused[0]}")
    if refused:
        raise ConfigError(f"differential privacy refuses {len(refused)} options:\n" +
                          "\n".join(f"  {reason}" for reason in refused))
    t = cfg.train
    if cfg.dp.noise is None and t.max_steps is None and t.max_epochs is None:
        raise ConfigError("dp.epsilon plans the noise for the run's length: set train.max_steps or "
                          "train.max_epochs (a time budget alone does not fix it), or give dp.noise")

