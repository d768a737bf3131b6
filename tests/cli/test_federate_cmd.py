"""`ganforge federate` options reach the federation's configuration."""
import pytest

from ganforge.cli.federate_common import federation_config as _federation
from ganforge.cli.main import build_parser
from ganforge.errors import ConfigError


def parse(*options):
    return build_parser().parse_args(["federate", "simulate", "--data", "x.npz", "--sites", "4", *options])


def test_server_step_options_reach_the_federation():
    fed = _federation(parse("--rounds", "8", "--server-lr", "2", "--final-server-lr", "1"), 4)
    assert (fed.rounds, fed.server_lr, fed.final_server_lr, fed.server_momentum) == (8, 2.0, 1.0, 0.0)
    assert [fed.server_lr_of(r) for r in (1, 7, 8)] == [2.0, 2.0, 1.0]
    assert _federation(parse("--server-lr", "2"), 4).final_server_lr is None
    two = _federation(parse("--rounds", "8", "--server-lr", "2", "--final-server-lr", "1", "--final-rounds", "2"), 4)
    assert [two.server_lr_of(r) for r in (6, 7, 8)] == [2.0, 1.0, 1.0]


def test_a_bad_final_server_lr_is_refused():
    with pytest.raises(ConfigError, match="last rounds"):
        _federation(parse("--final-server-lr", "-1"), 4)
