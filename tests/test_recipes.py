"""Recipes and configuration building as library calls (ganforge.configure), and evaluating a run without the CLI."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml

from helpers import tiny_config
from ganforge.config import Config, set_value
from ganforge.validation import RESUMABLE_KEYS, validate
from ganforge.configure import build_config, next_run_dir, plan_run, resolve_config, resume_config
from ganforge.errors import ConfigError, GanforgeError
from ganforge.recipes import DEFAULT_RECIPE, RECIPES


def dry_run(capsys, *args) -> tuple[list[str], dict]:
    """`ganforge train --dry-run ARGS` in this process: its header lines and its configuration."""
    from ganforge.cli.main import main

    assert main(["train", "--dry-run", *args]) == 0
    out = capsys.readouterr().out
    header = [line for line in out.splitlines() if line.startswith("#")]
    return header, yaml.safe_load(out)


@pytest.fixture(autouse=True)
def _keep_showwarning(monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # the CLI's main() replaces it


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_resolves_and_validates(name):
    cfg = resolve_config(recipe=name)
    assert cfg == build_config(name) == validate(Config.from_dict(cfg.to_dict()))  # valid and round-trips
    for key, value in RECIPES[name].items():
        section, option = key.split(".")
        assert getattr(getattr(cfg, section), option) == value, key
    untouched = Config()
    for key, value in RECIPES[name].items():
        set_value(untouched, key, value)
    assert cfg == validate(untouched)  # the recipe changes its own keys and nothing else


@pytest.mark.parametrize("name", list(RECIPES))
def test_dry_run_shows_the_library_resolution(name, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    header, shown = dry_run(capsys, "--recipe", name, "--max-steps", "7", "--set", "train.seed=3")
    overrides = [("train.max_steps", 7), ("train.seed", 3)]
    cfg = resolve_config(recipe=name, overrides=overrides)
    assert shown == cfg.to_dict()
    plan = plan_run(name, None, overrides)
    assert plan.config == cfg and not plan.resume
    assert header[0] == f"# run folder: {plan.run_dir}" and str(plan.run_dir) == "runs/00000-shapes"


def test_default_recipe_is_applied_without_one(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve_config() == build_config(DEFAULT_RECIPE) == build_config(None, None, [])
    assert dry_run(capsys)[1] == resolve_config().to_dict()


def test_config_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 16\n  seed: 3\nmodel:\n  d_norm: group\n")
    cfg = build_config("classic", path, [("train.seed", 5)])
    assert (cfg.train.batch_size, cfg.train.seed, cfg.model.d_norm) == (16, 5, "group")
    cfg = build_config("stable", path)
    assert cfg.train.batch_size == 16 and cfg.reg.r1_gamma == RECIPES["stable"]["reg.r1_gamma"]  # file after recipe
    with pytest.raises(ConfigError, match="unknown recipe"):
        build_config("sturdy")


@pytest.fixture
def saved_run(tmp_path):
    """A run folder holding only config.json: all that resuming's configuration reads."""
    run = tmp_path / "run"
    run.mkdir()
    build_config("stable", None, [("train.max_steps", 10)]).save(run / "config.json")
    return run


@pytest.mark.parametrize("name", list(RECIPES))
def test_resume_refuses_a_changed_non_resumable_key(name, tmp_path):
    run = tmp_path / name
    run.mkdir()
    saved = build_config(name, None, [("train.max_steps", 10)])
    saved.save(run / "config.json")

    with pytest.raises(ConfigError, match="train.batch_size cannot change when resuming"):
        resolve_config(resume_dir=run, overrides=[("train.batch_size", saved.train.batch_size + 1)])
    with pytest.raises(ConfigError, match="loss.d cannot change"):
        resume_config(run, [("loss.d", "least_squares")])
    assert "train.batch_size" not in RESUMABLE_KEYS and "train.max_steps" in RESUMABLE_KEYS

    same = resolve_config(resume_dir=run, overrides=[("train.batch_size", saved.train.batch_size)])
    assert same == saved  # setting an option to its saved value is no change
    more = resolve_config(resume_dir=run, overrides=[("train.max_steps", 20), ("train.device", "cpu")])
    assert more.train.max_steps == 20 and more.train.device == "cpu"
    set_value(saved, "train.max_steps", 20)
    set_value(saved, "train.device", "cpu")
    assert more == saved
    plan = plan_run(overrides=[("train.max_steps", 20)], resume_dir=run)
    assert plan.resume and plan.run_dir == run and plan.config.train.max_steps == 20


def test_resume_errors(saved_run, tmp_path):
    with pytest.raises(GanforgeError, match="cannot resume: .*config.json not found"):
        resolve_config(resume_dir=tmp_path / "nothing")
    with pytest.raises(ConfigError, match="cannot be combined with --resume"):
        resolve_config(recipe="classic", resume_dir=saved_run)
    with pytest.raises(ConfigError, match="cannot be combined with --resume"):
        resolve_config(config_file=saved_run / "config.json", resume_dir=saved_run)


