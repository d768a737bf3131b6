"""Every option that would let private data past D's private step is refused, with its reason."""
import pytest

from helpers import tiny_config
from ganforge.errors import ConfigError

DP = ["dp.epsilon=5", "model.d_norm=group", "train.max_steps=4"]


@pytest.mark.parametrize("option, reason", [
    ("model.d_norm=batch", "BatchNorm mixes the records"),
    ("model.d_mbstd=true", "minibatch standard deviation"),
    ("model.d_spectral_norm=true", "spectral normalisation"),
    ("reg.r1_gamma=1", "gradient penalties"),
    ("reg.r2_gamma=1", "gradient penalties"),
    ("reg.gp_weight=10", "gradient penalties"),
    ("reg.d_clip_norm=1", "clipped per record"),
    ("reg.ada=true", "reg.ada"),
    ("train.eval_every=10", "held-out"),
    ("train.precision=bf16", "float32"),
    ("reg.augment=translation", "augmentation is drawn per batch position"),
    ("reg.instance_noise=0.1", "instance noise is drawn per batch position"),
    ("model.d_dropout=0.2", "dropout mask is drawn per batch position"),
    ("loss.d=relativistic", "pairs each record with a fake by batch position"),
])
def test_refused_options_name_their_reason(tiny_npz, option, reason):
    extra = [option] + (["reg.augment=translation"] if option == "reg.ada=true" else [])
    extra += ["loss.g=relativistic"] if option == "loss.d=relativistic" else []
    with pytest.raises(ConfigError, match=reason):
        tiny_config(tiny_npz, *DP, *extra)


def test_the_relativistic_g_loss_and_other_architectures_are_refused(tiny_npz):
    with pytest.raises(ConfigError, match="loss.g=relativistic"):
        tiny_config(tiny_npz, *DP, "loss.d=relativistic", "loss.g=relativistic")
    with pytest.raises(ConfigError, match="model.arch=resnet"):
        tiny_config(tiny_npz, "model.arch=resnet", "dp.epsilon=5", "train.max_steps=4")


def test_a_budget_needs_a_planned_length(tiny_npz):
    with pytest.raises(ConfigError, match="time budget alone"):
        tiny_config(tiny_npz, "dp.epsilon=5", "model.d_norm=group", "train.max_time=10s")
    cfg = tiny_config(tiny_npz, "dp.noise=1", "model.d_norm=group", "train.max_time=10s")  # noise given: fine
    assert cfg.dp.enabled
    held_out = tiny_config(tiny_npz, *DP, "train.eval_every=2", f"train.eval_data={tiny_npz}")  # named data: fine
    assert held_out.train.eval_data == str(tiny_npz)


def test_allowed_options_pass_and_values_are_checked(tiny_npz):
    cfg = tiny_config(tiny_npz, *DP, "model.d_norm=none", "train.d_steps=3", "train.ema_kimg=0.01", "loss.d=hinge",
                      "loss.g=hinge", "reg.label_smoothing=0.1", "reg.mode_seeking=1")
    assert cfg.dp.enabled and cfg.dp.epsilon == 5
    for bad in ("dp.accountant=gdp", "dp.labels=real", "dp.epsilon=-1", "dp.delta=1", "dp.max_grad_norm=0"):
        with pytest.raises(ConfigError, match="dp\\."):
            tiny_config(tiny_npz, *DP, bad)


def test_every_refused_option_is_listed_at_once(tiny_npz):
    refused = ["model.d_norm=batch", "reg.r1_gamma=1", "reg.augment=cutout", "reg.instance_noise=0.1",
               "model.d_dropout=0.1", "train.precision=bf16"]
    with pytest.raises(ConfigError) as caught:
        tiny_config(tiny_npz, *DP, *refused)
    message = str(caught.value)
    assert message.startswith(f"differential privacy refuses {len(refused)} options")
    for option in refused:
        assert option.split("=")[0] in message, option
