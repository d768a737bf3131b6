"""Stopping rules: limits, the time budget, Ctrl-C and a collapse stop, in that order of precedence."""
import os
import signal

import pytest
import torch

from ganforge.config import TrainConfig
from ganforge.training.distributed import Ranks
from ganforge.training.stopping import StopRules

ONE = Ranks()  # one process


def _rules(**train):
    return StopRules(TrainConfig(**train), steps_per_epoch=10, ranks=ONE, device=torch.device("cpu"))


def test_the_first_of_the_step_and_epoch_limits_counts_in_g_steps():
    assert _rules(max_steps=100, max_epochs=3, d_steps=2).total == 15  # 3 epochs x 10 real batches / 2 per G step
    assert _rules(max_steps=12, max_epochs=3).total == 12
    assert _rules(max_time="1m").total is None


def test_reasons():
    rules = _rules(max_steps=5, max_time="10s")
    assert rules.reason(4, 9.0) is None
    assert rules.reason(5, 0.0) == "reached the step/epoch limit"
    assert rules.reason(1, 10.0) == "reached the time budget"
    assert rules.decide(1, 10.0) == "reached the time budget"  # one process: no agreement needed
    collapsed = StopRules(TrainConfig(max_steps=5), 10, ONE, torch.device("cpu"), collapse=lambda: "collapsed")
    assert collapsed.reason(1, 0.0) == "collapsed"
    rules.interrupted = True
    assert rules.reason(5, 99.0) == "interrupted"


def test_first_ctrl_c_asks_to_stop_the_second_stops_at_once_and_the_handler_is_restored():
    rules = _rules(max_steps=5)
    before = signal.getsignal(signal.SIGINT)
    with rules.catching_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        assert rules.interrupted and rules.reason(0, 0.0) == "interrupted"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
