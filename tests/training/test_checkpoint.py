"""Durable checkpoints: damaged newest checkpoints fall back, re-saves and pruning keep `latest`
valid, and a run killed with SIGKILL at random moments always resumes."""
import multiprocessing
import os
import random
import signal
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import tiny_config
from ganforge.errors import GanforgeError
from ganforge.training import checkpoint as ck
from ganforge.training.checkpoint import (
    CHECKPOINT_DIR,
    CheckpointWarning,
    checkpoint_problem,
    find_checkpoint,
    latest_checkpoint,
    load_network_weights,
    load_state,
    save_best,
    save_checkpoint,
)
from ganforge.training.loop import Trainer


def nets(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {"generator": (nn.Linear(4, 6), {"format": ck.GENERATOR_FORMAT, "seed": seed}),
            "discriminator": (nn.Linear(6, 1), {"seed": seed})}


def save(run: Path, step: int, keep: int = 2, marker: int = 0) -> Path:
    G = nn.Linear(4, 6)
    opt = torch.optim.Adam(G.parameters())
    G(torch.randn(3, 4)).sum().backward()
    opt.step()
    return save_checkpoint(run, step, nets(step), {"step": step, "marker": marker, "opt": opt.state_dict()}, keep)


def pointer(run: Path) -> str:
    return (run / CHECKPOINT_DIR / "latest").read_text().strip()


def quiet_latest(run: Path) -> Path | None:
    """latest_checkpoint, failing the test if it had to skip anything."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        return latest_checkpoint(run)


def damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        if how == "empty":
            fh.truncate(0)
        elif how == "truncated":
            fh.truncate(size // 2)
        else:  # "zeroed": the length survived, the data did not (a power cut on some filesystems)
            fh.write(bytes(size))


# ---------------------------------------------------------------------------- fallback on damage


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "no-manifest"])
@pytest.mark.parametrize("name,how", [
    ("generator.safetensors", "truncated"), ("discriminator.safetensors", "empty"),
    ("generator.safetensors", "zeroed"), ("state.pt", "truncated"), ("state.pt", "empty"),
    ("state.pt", "zeroed"), ("generator.json", "truncated"),
])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, name, how, manifest):
    for step in (1, 2, 3):
        newest = save(tmp_path, step)
    if not manifest:  # checkpoints written before manifests: the per-file checks alone must catch it
        (newest / ck.MANIFEST).unlink()
    assert quiet_latest(tmp_path) == newest
    damage(newest / name, how)
    with pytest.warns(CheckpointWarning, match=rf"skipped unreadable checkpoint .*step-00000003 \({name}"):
        folder = latest_checkpoint(tmp_path)
    assert folder.name == "step-00000002"
    assert load_state(folder)["step"] == 2
    with pytest.warns(CheckpointWarning):
        assert find_checkpoint(tmp_path) == folder


def test_missing_file_missing_folder_and_nothing_readable(tmp_path):
    for step in (1, 2):
        save(tmp_path, step)
    (tmp_path / CHECKPOINT_DIR / "step-00000002" / "discriminator.json").unlink()
    with pytest.warns(CheckpointWarning, match="discriminator.json is missing"):
        assert latest_checkpoint(tmp_path).name == "step-00000001"
    (tmp_path / CHECKPOINT_DIR / "latest").write_text("step-00000009\n")  # names a folder that is gone
    with pytest.warns(CheckpointWarning, match="step-00000009 \\(missing\\)"):
        assert latest_checkpoint(tmp_path).name == "step-00000001"
    damage(tmp_path / CHECKPOINT_DIR / "step-00000001" / "state.pt", "empty")
    with pytest.warns(CheckpointWarning, match="no readable checkpoint left"):
        assert latest_checkpoint(tmp_path) is None
    with pytest.warns(CheckpointWarning), pytest.raises(GanforgeError, match="no readable checkpoint"):
        find_checkpoint(tmp_path)


def test_a_newer_complete_folder_than_latest_names_wins(tmp_path):
    save(tmp_path, 1)
    save(tmp_path, 2)
    (tmp_path / CHECKPOINT_DIR / "latest").write_text("step-00000001\n")  # killed before latest moved on
    assert quiet_latest(tmp_path).name == "step-00000002"


def test_trainer_resumes_from_the_previous_checkpoint_when_the_newest_is_truncated(tiny_npz, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_npz, "train.max_steps=4", "train.checkpoint_every=2", "train.ema_kimg=0.05")
    Trainer(cfg, run).run()
    assert pointer(run) == "step-00000004" and quiet_latest(run).name == "step-00000004"
    damage(run / CHECKPOINT_DIR / "step-00000004" / "generator_ema.safetensors", "truncated")
    with pytest.warns(CheckpointWarning, match="step-00000004 \\(generator_ema.safetensors"):
        trainer = Trainer(cfg, run, resume=True)
    assert trainer.step == 2
    with pytest.warns(CheckpointWarning):
        summary = trainer.run()
    assert summary["step"] == 4
    assert pointer(run) == "step-00000004" and quiet_latest(run).name == "step-00000004"
    assert checkpoint_problem(run / CHECKPOINT_DIR / "step-00000004", deep=True) is None


# ---------------------------------------------------------------------------- re-saves and interruptions


def test_resaving_the_same_step_keeps_latest_valid(tmp_path):
    save(tmp_path, 1)
    for marker in range(3):
        folder = save(tmp_path, 2, marker=marker)
        assert pointer(tmp_path) == "step-00000002" and folder.is_dir()
        assert quiet_latest(tmp_path) == folder and load_state(folder)["marker"] == marker
    names = sorted(p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir())
    assert names == ["latest", "step-00000001", "step-00000002"]


class Crash(Exception):
    pass


@pytest.mark.parametrize("resave", [False, True], ids=["new-step", "same-step"])
def test_an_interruption_at_any_rename_leaves_latest_naming_a_complete_checkpoint(tmp_path, monkeypatch, resave):
    """Stop the save at every os.replace in turn: `latest` must name a complete folder each time."""
    real_replace = os.replace
    for crash_at in range(8):
        run = tmp_path / f"crash-{crash_at}"
        save(run, 1)
        save(run, 2, marker=0)
        calls = []

        def replace(src, dst):
            calls.append(dst)
            if len(calls) > crash_at:
                raise Crash
            real_replace(src, dst)

        monkeypatch.setattr(ck.os, "replace", replace)
        try:
            save(run, 2 if resave else 3, marker=1)
            finished = True
        except Crash:
            finished = False
        monkeypatch.setattr(ck.os, "replace", real_replace)
        named = run / CHECKPOINT_DIR / pointer(run)
        assert checkpoint_problem(named) is None, (crash_at, named)
        folder = quiet_latest(run)
        state = load_state(folder)
        assert state["step"] in (2, 3) and (state["marker"] == 1 or not finished)
        if finished:
            break
        save(run, 3, marker=2)  # the next save cleans up after the interrupted one
        assert quiet_latest(run).name == "step-00000003"
        assert not list((run / CHECKPOINT_DIR).glob(".tmp-*"))
    assert finished and crash_at >= 2


# ---------------------------------------------------------------------------- pruning


def test_pruning_keeps_two_complete_checkpoints_and_the_one_latest_names(tmp_path):
    root = tmp_path / CHECKPOINT_DIR
    for step in range(1, 5):
        save(tmp_path, step, keep=1)
    assert sorted(p.name for p in root.glob("step-*")) == ["step-00000003", "step-00000004"]  # keep=1 -> 2

    damage(root / "step-00000004" / "state.pt", "truncated")  # damaged folders do not count as kept
    save(tmp_path, 5, keep=1)
    assert sorted(p.name for p in root.glob("step-*")) == ["step-00000003", "step-00000005"]

    (root / "latest").write_text("step-00000003\n")  # `latest` naming an older folder protects it
    (root / ".tmp-step-00000009-1-ab").mkdir()  # a temporary left by a killed save
    (root / ".tmp-step-00000004-1-cd-link").mkdir()
    ck._prune(root, keep=1, protect="step-00000006")
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-00000003", "step-00000005"]
    save(tmp_path, 6, keep=1)
    save(tmp_path, 7, keep=3)
    assert sorted(p.name for p in root.glob("step-*")) == ["step-00000005", "step-00000006", "step-00000007"]


# ---------------------------------------------------------------------------- best


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_save_best_replaces_durably(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(ck, "_exchange", lambda a, b: False)
    G = nets()["generator"][0]
    for value in (3.0, 2.0):
        final = save_best(tmp_path, G, {"format": ck.GENERATOR_FORMAT}, {"value": value})
        assert (final / "best.json").read_text().count(str(value)) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    os.replace(final, tmp_path / ".old-best")  # killed between the fallback's two renames
    save_best(tmp_path, G, {"format": ck.GENERATOR_FORMAT}, {"value": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    assert "1.0" in (tmp_path / "best" / "best.json").read_text()


# ---------------------------------------------------------------------------- SIGKILL


KILLS = 8


def _train_child(cfg, run, dataset, conn):
    trainer = Trainer(cfg, run, resume=True, dataset=dataset)
    conn.send(trainer.step)
    trainer.run()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL") or "fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs SIGKILL and fork")
def test_a_run_killed_at_random_moments_always_resumes(tiny_npz, tmp_path):
    """checkpoint_every=1: SIGKILL lands mostly inside saves (and prunes, and the same-step re-save
    of a step whose folder exists). After each kill, `latest` names a complete checkpoint that
    loads fully, and the next process resumes from exactly that step."""
    run = tmp_path / "run"
    extra = ("train.checkpoint_every=1", "train.keep_checkpoints=1", "train.ema_kimg=0.05", "train.log_every=50")
    Trainer(tiny_config(tiny_npz, "train.max_steps=1", *extra), run).run()
    cfg = tiny_config(tiny_npz, "train.max_steps=100000", *extra)
    dataset = Trainer(cfg, run, resume=True).dataset
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    # the kills' delays after the child has resumed, stratified over 0-0.5 s: one in each sixteenth of a second,
    # in random order, so that few kills still land at spread moments of a loop that saves at every step
    delays = [(k + rng.random()) * 0.5 / KILLS for k in rng.sample(range(KILLS), KILLS)]
    steps, step = [], 1  # the checkpoint step after each kill
    resumed = 0  # kills after which a new process resumed from exactly that step
    for kill in range(KILLS):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_train_child, args=(cfg, run, dataset, child), daemon=True)
        proc.start()
        child.close()
        assert parent.poll(60), f"kill {kill}: the child did not start"
        started = parent.recv()
        assert started == step, f"kill {kill}: resumed from step {started}, the checkpoint holds step {step}"
        resumed += kill > 0
        time.sleep(delays[kill])
        proc.kill()
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL, f"kill {kill}: the child ended by itself ({proc.exitcode})"

        named = run / CHECKPOINT_DIR / pointer(run)
        assert checkpoint_problem(named, deep=True) is None, f"kill {kill}: latest names {named}"
        folder = quiet_latest(run)
        state = load_state(folder)
        trainer = Trainer(cfg, run, resume=True, dataset=dataset)  # loads G, D, G's average and the state
        for name, module in (("generator", trainer.G), ("discriminator", trainer.D)):
            load_network_weights(folder, name, module)
        assert trainer.step == state["step"] >= step
        step = trainer.step
        steps.append(step)
    summary = Trainer(tiny_config(tiny_npz, f"train.max_steps={step + 2}", *extra), run, resume=True,
                      dataset=dataset).run()  # the last kill's resume, run to its end
    resumed += summary["step"] == step + 2
    print(f"{resumed}/{KILLS} resumed; checkpoint step after each kill: {steps}")
    assert resumed == KILLS
    assert steps[-1] > steps[0]  # the run made progress across the kills


def _resave_child(run, conn):
    conn.send(True)
    marker = 0
    while True:
        marker += 1
        save(run, 2, marker=marker)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL") or "fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs SIGKILL and fork")
def test_resaving_one_step_killed_at_random_moments_leaves_latest_valid(tmp_path):
    save(tmp_path, 1)
    save(tmp_path, 2)
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(99)
    for kill in range(10):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_resave_child, args=(tmp_path, child), daemon=True)
        proc.start()
        child.close()
        assert parent.poll(60) and parent.recv()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.join(10)
        named = tmp_path / CHECKPOINT_DIR / pointer(tmp_path)
        assert checkpoint_problem(named, deep=True) is None, f"kill {kill}: latest names {named}"
        assert load_state(quiet_latest(tmp_path))["step"] == 2
    save(tmp_path, 3)
    assert sorted(p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir()) == ["latest", "step-00000002", "step-00000003"]
