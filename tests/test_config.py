import pytest

from ganforge.config import Config, parse_duration, parse_override, set_value, validate
from ganforge.errors import ConfigError


def test_defaults_and_default_stopping_rule():
    cfg = validate(Config())
    assert cfg.loss.g == "nonsaturating" and cfg.g_optim.lr == 2e-4 and cfg.g_optim.beta1 == 0.5
    assert cfg.train.max_epochs == 20.0  # no limit given: a finite default
    cfg = Config()
    set_value(cfg, "train.max_time", "10m")
    assert validate(cfg).train.max_epochs is None


def test_unknown_keys_rejected_with_suggestion():
    cfg = Config()
    with pytest.raises(ConfigError, match="did you mean 'train.batch_size'"):
        set_value(cfg, "train.batchsize", 3)
    with pytest.raises(ConfigError, match="did you mean 'model'"):
        set_value(cfg, "modle.z_dim", 3)


def test_types_are_coerced_and_checked():
    cfg = Config()
    set_value(cfg, *parse_override("train.batch_size=64"))
    set_value(cfg, *parse_override("g_optim.lr=1e-3"))
    set_value(cfg, *parse_override("data.resolution=null"))
    set_value(cfg, *parse_override("train.tensorboard=yes"))
    assert (cfg.train.batch_size, cfg.g_optim.lr, cfg.data.resolution, cfg.train.tensorboard) == (64, 1e-3, None, True)
    with pytest.raises(ConfigError, match="must be int"):
        set_value(cfg, "train.batch_size", "many")
    with pytest.raises(ConfigError, match="cannot be empty"):
        set_value(cfg, "train.batch_size", None)


@pytest.mark.parametrize("key,value,match", [
    ("model.d_norm", "layer", "must be one of"),
    ("loss.g", "nonsaturatin", "did you mean 'nonsaturating'"),
    ("train.batch_size", 0, "positive"),
    ("train.max_time", "soon", "time budget"),
])
def test_validation(key, value, match):
    cfg = Config()
    set_value(cfg, key, value)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 32\nmodel:\n  d_norm: group\n")
    cfg = Config.load(path)
    assert cfg.train.batch_size == 32 and cfg.model.d_norm == "group"
    cfg.save(tmp_path / "c.json")
    assert Config.load(tmp_path / "c.json") == cfg
    (tmp_path / "bad.yaml").write_text("train:\n  batch_sz: 1\n")
    with pytest.raises(ConfigError, match="batch_size"):
        Config.load(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), ("45", 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds
