"""Named presets of training options, applied before a config file and command-line overrides.

``classic`` is the original DCGAN set-up (the ``Config`` defaults). ``stable`` adds the remedies
that measured better on the benchmarks in docs/stability.md (2-D mixtures, Fashion-MNIST): an R1
penalty on D (lazy, every 4 D steps), a minibatch standard-deviation feature in D, a moving
average of G's weights for sampling, and batches of 64 (more updates per second on a CPU).
Rejected on the same benchmarks: hinge loss + spectral norm (lost modes on the mixtures), D
without BatchNorm (worse images), a 4x faster D learning rate (collapsed to 6 of 10 classes).
"""
from __future__ import annotations

from .errors import ConfigError

RECIPES: dict[str, dict[str, object]] = {
    "classic": {},
    "stable": {
        "reg.r1_gamma": 1.0,
        "reg.r_interval": 4,
        "model.d_mbstd": True,
        "train.ema_kimg": 10.0,
        "train.batch_size": 64,
    },
    # SNGAN (Miyato et al. 2018), the authors' CIFAR-10 settings: hinge loss, Adam (0, 0.9) at 2e-4, 5 D steps
    # per G step, batch 64, learning rates decayed linearly to 0 over 50k G steps (50k x 5 x 64 images).
    "sngan": {
        "model.arch": "resnet",
        "loss.d": "hinge", "loss.g": "hinge",
        "g_optim.lr": 2e-4, "g_optim.beta1": 0.0, "g_optim.beta2": 0.9,
        "d_optim.lr": 2e-4, "d_optim.beta1": 0.0, "d_optim.beta2": 0.9,
        "train.d_steps": 5, "train.batch_size": 64,
        "schedule.shape": "linear", "schedule.kimg": 16_000.0, "schedule.lr_end_factor": 0.0,
    },
    # StyleGAN2 as stylegan2-ada's `cifar` configuration: non-saturating logistic loss, Adam (0, 0.99) at
    # 0.0025, lazy R1 (gamma 0.01 every 16 D steps, optimiser corrected by 16/17), no path length; G's
    # optimiser as the reference builds it with its interval of 4 (lr 0.002, beta2 0.99^0.8); average with a
    # 500 kimg half-life ramped up over 5% of the images seen; batch 64; ADA towards r_t = 0.6 over 500 kimg.
    "stylegan2": {
        "model.arch": "stylegan2",
        "loss.d": "minimax", "loss.g": "nonsaturating",
        "g_optim.lr": 0.002, "g_optim.beta1": 0.0, "g_optim.beta2": 0.99 ** 0.8,
        "d_optim.lr": 0.0025, "d_optim.beta1": 0.0, "d_optim.beta2": 0.99,
        "reg.r1_gamma": 0.01, "reg.r_interval": 16, "reg.lazy_adjust": True,
        "reg.augment": "translation,cutout,colour", "reg.ada": True, "reg.ada_kimg": 500.0,
        "train.batch_size": 64, "train.ema_kimg": 500.0, "train.ema_rampup": 0.05,
    },
    # R3GAN (Huang et al. 2024), the reference CIFAR-10 configuration: relativistic pairing loss, R1 + R2 on
    # every D step, Adam beta1 0, and a half-cosine burn-in over 20M images of lr 2e-4 -> 5e-5, beta2
    # 0.9 -> 0.99, gamma 0.05 -> 0.005, the average's half-life 0 -> 5,000 kimg and the augmentation
    # probability 0 -> 0.55; batch 512.
    "r3gan": {
        "model.arch": "r3gan",
        "loss.d": "relativistic", "loss.g": "relativistic",
        "g_optim.lr": 2e-4, "g_optim.beta1": 0.0, "g_optim.beta2": 0.9,
        "d_optim.lr": 2e-4, "d_optim.beta1": 0.0, "d_optim.beta2": 0.9,
        "reg.r1_gamma": 0.05, "reg.r2_gamma": 0.05, "reg.r_interval": 1,
        "reg.augment": "translation,cutout,colour", "reg.augment_p": 0.0,
        "train.batch_size": 512,
        "schedule.shape": "cosine", "schedule.kimg": 20_000.0, "schedule.lr_end_factor": 0.25,
        "schedule.beta2_end": 0.99, "schedule.gamma_end_factor": 0.1, "schedule.ema_kimg_end": 5_000.0,
        "schedule.augment_p_end": 0.55,
    },
}

def _small(name: str, module: str, **extra) -> dict[str, object]:
    """The published recipe ``name`` on the CPU-sized networks of ``models.<module>.SMALL_OPTIONS``."""
    import importlib

    small = importlib.import_module(f"ganforge.models.{module}").SMALL_OPTIONS
    return {**RECIPES[name], **{f"model.{k}": v for k, v in small.items()}, **extra}


# CPU-sized variants: the same training hyper-parameters on networks of 0.4M parameters or fewer, batch 64.
# r3gan-small also shortens the burn-in to 1,000 kimg, which a CPU sees in hours rather than weeks, and the
# average's final half-life with it, keeping the reference's ratio (5,000 of 20,000 kimg): left at 5,000 kimg,
# the cosine ramp would already stand at 60 kimg after 70 kimg seen, averaging nearly the whole run.
R3GAN_SMALL_BURN_IN_KIMG = 1_000.0
RECIPES["sngan-small"] = _small("sngan", "resnet")
RECIPES["stylegan2-small"] = _small("stylegan2", "stylegan2")
RECIPES["r3gan-small"] = _small("r3gan", "r3gan", **{
    "train.batch_size": 64, "schedule.kimg": R3GAN_SMALL_BURN_IN_KIMG,
    "schedule.ema_kimg_end": RECIPES["r3gan"]["schedule.ema_kimg_end"] * R3GAN_SMALL_BURN_IN_KIMG
    / RECIPES["r3gan"]["schedule.kimg"]})
# Differentially private training (docs/privacy.md): DCGAN with GroupNorm and no minibatch statistics in D (each
# record's gradient must be its own), a budget of epsilon 10 at delta below 1/N. Chosen on Fashion-MNIST at epsilon
# 10 (3 epochs of 50,000 training images, scored on 10,000 other training images, never the test set): one D step
# per G step (10, after Bie et al. 2023, let D win outright within the few thousand steps a CPU run takes), batch
# 64 (more steps beat less noise per step: 32, 128 and 512 scored lower) and width-32 networks (a quarter of D's
# parameters, so a quarter of the noise's energy; 2.7x the images per second of width 64 in a probe). MSGAN's
# mode-seeking term (weight 1) then raised the validation CAS from 0.41 to 0.49: without it G drew nearly one
# garment per class; it reads only G's samples, so it costs no privacy.
RECIPES["dp"] = {
    "model.arch": "dcgan", "model.d_norm": "group", "model.d_mbstd": False,
    "model.g_width": 32, "model.d_width": 32,
    "train.batch_size": 64, "train.d_steps": 1, "train.ema_kimg": 10.0, "reg.mode_seeking": 1.0,
    "dp.epsilon": 10.0, "dp.max_grad_norm": 1.0,
}
DEFAULT_RECIPE = "stable"  # what `ganforge train` applies when no --recipe is given


def recipe_overrides(name: str) -> list[tuple[str, object]]:
    """The (key, value) pairs of a recipe."""
    try:
        return list(RECIPES[name].items())
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
