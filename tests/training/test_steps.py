import copy

import pytest
import torch

from ganforge.config import OptimizerConfig
from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.training.runtime import Precision
from ganforge.config import RegularizerConfig
from ganforge.training.steps import StepOptions, d_step, g_step, make_optimizer

FP32 = StepOptions(precision=Precision("fp32", "cpu"))


def tiny_pair():
    torch.manual_seed(0)
    cfg = model_config("dcgan", resolution=16, channels=1, z_dim=8, g_width=8, d_width=8, d_norm="none")
    return build_generator("dcgan", cfg), build_discriminator("dcgan", cfg)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_d_step_updates_only_d_and_returns_detached_stats():
    G, D = tiny_pair()
    d_opt = make_optimizer(D.parameters(), OptimizerConfig())
    g_before, d_before = params(G), params(D)
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    fake = G(torch.randn(4, 8))
    stats = d_step(D, d_opt, real, fake.detach(), FP32)
    assert changed(d_before, D) and not changed(g_before, G)
    assert set(stats) == {"loss_d", "d_real", "d_fake", "penalty_d", "grad_d"}
    assert all(not v.requires_grad and v.dim() == 0 for v in stats.values())
    assert 0 < stats["d_real"].item() < 1


def test_g_step_updates_only_g():
    G, D = tiny_pair()
    g_opt = make_optimizer(G.parameters(), OptimizerConfig())
    g_before, d_before = params(G), params(D)
    stats = g_step(D, g_opt, G(torch.randn(4, 8)), FP32)
    assert changed(g_before, G) and not changed(d_before, D)
    assert all(p.grad is None for p in D.parameters())  # D's weight gradients were not computed
    assert all(p.requires_grad for p in D.parameters())  # and D is trainable again afterwards
    assert not stats["loss_g"].requires_grad and stats["grad_g"] > 0


def test_d_learns_to_separate_real_from_fixed_fakes():
    G, D = tiny_pair()
    d_opt = make_optimizer(D.parameters(), OptimizerConfig(lr=1e-3))
    real = torch.ones(8, 1, 16, 16) * 0.8
    fake = -torch.ones(8, 1, 16, 16) * 0.8
    first = d_step(D, d_opt, real, fake, FP32)["loss_d"].item()
    for _ in range(20):
        last = d_step(D, d_opt, real, fake, FP32)
    assert last["loss_d"].item() < first / 2
    assert last["d_real"].item() > 0.7 > 0.3 > last["d_fake"].item()


def test_bf16_step_runs_and_keeps_float32_weights():
    G, D = tiny_pair()
    bf16 = StepOptions(precision=Precision("bf16", "cpu"))
    d_opt = make_optimizer(D.parameters(), OptimizerConfig())
    with bf16.precision.autocast():
        fake = G(torch.randn(4, 8))
    stats = d_step(D, d_opt, torch.zeros(4, 1, 16, 16), fake.detach(), bf16)
    assert torch.isfinite(stats["loss_d"]) and stats["loss_d"].dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in D.parameters())


def test_sgd_optimizer():
    G, _ = tiny_pair()
    opt = make_optimizer(G.parameters(), OptimizerConfig(name="sgd", lr=0.01, momentum=0.5))
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.5


def test_r1_penalty_is_added_on_its_lazy_interval_only():
    G, D = tiny_pair()
    d_opt = make_optimizer(D.parameters(), OptimizerConfig())
    opts = StepOptions(precision=Precision("fp32", "cpu"), reg=RegularizerConfig(r1_gamma=10.0, r_interval=4))
    real, fake = torch.rand(4, 1, 16, 16) * 2 - 1, G(torch.randn(4, 8)).detach()
    assert d_step(D, d_opt, real, fake, opts, step=4)["penalty_d"] > 0
    assert d_step(D, d_opt, real, fake, opts, step=5)["penalty_d"] == 0


