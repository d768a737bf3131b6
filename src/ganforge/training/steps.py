"""One discriminator update and one generator update.

These are plain functions of (networks, optimiser, batch, options) so that wrappers for
several GPUs (DDP), differential privacy or federated training can reuse them unchanged.
They return detached tensors, never Python numbers: reading a value forces the host to wait
for the device, so the loop does it only at log intervals.

Gradient penalties (R1, R2, WGAN-GP) take the input gradient with
``autograd.grad(create_graph=True)`` in float32 and are added to the loss before one ordinary
backward pass, the form that DDP and per-sample-gradient wrappers support.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import RegularizerConfig
from ..losses import d_loss, g_loss
from ..losses.adversarial import G_NEEDS_REAL, decision_margin
from ..losses.regularizers import (PenaltyInputs, active_penalties, clip_weights_, grad_norm, instance_noise,
                                   mode_seeking_loss)
from .augment import AdaptiveAugment, DiffAugment
from .runtime import Precision


@dataclass
class StepOptions:
    """Everything a step needs besides the networks and the batch."""

    d_loss: str = "minimax"
    g_loss: str = "nonsaturating"
    precision: Precision = Precision("fp32", "cpu")
    reg: RegularizerConfig | None = None
    augment: DiffAugment | None = None  # applied to real and fake alike, differentiably
    ada: AdaptiveAugment | None = None  # adapts augment's probability from D's margin on real images
    rng: torch.Generator | None = None  # for augmentation, instance noise and penalty interpolation

    def __post_init__(self):
        if self.reg is None:
            self.reg = RegularizerConfig()


def _d_inputs(images: torch.Tensor, opts: StepOptions) -> torch.Tensor:
    """What D sees: images with instance noise and augmentation, when configured."""
    if opts.reg.instance_noise > 0:
        images = instance_noise(images, opts.reg.instance_noise, opts.rng)
    if opts.augment is not None:
        images = opts.augment(images, opts.rng)
    return images


def call(net: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """net(x) for an unconditional network, net(x, labels) for a class-conditional one."""
    return net(x) if labels is None else net(x, labels)


def classifies(opts: StepOptions, labels: torch.Tensor | None) -> bool:
    """Whether the steps train D's auxiliary classifier (AC-GAN) on this batch: ``reg.class_weight`` on and
    labels given."""
    return opts.reg.class_weight > 0 and labels is not None


def _float32(device_type: str):
    """A region where autocast is off, whatever the caller set: penalty passes need full precision."""
    return torch.autocast(device_type, enabled=False)


def needs_double_backward(reg: RegularizerConfig, step: int) -> bool:
    """Whether D update number ``step`` takes an input gradient with ``create_graph`` (any penalty of
    ``losses.regularizers.D_PENALTIES`` it applies: R1 or R2 on their lazy steps, WGAN-GP always), which
    compiled graphs cannot differentiate again."""
    return bool(active_penalties(reg, step))


def d_step(
    D: nn.Module,
    d_opt: torch.optim.Optimizer,
    real: torch.Tensor,  # (N, C, R, R) in [-1, 1]
    fake: torch.Tensor,  # (N, C, R, R), detached from G's graph
    opts: StepOptions,
    step: int = 0,  # D updates so far, for lazy regularisation
    labels: torch.Tensor | None = None,  # (N,) classes of real and fake alike, for a conditional D
    fake_labels: torch.Tensor | None = None,  # (N,) the fakes' own classes when they differ (DP); None: labels
) -> dict[str, torch.Tensor]:
    """Minimise D's loss (+ penalties) with one summed backward pass.

    Gradient penalties are taken with respect to the images *before* instance noise and
    augmentation, through them (as the ADA reference does for R1), so R1, R2 and WGAN-GP all
    measure the same thing: how fast D's judgement of a data-space image changes. A pass whose
    input gradient feeds a penalty runs in float32 outside autocast: an input gradient and its
    double backward through a bfloat16 graph would carry only 8 mantissa bits.
    """
    reg = opts.reg
    penalties = active_penalties(reg, step)  # chosen from the registry, losses.regularizers.D_PENALTIES
    grad_real, grad_fake = (any(p.input_grad == batch for p in penalties) for batch in ("real", "fake"))
    device_type = real.device.type
    real = real.detach().float().requires_grad_(grad_real)  # (N, C, R, R) float32
    fake = fake.detach().float().requires_grad_(grad_fake)
    real_view, fake_view = _d_inputs(real, opts), _d_inputs(fake, opts)
    with _float32(device_type) if grad_real else opts.precision.autocast():
        if classifies(opts, labels):
            real_logits, real_classes = D(real_view, labels, classes=True)  # (N,), (N, K)
        else:
            real_logits, real_classes = call(D, real_view, labels), None  # (N,)
    with _float32(device_type) if grad_fake else opts.precision.autocast():
        fake_logits = call(D, fake_view, labels if fake_labels is None else fake_labels)  # (N,)
    loss = d_loss(opts.d_loss, real_logits, fake_logits, label_smoothing=reg.label_smoothing)
    penalty = torch.zeros((), device=real.device)
    inputs = PenaltyInputs(reg, real, fake, real_logits, fake_logits, D=lambda x: call(D, x, labels),
                           view=lambda x: _d_inputs(x, opts), rng=opts.rng)
    for term in penalties:
        penalty = penalty + term.value(inputs)
    total = loss + penalty
    class_loss = None
    if real_classes is not None:  # AC-GAN: D learns the real images' classes (the fakes' are not its lesson)
        class_loss = F.cross_entropy(real_classes.float(), labels)
        total = total + reg.class_weight * class_loss
    d_opt.zero_grad(set_to_none=True)
    total.backward()
    if reg.d_clip_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(D.parameters(), reg.d_clip_norm)
    else:
        norm = grad_norm(D.parameters())
    d_opt.step()
    if reg.clip_weights > 0:
        clip_weights_(D, reg.clip_weights)
    if opts.ada is not None:
        opts.ada.update(decision_margin(opts.d_loss, real_logits.detach(), fake_logits.detach()))
    stats = {
        "loss_d": loss.detach(),
        "penalty_d": penalty.detach(),
        "grad_d": norm.detach(),
        "d_real": torch.sigmoid(real_logits.detach().float()).mean(),  # mean D(x)
        "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),  # mean D(G(z)) before the update
    }
    if class_loss is not None:
        stats["class_d"] = class_loss.detach()  # cross-entropy of D's classifier on the real batch
    return stats


def g_step(
    D: nn.Module,
    g_opt: torch.optim.Optimizer,
    fake: torch.Tensor,  # (N, C, R, R), still attached to G's graph
    opts: StepOptions,
    real: torch.Tensor | None = None,  # needed by relativistic losses (which therefore read real data)
    labels: torch.Tensor | None = None,  # (N,) classes of fake (and real), for a conditional D
    z: torch.Tensor | None = None,  # (N, z_dim) the noise behind fake, for the mode-seeking term
) -> dict[str, torch.Tensor]:
    """Minimise G's loss on D's view of ``fake`` (plus the mode-seeking term when ``reg.mode_seeking``
    is on, its pairs :func:`paired_halves` of the batch, and the cross-entropy of D's classifier on the
    asked-for classes when ``reg.class_weight`` is); D's weights get no gradient."""
    D.requires_grad_(False)  # skip D's weight gradients: only G is updated here
    try:
        real_logits, fake_classes = None, None
        with opts.precision.autocast():
            if classifies(opts, labels):
                fake_logits, fake_classes = D(_d_inputs(fake, opts), labels, classes=True)  # (N,), (N, K)
            else:
                fake_logits = call(D, _d_inputs(fake, opts), labels)
            if opts.g_loss in G_NEEDS_REAL:
                if real is None:
                    raise ValueError(f"the {opts.g_loss} G loss needs a real batch")
                real_logits = call(D, _d_inputs(real, opts), labels).detach()
        loss = g_loss(opts.g_loss, fake_logits, real_logits)
        total = loss
        if opts.reg.mode_seeking > 0:
            if z is None:
                raise ValueError("the mode-seeking term needs the noise behind the fakes")
            seeking = mode_seeking_loss(fake, z, opts.reg.mode_seeking)
            total = total + seeking
        if fake_classes is not None:
            class_loss = F.cross_entropy(fake_classes.float(), labels)
            total = total + opts.reg.class_weight * class_loss
        g_opt.zero_grad(set_to_none=True)
        total.backward()
        params = [p for group in g_opt.param_groups for p in group["params"]]
        if opts.reg.g_clip_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, opts.reg.g_clip_norm)
        else:
            norm = grad_norm(params)
        g_opt.step()
    finally:
        D.requires_grad_(True)
    stats = {"loss_g": loss.detach(), "grad_g": norm.detach()}
    if opts.reg.mode_seeking > 0:
        stats["mode_seeking_g"] = seeking.detach()
    if fake_classes is not None:
        stats["class_g"] = class_loss.detach()  # cross-entropy of D's classifier on G's asked-for classes
    return stats


