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
    ["schedule.shape=cosine", "schedule.kimg=0.05", "schedule.lr_end_factor=0.25", "schedule.beta2_end=0.99",
     "reg.r1_gamma=1", "reg.r2_gamma=1", "schedule.gamma_end_factor=0.1", "schedule.ema_kimg_end=0.05",
     "reg.augment=translation", "reg.augment_p=0", "schedule.augment_p_end=0.5", "train.ema_rampup=0.05"],
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


def test_few_shot_data_trains_with_the_whole_set_as_batch(tiny_npz, tmp_path):
    trainer = Trainer(tiny_config(tiny_npz, "train.batch_size=64", "train.max_steps=3"), tmp_path / "r")
    assert trainer.cfg.train.batch_size == 40 and trainer.steps_per_epoch == 1
    assert any("fewer than one batch of 64: training with batches of 40" in n for n in trainer.notices)
    assert trainer.run()["step"] == 3
    events = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "notice" for e in events)
    # the saved config holds the batch used, so the run resumes with the same options
    Trainer(tiny_config(tiny_npz, "train.batch_size=64", "train.max_steps=5"), tmp_path / "r", resume=True).run()


def test_library_call_validates_and_fills_the_default_stopping_rule(tiny_npz, tmp_path):
    from ganforge.config import Config, parse_override, set_value
    from helpers import TINY

    cfg = Config()  # not validated: as a Python user would build it
    for text in [f"data.source={tiny_npz}", *TINY]:
        set_value(cfg, *parse_override(text))
    trainer = Trainer(cfg, tmp_path / "r")
    assert trainer.cfg.train.max_epochs == 20.0 and trainer.total_steps() == 100  # 20 epochs x 5 batches
    assert cfg.train.max_epochs is None  # the caller's object is untouched
    set_value(cfg, "train.batch_size", 0)
    with pytest.raises(GanforgeError, match="batch_size must be positive"):
        Trainer(cfg, tmp_path / "bad")


def test_library_resume_refuses_changed_training_options(tiny_npz, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=2"), run).run()
    saved = (run / "config.json").read_text()
    with pytest.raises(GanforgeError, match="g_optim.lr"):
        Trainer(tiny_config(tiny_npz, "train.max_steps=4", "g_optim.lr=0.1"), run, resume=True)
    assert (run / "config.json").read_text() == saved  # not overwritten
    summary = Trainer(tiny_config(tiny_npz, "train.max_steps=4", "train.log_every=1"), run, resume=True).run()
    assert summary["step"] == 4  # stopping and display options may change


def test_checkpoint_state_is_device_independent_and_keeps_the_resolved_precision(tiny_npz, tmp_path, monkeypatch):
    import torch

    from ganforge.training import loop
    from ganforge.training.checkpoint import load_state

    run = tmp_path / "run"
    cfg = tiny_config(tiny_npz, "train.max_steps=2", "train.precision=auto")
    monkeypatch.setattr(loop, "resolve_precision", lambda name, device, configure=True: loop.Precision(
        "bf16" if name in ("auto", "bf16") else "fp32", device.type))  # this machine: auto -> bf16
    Trainer(cfg, run).run()
    state = load_state(latest_checkpoint(run))
    assert state["precision"] == "bf16"
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor)]
    assert all(t.device.type == "cpu" for t in tensors)
    assert "noise_rng" not in state and "step_rng" not in state  # no device generator states: seeded per step

    monkeypatch.setattr(loop, "resolve_precision", lambda name, device, configure=True: loop.Precision(
        "fp32" if name in ("auto", "fp32") else "bf16", device.type))  # another machine: auto -> fp32
    resumed = Trainer(tiny_config(tiny_npz, "train.max_steps=3", "train.precision=auto"), run, resume=True)
    assert resumed.precision.name == "bf16" and resumed.opts.precision.name == "bf16"
    assert any("keeping the run's precision bf16" in n for n in resumed.notices)
    explicit = Trainer(tiny_config(tiny_npz, "train.max_steps=3", "train.precision=fp32"), run, resume=True)
    assert explicit.precision.name == "fp32"


