"""The loop: stopping rules, checkpoints and bit-exact resumption."""
import json
import os
import signal
from pathlib import Path

import pytest
from safetensors.torch import load_file

from helpers import tiny_config
from ganforge.errors import GanforgeError
from ganforge.training.checkpoint import latest_checkpoint
from ganforge.training.loop import Trainer


def weights(run: Path) -> dict:
    ckpt = latest_checkpoint(run)
    return {name: load_file(str(ckpt / f"{name}.safetensors")) for name in ("generator", "discriminator")}


def assert_same_weights(a: dict, b: dict):
    for net in a:
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            assert a[net][key].equal(b[net][key]), f"{net}.{key} differs"


def test_stops_at_max_steps_and_writes_run_folder(tiny_npz, tmp_path):
    run = tmp_path / "run"
    summary = Trainer(tiny_config(tiny_npz, "train.max_steps=5"), run).run()
    assert summary["step"] == 5 and summary["reason"] == "reached the step/epoch limit"
    assert (run / "config.json").is_file() and (run / "samples" / "latest.png").is_file()
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 5]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "images_per_sec", "epoch"} <= set(log[0])
    ckpt = latest_checkpoint(run)
    assert ckpt.name == "step-00000005"
    meta = json.loads((ckpt / "generator.json").read_text())
    assert meta["model"]["resolution"] == 16 and meta["geometry"]["height"] == 14


def test_epoch_limit(tiny_npz, tmp_path):
    # 40 images, batch 8 -> 5 batches per epoch; 2 D steps per G step -> 1 epoch = 3 G steps (rounded up)
    summary = Trainer(tiny_config(tiny_npz, "train.max_epochs=1", "train.d_steps=2"), tmp_path / "r").run()
    assert summary["step"] == 3


@pytest.mark.parametrize("extra", [
    [], ["train.d_steps=2", "g_optim.name=sgd"], ["train.ema_kimg=0.05", "train.eval_every=3", "train.eval_n=16"],
    ["loss.d=relativistic", "loss.g=relativistic", "model.d_norm=none", "model.d_spectral_norm=true",
     "model.d_mbstd=true", "model.d_dropout=0.1", "reg.augment=translation,cutout,colour", "reg.ada=true",
     "reg.ada_kimg=0.1", "reg.r1_gamma=1", "reg.r2_gamma=1", "reg.r_interval=2", "reg.instance_noise=0.05"],
])
def test_resume_reaches_the_same_weights_bit_for_bit(tiny_npz, tmp_path, extra):
    straight = tmp_path / "straight"
    Trainer(tiny_config(tiny_npz, "train.max_steps=8", *extra), straight).run()

    split = tmp_path / "split"
    Trainer(tiny_config(tiny_npz, "train.max_steps=3", *extra), split).run()
    Trainer(tiny_config(tiny_npz, "train.max_steps=8", *extra), split, resume=True).run()
    assert_same_weights(weights(straight), weights(split))


def test_interrupt_saves_and_resume_matches(tiny_npz, tmp_path):
    straight = tmp_path / "straight"
    Trainer(tiny_config(tiny_npz, "train.max_steps=10"), straight).run()

    run = tmp_path / "interrupted"
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=10"), run)
    summary = trainer.run(on_log=lambda rec: os.kill(os.getpid(), signal.SIGINT) if rec["step"] == 4 else None)
    assert summary["interrupted"] and summary["step"] == 4
    assert latest_checkpoint(run).name == "step-00000004"
    Trainer(tiny_config(tiny_npz, "train.max_steps=10"), run, resume=True).run()
    assert_same_weights(weights(straight), weights(run))


def test_resume_refuses_different_data(tiny_npz, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=2"), run).run()
    other = tmp_path / "other.npz"
    import numpy as np

    np.savez(other, images=np.zeros((40, 14, 14), np.uint8))
    with pytest.raises(GanforgeError, match="differ"):
        Trainer(tiny_config(other, "train.max_steps=4"), run, resume=True)


def test_old_checkpoints_pruned(tiny_npz, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=6", "train.checkpoint_every=1", "train.keep_checkpoints=2"), run).run()
    names = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert names == ["step-00000005", "step-00000006"]
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_batch_larger_than_data(tiny_npz, tmp_path):
    with pytest.raises(GanforgeError, match="fewer than one batch"):
        Trainer(tiny_config(tiny_npz, "train.batch_size=64", "train.max_steps=1"), tmp_path / "r")


def test_periodic_evaluation_logs_and_keeps_best(tiny_npz, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=4", "train.eval_every=2", "train.eval_n=16",
                        "train.eval_metrics=fd,kid"), run).run()
    evals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "eval" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"fd_domain", "kid_domain", "extractor"} <= set(evals[0]["eval"])
    best = json.loads((run / "best" / "best.json").read_text())
    assert best["metric"] == "fd_domain"
    assert best["value"] == min(r["eval"]["fd_domain"] for r in evals)
    from ganforge import load_generator

    assert load_generator(run / "best").step == best["step"]
