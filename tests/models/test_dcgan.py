import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.pixels import from_uint8, to_uint8


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_discriminator_norms(norm):
    cfg = model_config("dcgan", resolution=32, channels=3, d_width=8, d_norm=norm)
    D = build_discriminator("dcgan", cfg)
    kinds = {type(m).__name__ for m in D.modules()}
    assert ("BatchNorm2d" in kinds) == (norm == "batch")
    assert ("GroupNorm" in kinds) == (norm == "group")
    # without BatchNorm each sample's logit is independent of the rest of the batch
    x = torch.randn(4, 3, 32, 32)
    if norm != "batch":
        torch.testing.assert_close(D(x)[:2], D(x[:2]))


def test_classic_initialisation():
    cfg = model_config("dcgan", resolution=64, channels=3)
    G = build_generator("dcgan", cfg)
    conv = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    w = torch.cat([m.weight.flatten() for m in conv])
    assert abs(w.mean().item()) < 1e-3
    assert abs(w.std().item() - 0.02) < 1e-3


def test_widths_capped_at_eight_times_base():
    cfg = model_config("dcgan", resolution=256, channels=3, g_width=4, d_width=4)
    D = build_discriminator("dcgan", cfg)
    widths = [m.out_channels for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(widths) == 32


@pytest.mark.parametrize("resolution", [8, 48, 512])
def test_bad_resolution_rejected(resolution):
    with pytest.raises(ConfigError, match="power of two"):
        build_generator("dcgan", model_config("dcgan", resolution=resolution))


def test_unknown_model_and_option():
    with pytest.raises(ConfigError, match="unknown model"):
        model_config("nope")
    with pytest.raises(ConfigError, match="widht"):
        model_config("dcgan", widht=3)


def test_uint8_round_trip():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    assert torch.equal(to_uint8(from_uint8(pixels)), pixels)


def test_classifier_head_returns_class_logits_beside_the_unchanged_logit():
    torch.manual_seed(0)
    cfg = model_config("dcgan", resolution=16, channels=1, d_width=8, d_norm="group", num_classes=3,
                       d_classifier=True)
    D = build_discriminator("dcgan", cfg)
    x, c = torch.rand(4, 1, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 1])
    logits, classes = D(x, c, classes=True)
    assert classes.shape == (4, 3)
    torch.testing.assert_close(logits, D(x, c), rtol=0, atol=0)  # the head adds nothing to the real/fake logit
    plain = build_discriminator("dcgan", model_config("dcgan", resolution=16, channels=1, d_width=8,
                                                      d_norm="group", num_classes=3))
    with pytest.raises(ValueError, match="no classifier head"):
        plain(x, c, classes=True)
    with pytest.raises(ValueError, match="needs a class-conditional model"):
        build_discriminator("dcgan", model_config("dcgan", resolution=16, channels=1, d_classifier=True))