def test_new_run_folders(tmp_path):
    assert next_run_dir(tmp_path / "runs", "builtin:shapes") == tmp_path / "runs" / "00000-shapes"
    (tmp_path / "runs" / "00004-mnist").mkdir(parents=True)
    assert next_run_dir(tmp_path / "runs", "/data/Fashion MNIST.zip") == tmp_path / "runs" / "00005-Fashion-MNIST"
    plan = plan_run(overrides=[("data.source", "mnist")], runs_root=tmp_path / "runs")
    assert plan.run_dir == tmp_path / "runs" / "00005-mnist"
    (tmp_path / "taken" / "checkpoints").mkdir(parents=True)
    with pytest.raises(GanforgeError, match="already holds a run; continue it with --resume"):
        plan_run(out=tmp_path / "taken")
    assert plan_run(out=tmp_path / "free").run_dir == tmp_path / "free"


def test_the_evaluation_module_does_not_import_training():
    code = ("import sys, ganforge.metrics.run_eval, ganforge.configure; "
            "print([m for m in sys.modules if m.startswith('ganforge.training')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture
def tiny_run(tiny_npz, tmp_path):
    from ganforge.training.loop import Trainer

    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=3"), run).run()
    return run


def test_evaluate_a_run_without_the_cli(tiny_run, tiny_npz, tmp_path):
    from ganforge import evaluate_run, load_generator, write_samples
    from ganforge.metrics.run_eval import format_results, results_path, save_results

    results = evaluate_run(tiny_run, n=20, metrics="fd,pr", progress=False)
    assert results["extractor"] == "domain" and results["n_fake"] == 20 and results["n_real"] == 20
    assert results["fd_domain"] > 0 and 0 <= results["recall_domain"] <= 1
    assert results["step"] == 3 and results["real"] == str(tiny_npz)  # the run's own training data
    assert results_path(results) == tiny_run / "eval" / "step-00000003.json"
    assert save_results(results) == tiny_run / "eval" / "step-00000003.json"
    assert json.loads((tiny_run / "eval" / "step-00000003.json").read_text()) == results
    assert "fd_domain" in format_results(results)
    # a checkpoint folder is the same run, with the same samples for the same seed
    ckpt = sorted((tiny_run / "checkpoints").glob("step-*"))[-1]
    assert evaluate_run(ckpt, n=20, metrics="fd", progress=False)["fd_domain"] == results["fd_domain"]

    # generated images written by the library, against held-out images and the training data
    written = write_samples(tiny_run, 20, tmp_path / "s.npz", seed=1)
    assert written.path == tmp_path / "s.npz" and written.shape == (1, 14, 14) and written.step == 3
    gen = load_generator(tiny_run)
    assert np.array_equal(gen.sample(20, seed=1)[:, 0].numpy(), np.load(written.path)["images"])
    rng = np.random.default_rng(7)  # held out: like tiny_npz (conftest), other draws
    labels = np.arange(40) % 2
    np.savez(tmp_path / "held.npz", labels=labels.astype(np.uint8),
             images=(rng.random((40, 14, 14)) * 100 + labels[:, None, None] * 120).astype(np.uint8))
    images = evaluate_run(tmp_path / "s.npz", real=str(tmp_path / "held.npz"), train=str(tiny_npz), n=20,
                          progress=False)
    assert {"fd_domain", "kid_domain", "coverage_domain", "classes_covered",
            "memorisation_near_copy_share"} <= set(images)  # labels: modes; held-out real: memorisation
    assert images["step"] is None and results_path(images) is None and save_results(images) is None
    # training images named without a held-out set are the reference
    assert evaluate_run(tmp_path / "s.npz", train=str(tiny_npz), n=20, metrics="fd", progress=False)["real"] \
        == str(tiny_npz)
    with pytest.raises(GanforgeError, match="--real"):
        evaluate_run(tmp_path / "s.npz", n=20, metrics="fd", progress=False)


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_trains_its_architecture_at_tiny_size(name, tiny_npz, tmp_path):
    from ganforge.configure import build_config
    from ganforge.training.loop import Trainer
    from helpers import TINY_MODELS

    arch = build_config(name).model.arch
    overrides = [(f"model.{k}", v) for k, v in TINY_MODELS[arch].items() if k not in ("resolution", "channels")]
    overrides += [("data.source", str(tiny_npz)), ("train.batch_size", 8), ("train.max_steps", 2),
                  ("train.progress", False), ("train.sample_every", 0), ("train.log_every", 1),
                  ("train.grid_size", 4), ("train.precision", "fp32")]
    summary = Trainer(build_config(name, None, overrides), tmp_path / "run").run()
    assert summary["step"] == 2 and summary["reason"] == "reached the step/epoch limit"
