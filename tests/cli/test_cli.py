"""The command line end to end: what a user types, what is printed and written, and the exit codes.

The commands run in this process (``ganforge.cli.main.main``: a subprocess would import torch cold for
each); the installed console script runs as its own process twice: to train the run the other tests use,
and in the Ctrl-C test, where a real SIGINT reaches it.
"""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import TINY, console_script_env, run_cli as ganforge

SETS = [arg for opt in TINY for arg in ("--set", opt)]
CONSOLE_SCRIPT = Path(sys.executable).with_name("ganforge")  # installed by pip install -e . beside python


def console_script(*args, **popen):
    """``ganforge ARGS`` as its own process, through the console script pip installed."""
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT}: install the project (pip install -e .) first"
    return [str(CONSOLE_SCRIPT), *map(str, args)], dict(env=console_script_env(), text=True, **popen)


def assert_clean_error(proc, match):
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], proc.stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 4-step run trained by the installed console script in its own process (the smoke test of the entry
    point: its output, exit code and run folder)."""
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(1)
    data = tmp / "digits.npz"
    np.savez(data, images=rng.integers(0, 255, (48, 28, 28), dtype=np.uint8))
    run = tmp / "run"
    cmd, options = console_script("train", "--data", data, "--out", run, "--max-steps", 4, *SETS)
    proc = subprocess.run(cmd, capture_output=True, timeout=300, **options)
    assert proc.returncode == 0, proc.stderr
    assert "stopped at step 4" in proc.stdout and (run / "checkpoints" / "latest").is_file()
    return run


def test_train_then_sample_grid_npz_and_folder(trained_run, tmp_path):
    from ganforge import load_generator

    gen = load_generator(trained_run)  # what the command should write: the API's samples for the seed

    ganforge("sample", trained_run, "--n", 10, "--out", tmp_path / "grid.png", "--nrow", 5)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert Image.open(tmp_path / "grid.png").mode == "L" and grid.shape == (2 * 30 + 2, 5 * 30 + 2)  # 28 px + 2 px
    tiles = gen.sample(10, seed=0)[:, 0].numpy()  # the default seed is 0
    for i, tile in enumerate(tiles):
        r, c = divmod(i, 5)
        assert np.array_equal(grid[2 + 30 * r : 30 * (r + 1), 2 + 30 * c : 30 * (c + 1)], tile), i
    padding = np.ones(grid.shape, bool)
    for r in range(2):
        for c in range(5):
            padding[2 + 30 * r : 30 * (r + 1), 2 + 30 * c : 30 * (c + 1)] = False
    assert (grid[padding] == 0).all()

    proc = ganforge("sample", trained_run, "--n", 7, "--out", tmp_path / "s.npz", "--seed", 3)
    assert "wrote 7 images of shape (1, 28, 28)" in proc.stdout
    arrays = np.load(tmp_path / "s.npz")
    assert arrays.files == ["images"]  # an unconditional G: images only, no labels
    images = arrays["images"]
    assert images.shape == (7, 28, 28) and images.dtype == np.uint8  # same layout as the data
    assert np.array_equal(images, gen.sample(7, seed=3)[:, 0].numpy())
    assert all(len(np.unique(im)) > 10 for im in images)  # real images, not a constant fill
    assert len({im.tobytes() for im in images}) == 7  # seven different samples

    ganforge("sample", trained_run, "--n", 3, "--out", tmp_path / "pngs")
    files = sorted((tmp_path / "pngs").iterdir())
    assert [p.name for p in files] == ["000000.png", "000001.png", "000002.png"]
    for f, expected in zip(files, gen.sample(3, seed=0)[:, 0].numpy()):
        png = Image.open(f)
        assert png.mode == "L" and np.array_equal(np.asarray(png), expected), f.name


def test_sampling_is_reproducible_by_seed(trained_run, tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        ganforge("sample", trained_run, "--n", 4, "--out", tmp_path / f"{name}.npz", "--seed", seed, "--batch-size", 3)
    a, b, c = (np.load(tmp_path / f"{n}.npz")["images"] for n in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # --seed reaches the noise
    from ganforge import load_generator

    gen = load_generator(trained_run)
    assert np.array_equal(a, gen.sample(4, seed=5)[:, 0].numpy())
    assert np.array_equal(c, gen.sample(4, seed=6)[:, 0].numpy())
    # G's raw outputs too: they depend on z, and not on how the noise is batched
    assert not gen.generate(gen.noise(4, 5)).equal(gen.generate(gen.noise(4, 6)))
    assert gen.generate(gen.noise(4, 5)).equal(gen.generate(gen.noise(4, 5), batch_size=3))


def test_sample_progress_bar_only_without_no_progress(trained_run, tmp_path):
    """More than one batch shows a bar on stderr; --no-progress (for scripts and logs) leaves stderr empty."""
    shown = ganforge("sample", trained_run, "--n", 4, "--batch-size", 2, "--out", tmp_path / "a.npz")
    assert "sampling" in shown.stderr and "4/4" in shown.stderr
    quiet = ganforge("sample", trained_run, "--n", 4, "--batch-size", 2, "--out", tmp_path / "b.npz", "--no-progress")
    assert quiet.stderr == ""
    assert np.array_equal(np.load(tmp_path / "a.npz")["images"], np.load(tmp_path / "b.npz")["images"])


def test_python_api(trained_run):
    import torch

    from ganforge import load_generator

    gen = load_generator(trained_run)
    images = gen.sample(3, seed=0)
    assert images.shape == (3, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images, gen.sample(3, seed=0)) and not torch.equal(images, gen.sample(3, seed=1))
    pil = gen.sample_pil(2, seed=0)
    assert pil[0].size == (28, 28) and pil[0].mode == "L"
    assert all(np.array_equal(np.asarray(p), im[0].numpy()) for p, im in zip(pil, gen.sample(2, seed=0)))
    assert gen.step == 4


def test_eval_a_run_and_an_image_file(trained_run, tmp_path):
    proc = ganforge("eval", trained_run, "--n", 40, "--metrics", "fd,kid,pr,dc", "--no-progress", "--device", "cpu")
    assert "fd_domain" in proc.stdout and "coverage_domain" in proc.stdout
    saved = json.loads((trained_run / "eval" / "step-00000004.json").read_text())
    assert saved["extractor"] == "domain" and saved["n_fake"] == 40
    ganforge("sample", trained_run, "--n", 30, "--out", tmp_path / "s.npz")
    out = tmp_path / "r.json"
    ganforge("eval", tmp_path / "s.npz", "--real", trained_run.parent / "digits.npz", "--metrics", "fd", "--json", out)
    assert json.loads(out.read_text())["fd_domain"] > 0
    assert_clean_error(ganforge("eval", tmp_path / "s.npz", "--metrics", "fd", check=False), "--real")


def test_recipes(monkeypatch):
    from ganforge.configure import build_config
    from ganforge.config import Config
    from ganforge.validation import validate
    from ganforge.recipes import RECIPES

    monkeypatch.setitem(RECIPES, "sturdy", {"loss.d": "hinge", "loss.g": "hinge", "model.d_spectral_norm": True})
    cfg = build_config("sturdy", None, [("loss.g", "wasserstein")])
    assert cfg.loss.d == "hinge" and cfg.model.d_spectral_norm
    assert cfg.loss.g == "wasserstein"  # flags and --set apply after the recipe
    assert build_config("stable", None, []) == build_config(None, None, [])  # stable is the default
    assert build_config("classic", None, []) == validate(Config())  # classic: the plain defaults
    assert_clean_error(ganforge("train", "--recipe", "sturdier", check=False), "unknown recipe")


def test_dry_run_prints_resolved_config():
    proc = ganforge("train", "--dry-run", "--max-time", "10m", "--set", "model.d_norm=group")
    assert "max_time: 10m" in proc.stdout and "d_norm: group" in proc.stdout


@pytest.mark.parametrize("args,match", [
    (["train", "--data", "/no/such/folder", "--max-steps", "1"], "/no/such/folder"),
    (["train", "--set", "train.batchsize=3"], "did you mean 'train.batch_size'"),
    (["train", "--max-time", "forever"], "time budget"),
    (["sample", "/no/such/run", "--out", "x.png"], "no such run"),
    (["eval", "/no/such/run", "--device", "tpu"], "device 'tpu'"),  # --device reaches the device check
])
def test_bad_input_gives_one_line_and_exit_2(args, match, tmp_path):
    assert_clean_error(ganforge(*args, cwd=tmp_path, check=False), match)


def test_refuses_to_overwrite_and_restricts_resume_changes(trained_run, tmp_path):
    assert_clean_error(ganforge("train", "--out", trained_run, check=False), "--resume")
    assert_clean_error(ganforge("train", "--resume", trained_run, "--batch-size", "4", check=False), "cannot change")
    assert_clean_error(ganforge("sample", trained_run, "--out", tmp_path / "x.gif2", check=False), ".npz")


def test_ctrl_c_saves_and_resume_continues(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, images=np.random.default_rng(0).integers(0, 255, (64, 16, 16), dtype=np.uint8))
    run = tmp_path / "run"
    cmd, options = console_script("train", "--data", data, "--out", run, "--max-steps", 100000, *SETS)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)
    log = run / "metrics.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and log.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    step = json.loads(log.read_text().splitlines()[-1])["step"]
    newest = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    assert newest >= step

    ganforge("train", "--resume", run, "--max-steps", step + 3)
    assert json.loads(log.read_text().splitlines()[-1])["step"] == step + 3


def test_conditional_train_and_sample_a_class(tiny_npz, tmp_path):
    run = tmp_path / "cond"
    ganforge("train", "--data", tiny_npz, "--conditional", "--out", run, "--max-steps", 2,
             *SETS)
    ganforge("sample", run, "--class", "1", "--n", 4, "--out", tmp_path / "ones.npz")
    data = np.load(tmp_path / "ones.npz")
    assert data["labels"].tolist() == [1, 1, 1, 1] and data["images"].shape == (4, 14, 14)
    # --class-mix: how the classes are drawn (data: in the training data's proportions); --classes is its old name
    from ganforge import load_generator

    mixed = ganforge("sample", run, "--class-mix", "data", "--n", 6, "--out", tmp_path / "mix.npz", "--seed", 2)
    drawn = load_generator(run).labels_for(6, "data", seed=2).tolist()
    assert mixed.stderr == "" and np.load(tmp_path / "mix.npz")["labels"].tolist() == drawn
    old = ganforge("sample", run, "--classes", "data", "--n", 6, "--out", tmp_path / "old.npz", "--seed", 2)
    assert old.stderr.strip().splitlines() == [
        "ganforge: warning: --classes is now --class-mix (--class still picks one class)"]
    for key in ("images", "labels"):
        assert np.array_equal(np.load(tmp_path / "old.npz")[key], np.load(tmp_path / "mix.npz")[key])
    assert_clean_error(ganforge("sample", run, "--class", "1", "--class-mix", "data", "--out", tmp_path / "x.npz",
                                check=False), "cannot be combined")
    assert_clean_error(ganforge("sample", run, "--class", "7", "--n", 4, "--out", tmp_path / "x.npz", check=False),
                       "out of range")
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, images=np.zeros((20, 14, 14), np.uint8))
    assert_clean_error(ganforge("train", "--data", unlabelled, "--conditional", "--out", tmp_path / "u",
                                "--max-steps", 1, *SETS, check=False),
                       "needs labelled data")


def test_sample_interpolate_writes_a_looping_animation(trained_run, tmp_path):
    proc = ganforge("sample", trained_run, "--interpolate", 3, "--frames", 4, "--out", tmp_path / "walk.gif")
    assert "walk of 12 frames through 3 points" in proc.stdout
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 12 and gif.size == (28, 28)
    assert_clean_error(ganforge("sample", trained_run, "--interpolate", 3, "--n", 5, "--out", tmp_path / "w.gif",
                                check=False), "drop --n")
    assert_clean_error(ganforge("sample", trained_run, "--interpolate", 1, "--out", tmp_path / "w.gif", check=False),
                       "at least 2 points")
    assert_clean_error(ganforge("sample", trained_run, "--interpolate", 2, "--class", "1", "--out",
                                tmp_path / "w.gif", check=False), "not class-conditional")
