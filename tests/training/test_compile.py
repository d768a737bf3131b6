"""torch.compile of the regular passes (penalty passes eager) and the channels-last memory format."""
from collections import Counter

import pytest
import torch
from torch import nn

from ganforge.config import RegularizerConfig
from ganforge.errors import ConfigError
from ganforge.training.loop import Trainer
from ganforge.training.steps import needs_double_backward
from helpers import random_batches as batches, state_weights as weights, tiny_config, tiny_state as make_state


class Recording(nn.Module):
    """What a fake torch.compile returns: the module itself, noting the D updates done at each call."""

    def __init__(self, module, clock):
        super().__init__()
        self.module, self.clock, self.seen = module, clock, []

    def forward(self, *args):
        self.seen.append(self.clock())
        return self.module(*args)


def test_double_backward_steps_are_the_lazy_penalty_steps():
    lazy_r1 = RegularizerConfig(r1_gamma=1.0, r_interval=4)
    assert [needs_double_backward(lazy_r1, s) for s in range(5)] == [True, False, False, False, True]
    assert not any(needs_double_backward(RegularizerConfig(), s) for s in range(4))
    assert all(needs_double_backward(RegularizerConfig(gp_weight=10.0), s) for s in range(4))


def test_penalty_steps_call_the_eager_D_and_the_others_the_compiled_one(monkeypatch):
    compiled = []

    def fake_compile(module, mode=None, dynamic=None):
        compiled.append(Recording(module, lambda: state.real_batches))
        return compiled[-1]

    monkeypatch.setattr(torch, "compile", fake_compile)
    state = make_state()  # R1 on D updates 0, 2, ...
    state.compile("default")
    G_c, D_c = compiled  # G, then D (which the G step calls too: no DDP here)
    assert state.D_g is D_c and state.D_penalty is state.D
    every_D_call = []
    state.D.register_forward_hook(lambda *a: every_D_call.append(state.real_batches))
    for batch in batches(4):
        state.train_step([batch])
    assert len(G_c.seen) == 4
    # through the compiled D: the real and fake passes of D updates 1 and 3, and the four G steps (which
    # come after their step's D update, hence one count later)
    assert sorted(D_c.seen) == [1, 1, 1, 2, 3, 3, 3, 4]
    eager_only = Counter(every_D_call) - Counter(D_c.seen)
    assert eager_only == Counter({0: 2, 2: 2})  # the R1 updates' two passes, on the eager D


def test_compiled_training_matches_eager_training():
    """torch.compile itself (inductor, on the CPU): same losses and weights as eager, to rounding, over an R1
    step (eager D) and a plain one (compiled D), with G's average. The networks are the tiny MLP GAN: what is
    checked is the state's compiled wiring, and inductor builds its few kernels in a fraction of the time the
    DCGAN's convolutions and BatchNorms take on a cold cache."""
    data = batches(2, shape=(2,))
    eager, fast = make_state(arch="mlp"), make_state(arch="mlp")
    fast.compile("default")
    for batch in data:
        a, b = eager.train_step([batch]), fast.train_step([batch])
        for key in ("loss_d", "loss_g", "penalty_d"):
            assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    w_eager, w_fast = weights(eager), weights(fast)
    for net in w_eager:
        for name, value in w_eager[net].items():
            assert torch.allclose(value, w_fast[net][name], rtol=1e-3, atol=1e-5), (net, name)


def test_channels_last_trains_the_same_run(tiny_npz, tmp_path):
    runs = {}
    for fmt in ("false", "true"):
        cfg = tiny_config(tiny_npz, "train.max_steps=3", f"train.channels_last={fmt}")
        trainer = Trainer(cfg, tmp_path / fmt)
        runs[fmt] = trainer
        trainer.run()
    fast = runs["true"]
    conv = next(m for m in fast.D.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.images.is_contiguous(memory_format=torch.channels_last)
    for name, value in runs["false"].G.state_dict().items():
        assert torch.allclose(value, fast.G.state_dict()[name], rtol=1e-4, atol=1e-5), name
    # its checkpoint is an ordinary one: it resumes in either format
    resumed = Trainer(tiny_config(tiny_npz, "train.max_steps=4", "train.channels_last=false"), tmp_path / "true",
                      resume=True)
    assert resumed.step == 3


def test_compile_is_refused_under_differential_privacy(tiny_npz):
    with pytest.raises(ConfigError, match="train.compile=default"):
        tiny_config(tiny_npz, "dp.noise=1.0", "model.d_norm=group", "train.compile=default")


def test_unknown_compile_mode_is_refused(tiny_npz):
    with pytest.raises(ConfigError, match="train.compile must be one of"):
        tiny_config(tiny_npz, "train.compile=fast")