def path_length_step(
    G: nn.Module,  # a style-based G: G.mapping(z, c) -> ws (N, num_ws, w_dim), G.synthesis(ws) -> images
    g_opt: torch.optim.Optimizer,
    z: torch.Tensor,  # (N, z_dim)
    labels: torch.Tensor | None,  # (N,) for a conditional G
    opts: StepOptions,
    pl_mean: torch.Tensor,  # () running mean of the path lengths, updated in place
    average: Callable[[torch.Tensor], torch.Tensor] | None = None,  # mean over ranks, in place (torchrun)
) -> torch.Tensor:
    """StyleGAN2's path-length regularisation (Karras et al. 2020, section 3.2), as its own lazy G update.

    For a random image-space direction y ~ N(0, I) / sqrt(H W), the length of J_w^T y (the Jacobian
    of the image with respect to the styles, taken with ``create_graph``) should stay near its
    running mean a: penalty = E[(|J_w^T y| - a)^2], times ``pl_weight`` and the interval (lazy), on
    ``batch / pl_batch_shrink`` samples, in float32. Returns the penalty (detached).

    Under torchrun G is called here through its mapping and synthesis networks, outside DDP's wrapper, so
    ``average`` does DDP's part by hand: every rank's batch mean of the lengths enters one running mean,
    and G's gradients are averaged over the ranks before the step, which keeps the ranks' weights equal.
    """
    reg = opts.reg
    n = max(1, len(z) // reg.pl_batch_shrink)
    c = labels[:n] if labels is not None else None
    with _float32(z.device.type):
        ws = G.mapping(z[:n], c)  # (n, num_ws, w_dim)
        images = G.synthesis(ws)  # (n, C, H, W)
        y = torch.randn(images.shape, generator=opts.rng, device=images.device) / math.sqrt(images[0, 0].numel())
        (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
        lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()  # (n,)
        batch_mean = lengths.mean().detach()  # ()
        if average is not None:
            batch_mean = average(batch_mean.clone())
        pl_mean.copy_(pl_mean.lerp(batch_mean, reg.pl_decay))
        penalty = (lengths - pl_mean).square().mean()
    g_opt.zero_grad(set_to_none=True)
    (penalty * reg.pl_weight * reg.pl_interval).backward()
    if average is not None:
        _average_gradients(G, average)
    g_opt.step()
    return penalty.detach()


def _average_gradients(module: nn.Module, average: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over the ranks, in one flat reduction. A parameter
    without a gradient on this rank counts as zero, so that every rank reduces the same tensor; one that
    no rank gave a gradient stays without one, so the optimiser skips it as it would on one process."""
    params = [p for p in module.parameters() if p.requires_grad]
    missing = {id(p) for p in params if p.grad is None}
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = average(torch.cat([g.reshape(-1) for g in grads]))  # (total parameters,)
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        g = g.view_as(p)
        if id(p) in missing and not g.any():
            continue
        p.grad = g.clone()


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) from an :class:`~ganforge.config.OptimizerConfig`."""
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