@pytest.mark.parametrize("loss", ["wasserstein", "hinge", "least_squares", "relativistic"])
@pytest.mark.parametrize("augment", ["", "translation,cutout,colour"])
def test_every_loss_pair_trains_a_step_with_clipping(loss, augment):
    from ganforge.losses.adversarial import LOSS_PAIRS
    from ganforge.training.augment import DiffAugment

    G, D = tiny_pair()
    d_loss_name, g_loss_name = LOSS_PAIRS[loss]
    reg = RegularizerConfig(gp_weight=10.0 if loss == "wasserstein" else 0.0, d_clip_norm=1e-3, g_clip_norm=1e-3,
                            instance_noise=0.1)
    opts = StepOptions(d_loss=d_loss_name, g_loss=g_loss_name, precision=Precision("fp32", "cpu"), reg=reg,
                       augment=DiffAugment(augment) if augment else None, rng=torch.Generator().manual_seed(0))
    d_opt, g_opt = make_optimizer(D.parameters(), OptimizerConfig()), make_optimizer(G.parameters(), OptimizerConfig())
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    fake = G(torch.randn(4, 8))
    d_stats = d_step(D, d_opt, real, fake.detach(), opts)
    clipped_d = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in D.parameters()]))
    g_stats = g_step(D, g_opt, fake, opts, real=real)
    clipped_g = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in G.parameters()]))
    assert torch.isfinite(d_stats["loss_d"]) and torch.isfinite(g_stats["loss_g"])
    assert d_stats["grad_d"] > 1e-3 and clipped_d <= 1e-3 * 1.001  # reported: norm before clipping
    assert g_stats["grad_g"] > 1e-3 and clipped_g <= 1e-3 * 1.001


# ---------------------------------------------------------------- penalties: precision and inputs

def _penalty_case(**reg):
    torch.manual_seed(1)
    cfg = model_config("dcgan", resolution=16, channels=1, z_dim=8, g_width=8, d_width=8, d_norm="none")
    D = build_discriminator("dcgan", cfg)
    with torch.no_grad():
        D.net[-1].weight.mul_(400.0)  # input gradients of norm ~1, so that the GP's value depends on them
    real = torch.rand(6, 1, 16, 16) * 2 - 1
    fake = torch.rand(6, 1, 16, 16) * 2 - 1
    return D, real, fake, RegularizerConfig(**reg)


