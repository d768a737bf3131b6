import re
import pytest

from ganforge.config import Config, parse_duration, parse_override, set_value
from ganforge.validation import validate
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


# ---------------------------------------------------------------- the model section belongs to model.arch


def test_the_model_section_has_exactly_its_architectures_options():
    from ganforge.models import config_fields
    from ganforge.models.registry import DATA_FIELDS

    for arch in ("dcgan", "mlp"):
        cfg = Config()
        set_value(cfg, "model.arch", arch)
        keys = set(cfg.to_dict()["model"])
        assert keys == {"arch", "conditional"} | (set(config_fields(arch)) - set(DATA_FIELDS))
        assert cfg.model.arch == arch


def test_an_option_of_another_architecture_is_refused_with_a_pointer():
    with pytest.raises(ConfigError, match=r"model.g_depth is not an option of model.arch=dcgan .*mlp"):
        set_value(Config(), "model.g_depth", 4)
    cfg = Config()
    set_value(cfg, "model.arch", "mlp")
    with pytest.raises(ConfigError, match=r"model.g_norm is not an option of model.arch=mlp .*dcgan"):
        set_value(cfg, "model.g_norm", "group")
    with pytest.raises(ConfigError, match=r"unknown option 'model.widht'.*did you mean 'g_width'"):
        set_value(cfg, "model.widht", 4)


@pytest.mark.parametrize("key, where", [("resolution", "data.resolution"), ("channels", "data.channels"),
                                        ("num_classes", "model.conditional")])
def test_fields_the_data_sets_are_not_model_options(key, where):
    with pytest.raises(ConfigError, match=rf"model.{key} is set from .*{re.escape(where)}"):
        set_value(Config(), f"model.{key}", 3)


def test_an_unknown_architecture_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown model 'dcgna' \(did you mean 'dcgan'\?\)"):
        set_value(Config(), "model.arch", "dcgna")


def test_switching_architecture_keeps_shared_options_that_were_chosen():
    cfg = Config()
    set_value(cfg, "model.d_mbstd", True)  # chosen (a recipe's choice)
    set_value(cfg, "model.conditional", True)
    set_value(cfg, "model.arch", "mlp")
    assert cfg.model.d_mbstd is True and cfg.model.conditional is True
    assert (cfg.model.z_dim, cfg.model.g_width) == (2, 128)  # left at dcgan's defaults: mlp's defaults now
    set_value(cfg, "model.arch", "dcgan")
    assert cfg.model.d_mbstd is True and (cfg.model.z_dim, cfg.model.g_width, cfg.model.g_norm) == (100, 64, "batch")


def test_a_file_sets_model_arch_before_the_options_it_brings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  g_depth: 5\n  arch: mlp\n")  # arch written last: applied first
    cfg = Config.load(path)
    assert (cfg.model.arch, cfg.model.g_depth) == ("mlp", 5)


def test_a_config_with_another_architecture_round_trips_through_json_pickle_and_copy(tmp_path):
    import copy
    import pickle

    cfg = Config()
    set_value(cfg, "model.arch", "mlp")
    set_value(cfg, "model.d_depth", 5)
    cfg.save(tmp_path / "config.json")
    for other in (Config.load(tmp_path / "config.json"), pickle.loads(pickle.dumps(cfg)), copy.deepcopy(cfg)):
        assert other == cfg and type(other.model) is type(cfg.model)


def test_each_architecture_checks_its_own_values():
    cfg = Config()
    set_value(cfg, "model.g_norm", "bach")
    with pytest.raises(ConfigError, match=r"model.g_norm must be one of batch, group, none.*'batch'"):
        validate(cfg)
    cfg = Config()
    set_value(cfg, "model.d_width", 0)
    with pytest.raises(ConfigError, match=r"model.d_width must be positive"):
        validate(cfg)


def test_training_refuses_an_architecture_for_points():
    cfg = Config()
    set_value(cfg, "model.arch", "mlp")
    with pytest.raises(ConfigError, match=r"model.arch must be one of dcgan"):
        validate(cfg)


def test_mode_seeking_needs_pairs_and_a_non_negative_weight():
    cfg = Config()
    set_value(cfg, "reg.mode_seeking", 1.0)
    set_value(cfg, "train.batch_size", 1)
    with pytest.raises(ConfigError, match="needs train.batch_size >= 2"):
        validate(cfg)
    set_value(cfg, "reg.mode_seeking", -1.0)
    with pytest.raises(ConfigError, match="reg.mode_seeking must be >= 0"):
        validate(cfg)
    set_value(cfg, "reg.mode_seeking", 1.0)
    set_value(cfg, "train.batch_size", 2)
    validate(cfg)


@pytest.mark.parametrize("settings, refusal", [
    ({"reg.class_weight": 1.0}, "set model.d_classifier=true"),
    ({"reg.class_weight": 1.0, "model.d_classifier": True}, "needs labels"),
    ({"model.d_classifier": True, "model.conditional": True}, "only reg.class_weight trains"),
    ({"reg.class_weight": -1.0}, "reg.class_weight must be >= 0"),
    ({"model.arch": "resnet", "reg.class_weight": 1.0}, "the resnet D has none"),
    ({"reg.class_weight": 1.0, "model.d_classifier": True, "model.conditional": True}, None),
])
def test_the_class_term_and_d_classifier_head_come_together_on_a_conditional_model(settings, refusal):
    cfg = Config()
    for key, value in settings.items():
        set_value(cfg, key, value)
    if refusal is None:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match=refusal):
            validate(cfg)