def test_step_randomness_depends_only_on_seed_and_step(tiny_npz, tmp_path):
    a = Trainer(tiny_config(tiny_npz, "train.max_steps=1"), tmp_path / "a").state
    b = Trainer(tiny_config(tiny_npz, "train.max_steps=1"), tmp_path / "b").state
    b.step = 7
    b.seed_step()
    a.noise_rng.manual_seed(0)  # whatever state the generators were left in
    a.step = 7
    a.seed_step()
    assert a.noise(4).equal(b.noise(4))
    a.step = 8
    a.seed_step()
    assert not a.noise(4).equal(b.noise(4))


def test_adaptive_augmentation_starts_at_zero(tiny_npz, tmp_path):
    trainer = Trainer(tiny_config(tiny_npz, "reg.augment=translation", "reg.ada=true", "train.max_steps=1"),
                      tmp_path / "r")
    assert trainer.opts.augment.p == 0.0 and float(trainer.opts.ada.p) == 0.0
    fixed = Trainer(tiny_config(tiny_npz, "reg.augment=translation", "train.max_steps=1"), tmp_path / "f")
    assert fixed.opts.augment.p == 1.0 and fixed.opts.ada is None


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


def test_a_run_holds_its_backend_settings_only_while_it_trains(tiny_npz, tmp_path, monkeypatch):
    """What a GPU run switches on for the process (TF32, cudnn.benchmark) is the caller's again once it ends;
    on the CPU the CUDA settings are made to apply so that the flags can be watched."""
    import torch

    from ganforge.training import loop
    from ganforge.training.runtime import GPU_TRAINING_SETTINGS, backend_settings, get_backend_settings

    monkeypatch.setattr(loop, "training_settings", lambda device: dict(GPU_TRAINING_SETTINGS))
    with backend_settings(matmul_allow_tf32=False, cudnn_allow_tf32=False, cudnn_benchmark=False):
        before = get_backend_settings()
        trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=2", "train.log_every=1"), tmp_path / "run")
        assert get_backend_settings() == before  # building a Trainer switches nothing
        seen = []
        trainer.run(on_log=lambda record: seen.append(
            (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)))
        assert seen == [(True, True, True)] * 2  # while training: the run's settings
        assert get_backend_settings() == before  # after: the caller's again
        with trainer.backend():  # for a caller that drives train_step itself
            assert torch.backends.cudnn.benchmark
        assert get_backend_settings() == before


def test_best_json_holds_the_value_ganforge_eval_gives_best(tiny_npz, tmp_path):
    """best/ is chosen as ganforge eval measures: evaluate_run on RUN/best with best.json's n gives best.json's
    value exactly, though the run trains in bfloat16 with a seed of its own (eval samples in float32 with its
    default seed) and its G is a conditional moving average."""
    from ganforge import evaluate_run

    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=4", "train.eval_every=2", "train.eval_n=16", "train.seed=5",
                        "train.eval_metrics=fd", "train.precision=bf16", "train.ema_kimg=0.05",
                        "model.conditional=true"), run).run()
    best = json.loads((run / "best" / "best.json").read_text())
    results = evaluate_run(run / "best", n=best["n"], metrics="fd", progress=False)
    assert best["n"] == 16 and results["step"] == best["step"]
    assert results[best["metric"]] == best["value"]


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_0_builds_the_periodic_evaluation(rank, tiny_npz, tmp_path, monkeypatch):
    """Under torchrun the evaluation (and the domain network it trains into the cache) belongs to rank 0."""
    from ganforge.training import distributed, loop

    monkeypatch.setattr(loop.distributed, "init", lambda device: (distributed.Ranks(rank, 2, rank), None))
    monkeypatch.setattr(loop.distributed, "wrap", lambda module, device: module)  # no process group here
    cache = tmp_path / "cache"
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=2", "train.eval_every=2", "train.eval_n=16",
                                  f"data.cache_dir={cache}"), tmp_path / "run")
    assert (trainer.evaluation is not None) == (rank == 0)
    assert (cache / "features").is_dir() == (rank == 0)
