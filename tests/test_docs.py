"""The documentation lists what the code has."""
import re

import yaml

from helpers import REPO
from ganforge.config import Config


def test_training_doc_lists_every_option_with_its_default():
    text = (REPO / "docs" / "training.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    documented = yaml.safe_load(block)
    defaults = Config().to_dict()
    assert "d_optim" not in documented  # documented as "the same keys for d_optim"
    documented["d_optim"] = documented["g_optim"]
    assert documented.keys() == defaults.keys()
    for section, values in defaults.items():
        assert documented[section].keys() == values.keys(), section
        for key, value in values.items():
            shown = documented[section][key]
            assert shown == value or (shown == "" and value == ""), f"{section}.{key}: doc {shown!r}, code {value!r}"
    assert f"{len(defaults)} sections" in text.replace("ten", "10")


def test_training_doc_lists_every_flag_of_ganforge_train():
    from ganforge.cli.main import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {flag for action in train._actions for flag in action.option_strings if flag.startswith("--")}
    text = (REPO / "docs" / "training.md").read_text()
    assert len(flags) > 30 and sorted(f for f in flags - {"--help"} if f"`{f}" not in text) == []