def _reference_input_grad_sq(D, images, view):
    """float32 ||d D(view(x)) / dx||^2 per sample, the penalty's textbook definition."""
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(view(x)).sum(), x)
    return grad.pow(2).flatten(1).sum(1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_r1_and_r2_are_computed_in_float32_whatever_the_precision(precision):
    D, real, fake, reg = _penalty_case(r1_gamma=2.0, r2_gamma=0.5)
    opts = StepOptions(precision=Precision(precision, "cpu"), reg=reg)
    expected = (2.0 / 2 * _reference_input_grad_sq(D, real, lambda x: x).mean()
                + 0.5 / 2 * _reference_input_grad_sq(D, fake, lambda x: x).mean())
    d_opt = torch.optim.SGD(D.parameters(), lr=0.0)
    got = d_step(D, d_opt, real, fake, opts)["penalty_d"]
    # a bfloat16 input gradient is off by ~1e-2 relative; float32 agrees to rounding
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_wgan_gp_is_computed_in_float32(precision):
    D, real, fake, reg = _penalty_case(gp_weight=10.0)
    opts = StepOptions(d_loss="wasserstein", g_loss="wasserstein", precision=Precision(precision, "cpu"), reg=reg,
                       rng=torch.Generator().manual_seed(5))
    eps = torch.rand((6, 1, 1, 1), generator=torch.Generator().manual_seed(5))
    x_hat = eps * real + (1 - eps) * fake
    norms = _reference_input_grad_sq(D, x_hat, lambda x: x).sqrt()
    expected = 10.0 * (norms - 1).pow(2).mean()
    got = d_step(D, torch.optim.SGD(D.parameters(), lr=0.0), real, fake, opts)["penalty_d"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


def test_r1_differentiates_the_unaugmented_reals_through_the_augmentation():
    from ganforge.training.augment import DiffAugment

    D, real, fake, reg = _penalty_case(r1_gamma=2.0, instance_noise=0.1)
    augment = DiffAugment("translation,colour", p=1.0)
    opts = StepOptions(precision=Precision("bf16", "cpu"), reg=reg, augment=augment,
                       rng=torch.Generator().manual_seed(9))
    from ganforge.losses.regularizers import instance_noise

    gen = torch.Generator().manual_seed(9)  # the same draws, in the step's order: real first

    def view(x):
        return augment(instance_noise(x, 0.1, gen), gen)

    expected = 2.0 / 2 * _reference_input_grad_sq(D, real, view).mean()
    got = d_step(D, torch.optim.SGD(D.parameters(), lr=0.0), real, fake, opts)["penalty_d"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


def test_mode_seeking_term_joins_g_loss_and_pairs_of_a_conditional_batch_share_a_class(tiny_npz, tmp_path, monkeypatch):
    from helpers import tiny_config
    from ganforge.training.loop import Trainer

    G, D = tiny_pair()
    z = torch.randn(6, 8)
    opts = StepOptions(precision=Precision("fp32", "cpu"), reg=RegularizerConfig(mode_seeking=1.0))
    grads = []
    for o in (FP32, opts):
        G.zero_grad()
        g_opt = torch.optim.SGD(G.parameters(), lr=0.0)  # lr 0: compare gradients, keep the weights
        stats = g_step(D, g_opt, G(z), o, z=z)
        grads.append(torch.cat([p.grad.flatten() for p in G.parameters()]))
    assert "mode_seeking_g" not in g_step(D, g_opt, G(z), FP32) and stats["mode_seeking_g"] > 0
    assert not torch.allclose(grads[0], grads[1])  # the term changed G's gradient
    with pytest.raises(ValueError, match="needs the noise"):
        g_step(D, g_opt, G(z), opts)

    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=2", "model.conditional=true", "reg.mode_seeking=1",
                                  "train.log_every=1"), tmp_path / "run")
    seen = []
    import ganforge.training.state as state_module

    def spy(D, g_opt, fake, opts, real=None, labels=None, z=None):
        seen.append(labels.clone())
        return g_step(D, g_opt, fake, opts, real=real, labels=labels, z=z)

    monkeypatch.setattr(state_module, "g_step", spy)
    records = []
    trainer.run(on_log=records.append)
    assert len(seen) == 2
    for labels in seen:
        half = len(labels) // 2
        assert torch.equal(labels[:half], labels[len(labels) - half:])
    assert all(r["mode_seeking_g"] > 0 for r in records)


def test_class_term_teaches_d_the_real_labels_and_g_the_asked_for_class():
    """AC-GAN: D's step adds the cross-entropy of its classifier on the real labels (its class_d), G's step
    the cross-entropy on the classes G was asked for (class_g); without the weight the head is left alone."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    cfg = model_config("dcgan", resolution=16, channels=1, z_dim=8, g_width=8, d_width=8, d_norm="group",
                       num_classes=3, d_classifier=True)
    G, D = build_generator("dcgan", cfg), build_discriminator("dcgan", cfg)
    opts = StepOptions(precision=Precision("fp32", "cpu"), reg=RegularizerConfig(class_weight=2.0))
    real, labels = torch.rand(6, 1, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    fake_labels = torch.tensor([2, 2, 1, 1, 0, 0])
    z = torch.randn(6, 8)
    fake = G(z, fake_labels)
    with torch.no_grad():
        expected_d = F.cross_entropy(D(real, labels, classes=True)[1], labels)
        expected_g = F.cross_entropy(D(fake, fake_labels, classes=True)[1], fake_labels)
    head = D.classifier.weight.detach().clone()
    untouched = copy.deepcopy(D)
    off = d_step(untouched, torch.optim.SGD(untouched.parameters(), lr=0.1), real, fake.detach(), FP32,
                 labels=labels, fake_labels=fake_labels)
    assert "class_d" not in off and torch.equal(head, untouched.classifier.weight)  # no weight: no gradient
    g_opt = torch.optim.SGD(G.parameters(), lr=0.0)
    g_stats = g_step(D, g_opt, fake, opts, labels=fake_labels, z=z)
    torch.testing.assert_close(g_stats["class_g"], expected_g)
    d_stats = d_step(D, torch.optim.SGD(D.parameters(), lr=0.1), real, fake.detach(), opts, labels=labels,
                     fake_labels=fake_labels)
    torch.testing.assert_close(d_stats["class_d"], expected_d)
    assert not torch.equal(head, D.classifier.weight)
    with torch.no_grad():  # one SGD step on the class term lowered D's cross-entropy on the real labels
        assert F.cross_entropy(D(real, labels, classes=True)[1], labels) < expected_d
