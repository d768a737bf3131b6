import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.losses import d_loss, g_loss


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_minimax_d_loss_matches_hand_computed_value():
    real, fake = [2.0, -1.0], [0.5, -3.0]
    expected = -sum(math.log(sigmoid(x)) for x in real) / 2 - sum(math.log(1 - sigmoid(x)) for x in fake) / 2
    got = d_loss("minimax", torch.tensor(real), torch.tensor(fake))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_generator_losses_match_hand_computed_values():
    fake = [0.5, -3.0, 1.25]
    saturating = sum(math.log(1 - sigmoid(x)) for x in fake) / 3  # G minimises E[log(1 - D(G(z)))]
    nonsaturating = -sum(math.log(sigmoid(x)) for x in fake) / 3  # G minimises -E[log D(G(z))]
    assert g_loss("saturating", torch.tensor(fake)).item() == pytest.approx(saturating, rel=1e-6)
    assert g_loss("nonsaturating", torch.tensor(fake)).item() == pytest.approx(nonsaturating, rel=1e-6)


def test_losses_stay_finite_when_d_saturates():
    huge = torch.tensor([200.0, -200.0], requires_grad=True)
    for loss in (d_loss("minimax", huge, huge), g_loss("saturating", huge), g_loss("nonsaturating", huge)):
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(huge.grad).all()
        huge.grad = None


def test_saturating_gradient_vanishes_where_nonsaturating_does_not():
    # D confidently rejects the fake (D(G(z)) ~ 0): the original minimax G loss gives almost no signal.
    logit = torch.tensor([-8.0], requires_grad=True)
    (grad_sat,) = torch.autograd.grad(g_loss("saturating", logit), logit)
    (grad_ns,) = torch.autograd.grad(g_loss("nonsaturating", logit), logit)
    assert abs(grad_sat.item()) < 1e-3 < abs(grad_ns.item())


def test_bf16_logits_are_computed_in_float32():
    assert d_loss("minimax", torch.zeros(2, dtype=torch.bfloat16), torch.zeros(2, dtype=torch.bfloat16)).dtype == torch.float32


def test_unknown_loss():
    with pytest.raises(ConfigError, match="unknown G loss"):
        g_loss("wasserstein-ish", torch.zeros(1))


# ---------------------------------------------------------------- loss pairs and their validation

from ganforge.config import Config, set_value  # noqa: E402
from ganforge.validation import validate  # noqa: E402
from ganforge.losses.adversarial import LOSS_PAIRS, COMPATIBLE_G_LOSSES, D_LOSSES, G_LOSSES, decision_margin  # noqa: E402

LIPSCHITZ = {"wasserstein": [("reg.gp_weight", 10.0)]}  # what the pair needs besides the losses


def config_with(d: str, g: str, *extra) -> Config:
    cfg = Config()
    set_value(cfg, "loss.d", d)
    set_value(cfg, "loss.g", g)
    for key, value in extra:
        set_value(cfg, key, value)
    return cfg


@pytest.mark.parametrize("family", sorted(LOSS_PAIRS))
def test_each_pair_validates_and_trains_each_network_the_right_way(family):
    d_name, g_name = LOSS_PAIRS[family]
    validate(config_with(d_name, g_name, *LIPSCHITZ.get(family, [])))
    real = torch.tensor([0.3, -0.2], requires_grad=True)
    fake = torch.tensor([0.1, 0.4], requires_grad=True)
    d_real_grad, d_fake_grad = torch.autograd.grad(d_loss(d_name, real, fake), (real, fake))
    # D's loss falls as real logits rise and fake logits fall
    assert (d_real_grad < 0).all() and (d_fake_grad > 0).all()
    g_fake = torch.tensor([0.1, 0.4], requires_grad=True)
    (g_grad,) = torch.autograd.grad(g_loss(g_name, g_fake, real.detach()), g_fake)
    assert (g_grad < 0).all()  # G's loss falls as D rates its samples more real


@pytest.mark.parametrize("d_name", sorted(D_LOSSES))
@pytest.mark.parametrize("g_name", sorted(G_LOSSES))
def test_mismatched_pairs_are_refused_with_the_fix(d_name, g_name):
    cfg = config_with(d_name, g_name, ("reg.gp_weight", 10.0))
    if g_name in COMPATIBLE_G_LOSSES[d_name]:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match=f"set loss.g={LOSS_PAIRS[d_name][1]}"):
            validate(cfg)


def test_wasserstein_needs_a_lipschitz_constraint():
    with pytest.raises(ConfigError, match="Lipschitz"):
        validate(config_with("wasserstein", "wasserstein"))
    for fix in (("reg.gp_weight", 10.0), ("reg.clip_weights", 0.01), ("model.d_spectral_norm", True)):
        validate(config_with("wasserstein", "wasserstein", fix))


# ---------------------------------------------------------------- the adaptive augmentation signal

def test_decision_margin_is_positive_exactly_where_d_calls_a_real_image_real():
    real = torch.tensor([0.2, 0.7, -0.4])
    fake = torch.tensor([0.5, 0.1, -0.9])
    assert decision_margin("minimax", real, fake).gt(0).tolist() == [True, True, False]  # D(x) = sigmoid(l) > 1/2
    assert decision_margin("hinge", real, fake).gt(0).tolist() == [True, True, False]
    assert decision_margin("least_squares", real, fake).gt(0).tolist() == [False, True, False]  # nearer 1 than 0
    assert decision_margin("relativistic", real, fake).gt(0).tolist() == [False, True, True]  # real > its paired fake


def test_least_squares_d_at_its_optimum_does_not_drive_ada():
    # A least-squares D unsure of everything outputs 0.5: E[sign(l)] would read +1 (overfitting) and push p to 1.
    from ganforge.training.augment import AdaptiveAugment

    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0)
    unsure = torch.full((100,), 0.5) + torch.linspace(-0.01, 0.01, 100)
    for _ in range(5):
        ada.update(decision_margin("least_squares", unsure, unsure))
        ada.adjust(100)
    assert float(ada.p) == 0.0


def test_ada_refused_for_wasserstein_and_accepted_with_a_threshold():
    aug = [("reg.augment", "translation"), ("reg.ada", True)]
    with pytest.raises(ConfigError, match="reg.ada cannot be used with loss.d=wasserstein"):
        validate(config_with("wasserstein", "wasserstein", ("reg.gp_weight", 10.0), *aug))
    for family in ("minimax", "hinge", "least_squares", "relativistic"):
        validate(config_with(*LOSS_PAIRS[family], *aug))
