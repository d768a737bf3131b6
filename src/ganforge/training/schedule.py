"""Hyper-parameters that follow training progress, set before each step from the images seen so far.

* ``schedule.*`` (R3GAN's burn-in; SNGAN's linear learning-rate decay): each scheduled value moves
  from its configured start to its end over ``schedule.kimg`` thousand real images, along a straight
  line or a half cosine, v(t) = start + (end - start) (1 - cos(pi t / T)) / 2, then stays at the end.
* ``train.ema_rampup`` (StyleGAN2): the average's half-life is at most ``ema_rampup`` x images seen,
  so early in training the average follows G closely instead of holding on to its first weights.

Everything is a function of the images seen, so a resumed run (or a DDP rank, or a federated site
handed the same counters) sets the same values: there is no schedule state to checkpoint.
"""
from __future__ import annotations

import math

from ..config import Config


def ramp(shape: str, progress: float) -> float:
    """Share of the way from start to end, 0..1, at ``progress`` (0..1 and beyond) of the ramp."""
    t = min(max(progress, 0.0), 1.0)
    return t if shape == "linear" else (1 - math.cos(math.pi * t)) / 2


class Schedule:
    """The progress-dependent values of one run; :meth:`apply` sets them on a TrainState."""

    def __init__(self, cfg: Config, g_opt, d_opt, reg, ema_kimg: float):
        # reg: the StepOptions' own RegularizerConfig (a copy: the run's config is left as saved)
        self.cfg, self.rampup = cfg.schedule, cfg.train.ema_rampup
        self.start_beta2 = [[g["betas"][1] for g in opt.param_groups if "betas" in g] for opt in (g_opt, d_opt)]
        self.start_gamma = (reg.r1_gamma, reg.r2_gamma)
        self.start_ema_kimg = ema_kimg
        self.start_augment_p = cfg.reg.augment_p if cfg.reg.augment_p is not None else 1.0

    @property
    def active(self) -> bool:
        return self.cfg.shape != "none" or self.rampup > 0

    def _value(self, start: float, end: float | None, share: float) -> float:
        return start if end is None else start + (end - start) * share

    def values(self, images: int) -> dict[str, float]:
        """The scheduled values after ``images`` real images (only those that are scheduled)."""
        sc, out = self.cfg, {}
        if sc.shape != "none":
            share = ramp(sc.shape, images / (1000.0 * sc.kimg))
            if sc.lr_end_factor is not None:
                out["lr_factor"] = self._value(1.0, sc.lr_end_factor, share)
            if sc.beta2_end is not None:
                out["beta2_share"] = share
            if sc.gamma_end_factor is not None:
                out["gamma_factor"] = self._value(1.0, sc.gamma_end_factor, share)
            if sc.augment_p_end is not None:
                out["augment_p"] = self._value(self.start_augment_p, sc.augment_p_end, share)
        if sc.ema_kimg_end is not None or self.rampup > 0:  # the half-life moves only then
            ema = self._value(self.start_ema_kimg, sc.ema_kimg_end, share) if sc.ema_kimg_end is not None \
                else self.start_ema_kimg  # (validation: an end value comes with a shape, so share is set)
            out["ema_kimg"] = min(ema, self.rampup * images / 1000.0) if self.rampup > 0 else ema
        return out

    def apply(self, state, images: int) -> None:
        """Set the values for a step that starts after ``images`` real images on ``state`` (a TrainState)."""
        v = self.values(images)
        for opt, lrs, beta2s in zip((state.g_opt, state.d_opt), state.base_lr, self.start_beta2):
            for i, group in enumerate(opt.param_groups):
                group["lr"] = lrs[i] * v.get("lr_factor", 1.0) * state.lr_scale
                if "beta2_share" in v:
                    b2 = self._value(beta2s[i], self.cfg.beta2_end, v["beta2_share"])
                    group["betas"] = (group["betas"][0], b2)
        reg = state.opts.reg
        if "gamma_factor" in v:
            reg.r1_gamma, reg.r2_gamma = (g * v["gamma_factor"] for g in self.start_gamma)
        if "augment_p" in v:
            state.opts.augment.p = v["augment_p"]
        if "ema_kimg" in v and state.ema is not None:
            state.ema.set_half_life(v["ema_kimg"])
