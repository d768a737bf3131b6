"""The health guard: when a rollback is allowed, what it changes, what a checkpoint keeps."""
import pytest
import torch
from torch import nn

from ganforge.config import Config
from ganforge.errors import GanforgeError
from ganforge.training.health import HealthGuard


def _guard(**monitor):
    cfg = Config()
    for key, value in monitor.items():
        setattr(cfg.monitor, key, value)
    real = torch.rand(8, 1, 16, 16) * 2 - 1  # (8, 1, 16, 16) in [-1, 1]
    return HealthGuard(cfg, real)


def _state():
    """A TrainState of the 2-D MLPs with learning rates 2e-4 (G) and 4e-4 (D)."""
    from ganforge.models import config_from_section
    from ganforge.config import set_value
    from ganforge.training.runtime import Precision
    from ganforge.training.state import TrainState

    cfg = Config()
    set_value(cfg, "model.arch", "mlp")
    cfg.g_optim.lr, cfg.d_optim.lr = 2e-4, 4e-4
    return TrainState.from_config(cfg, config_from_section(cfg.model), torch.device("cpu"), Precision("fp32", "cpu"))


def test_a_rollback_halves_the_learning_rates_from_their_configured_values(tmp_path):
    guard = _guard(max_rollbacks=2, rollback_lr_factor=0.5)
    state = _state()
    counters = guard.begin_rollback("loss_d is nan", step=10, folder=tmp_path)
    assert guard.rollbacks == 0  # nothing changes until the reload has happened
    guard.finish_rollback(counters, state)
    assert guard.rollbacks == 1 and state.g_opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert state.d_opt.param_groups[0]["lr"] == pytest.approx(2e-4) and state.lr_scale == 0.5
    guard.finish_rollback(guard.begin_rollback("again", 12, tmp_path), state)
    assert state.g_opt.param_groups[0]["lr"] == pytest.approx(5e-5)
    with pytest.raises(GanforgeError, match=r"diverged at step 14 \(third\) after 2 rollback\(s\)"):
        guard.begin_rollback("third", 14, tmp_path)


@pytest.mark.parametrize("monitor, folder", [({"rollback": False}, "ck"), ({}, None)])
def test_no_rollback_when_turned_off_or_without_a_checkpoint(monitor, folder, tmp_path):
    with pytest.raises(GanforgeError, match="training diverged at step 3"):
        _guard(**monitor).begin_rollback("loss_g is inf", 3, folder and tmp_path)


def test_non_finite_weights_count_as_divergence():
    guard, net = _guard(), nn.Linear(2, 2)
    assert guard.divergence({"loss_d": 0.5, "loss_g": 1.0}, net) is None
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    assert guard.divergence({"loss_d": 0.5, "loss_g": 1.0}, net) == "the weights hold NaN or Inf"


def test_a_collapse_stops_only_when_asked():
    plain, stopping = _guard(), _guard(stop_on_collapse=True)
    for guard in (plain, stopping):
        guard.note_collapse("possible mode collapse")
    assert plain.collapse_stop is None and "stop_on_collapse" in stopping.collapse_stop


def test_state_round_trip(tmp_path):
    guard = _guard()
    guard.finish_rollback(guard.begin_rollback("x", 1, tmp_path), _state())
    guard.diversity(torch.rand(8, 1, 16, 16))
    other = _guard()
    other.load_state_dict(guard.state_dict())
    assert other.state_dict() == guard.state_dict() and other.rollbacks == 1
