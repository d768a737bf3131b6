"""Progress-dependent hyper-parameters: the ramps, what a step sets, lazy-regularisation optimiser
correction, the EMA ramp-up and path-length regularisation."""
import math

import pytest
import torch

from ganforge.config import Config, set_value
from ganforge.errors import ConfigError
from ganforge.models import config_from_section
from ganforge.training.runtime import Precision
from ganforge.training.schedule import ramp
from ganforge.training.state import TrainState
from ganforge.validation import validate
from helpers import TINY_MODELS

R3GAN_LIKE = {"schedule.shape": "cosine", "schedule.kimg": 0.064, "schedule.lr_end_factor": 0.25,
              "schedule.beta2_end": 0.99, "schedule.gamma_end_factor": 0.1, "schedule.ema_kimg_end": 0.5,
              "schedule.augment_p_end": 0.55, "g_optim.beta2": 0.9, "d_optim.beta2": 0.9, "reg.r1_gamma": 0.05,
              "reg.r2_gamma": 0.05, "reg.augment": "translation", "reg.augment_p": 0.0, "train.batch_size": 8}


def _cfg(arch="dcgan", **options):
    cfg = Config()
    set_value(cfg, "model.arch", arch)
    if arch == "dcgan":
        for key in ("z_dim", "g_width", "d_width"):
            set_value(cfg, f"model.{key}", TINY_MODELS["dcgan"][key])
    for key, value in options.items():
        set_value(cfg, key, value)
    return cfg


def _state(cfg, **model):
    model = model or {"resolution": 16, "channels": 1}
    return TrainState.from_config(cfg, config_from_section(cfg.model, **model), torch.device("cpu"),
                                  Precision("fp32", "cpu"))


def _points(state, n=8):
    return [(torch.rand(n, 1, 16, 16) * 2 - 1, None) for _ in range(state.d_steps)]


def test_ramps():
    assert [ramp("linear", t) for t in (0, 0.25, 1, 3)] == [0, 0.25, 1, 1]
    assert ramp("cosine", 0.5) == pytest.approx(0.5) and ramp("cosine", 0.25) == pytest.approx((1 - math.sqrt(0.5)) / 2)


def test_a_cosine_burn_in_sets_every_scheduled_value_for_the_images_seen():
    cfg = _cfg(**R3GAN_LIKE)
    state = _state(cfg)
    for _ in range(4):  # 4 steps of 8 images: the 5th starts after 32 of the ramp's 64 images
        state.train_step(_points(state))
    state.schedule.apply(state, 32)
    half = 0.5  # cosine at half the ramp
    assert state.g_opt.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 + (0.25 - 1) * half))
    assert state.d_opt.param_groups[0]["betas"] == pytest.approx((0.5, 0.9 + 0.09 * half))
    assert state.opts.reg.r1_gamma == pytest.approx(0.05 * (1 + (0.1 - 1) * half))
    assert cfg.reg.r1_gamma == 0.05  # the run's config is left as it was saved
    assert state.opts.augment.p == pytest.approx(0.55 * half)
    assert state.ema.beta == pytest.approx(0.5 ** (8 / (1000 * 0.25)))  # half-life 0 -> 0.5 kimg: 0.25 at half
    state.schedule.apply(state, 10_000)  # past the ramp: the end values
    assert state.g_opt.param_groups[0]["lr"] == pytest.approx(5e-5) and state.opts.augment.p == pytest.approx(0.55)


def test_the_average_is_g_itself_while_its_scheduled_half_life_is_zero():
    state = _state(_cfg(**R3GAN_LIKE))
    state.train_step(_points(state))  # first step: 0 images seen, half-life 0
    for e, g in zip(state.ema.model.parameters(), state.G.parameters()):
        assert e.equal(g)


def test_ema_rampup_caps_the_half_life_by_the_images_seen():
    state = _state(_cfg(**{"train.ema_kimg": 10.0, "train.ema_rampup": 0.05, "train.batch_size": 8}))
    state.schedule.apply(state, 20_000)  # 5% of 20k images: 1 kimg < 10
    assert state.ema.beta == pytest.approx(0.5 ** (8 / 1000))
    state.schedule.apply(state, 1_000_000)  # 50 kimg > 10: the configured half-life
    assert state.ema.beta == pytest.approx(0.5 ** (8 / 10_000))


def test_a_rollback_scale_survives_the_schedule():
    state = _state(_cfg(**R3GAN_LIKE))
    state.set_lr_scale(0.5)
    state.schedule.apply(state, 64)
    assert state.g_opt.param_groups[0]["lr"] == pytest.approx(5e-5 * 0.5)


def test_lazy_regularisation_corrects_the_optimiser_as_stylegan2_does():
    cfg = _cfg(**{"reg.r1_gamma": 0.01, "reg.r_interval": 16, "reg.lazy_adjust": True, "d_optim.lr": 0.0025,
                  "d_optim.beta1": 0.0, "d_optim.beta2": 0.99})
    state = _state(cfg)
    c = 16 / 17
    assert state.d_opt.param_groups[0]["lr"] == pytest.approx(0.0025 * c)
    assert state.d_opt.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** c))
    assert state.g_opt.param_groups[0]["lr"] == pytest.approx(2e-4)  # G is not regularised lazily here


@pytest.mark.parametrize("options, match", [
    ({"schedule.lr_end_factor": 0.5}, "needs a schedule.shape"),
    ({"schedule.shape": "linear", "schedule.lr_end_factor": 0.5}, "schedule.kimg > 0"),
    ({"schedule.shape": "linear", "schedule.kimg": 1, "schedule.beta2_end": 0.99, "g_optim.name": "sgd"}, "needs adam"),
    ({"schedule.shape": "linear", "schedule.kimg": 1, "schedule.augment_p_end": 0.5}, "needs reg.augment"),
    ({"schedule.shape": "linear", "schedule.kimg": 1, "schedule.gamma_end_factor": 0.5}, "set reg.r1_gamma"),
    ({"reg.pl_interval": 0}, "reg.pl_interval"),
])
def test_schedule_options_are_checked(options, match):
    with pytest.raises(ConfigError, match=match):
        validate(_cfg("dcgan", **options))


def test_path_length_regularisation_needs_a_style_based_generator():
    with pytest.raises(ConfigError, match="needs a style-based G"):
        _state(_cfg("dcgan", **{"reg.pl_weight": 2.0}))


def test_path_length_step_pulls_lengths_toward_their_running_mean():
    tiny = {f"model.{k}": v for k, v in TINY_MODELS["stylegan2"].items() if k not in ("resolution", "channels")}
    cfg = _cfg("stylegan2", **tiny, **{"reg.pl_weight": 2.0, "reg.pl_interval": 1, "train.batch_size": 4})
    state = _state(cfg, resolution=16, channels=1)
    mapping_before = [p.detach().clone() for p in state.G.mapping.parameters()]
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    stats = state.train_step([(real, None)])
    assert torch.isfinite(stats["penalty_g"]) and stats["penalty_g"] > 0
    assert state.pl_mean > 0  # moved from 0 toward the measured lengths (decay 0.01)
    assert any(not a.equal(b) for a, b in zip(mapping_before, state.G.mapping.parameters()))
    saved = state.state_dict()
    other = _state(cfg, resolution=16, channels=1)
    other.load_state_dict(saved)
    assert other.pl_mean.equal(state.pl_mean)
