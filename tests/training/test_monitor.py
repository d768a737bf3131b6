"""Divergence rollback and collapse warnings, with planted failures."""
import json

import pytest
import torch

from ganforge.config import MonitorConfig
from ganforge.errors import GanforgeError
from ganforge.training.loop import Trainer
from ganforge.training.monitor import HealthMonitor, mean_pairwise_distance
from helpers import tiny_config


def events(run):
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if "event" in r], [r for r in lines if "loss_d" in r]


def plant_nan_after(trainer, steps: set):
    """Poison G's weights right after the listed steps (each once)."""
    original = trainer.train_step

    def step():
        stats = original()
        if trainer.step in steps:
            steps.discard(trainer.step)
            with torch.no_grad():
                next(trainer.G.parameters()).fill_(float("nan"))
        return stats

    trainer.train_step = step


def test_planted_nan_rolls_back_with_lower_lr_and_training_continues(tiny_npz, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=10", "train.checkpoint_every=2"), run)
    plant_nan_after(trainer, {5})
    summary = trainer.run()
    assert summary["step"] == 10
    evs, logs = events(run)
    assert [e["event"] for e in evs] == ["rollback"]
    assert "step 6" in evs[0]["message"] and "rolled back to step 4" in evs[0]["message"]
    assert logs[-1]["lr_g"] == pytest.approx(1e-4) and logs[-1]["lr_d"] == pytest.approx(1e-4)
    assert all(torch.isfinite(p).all() for p in trainer.G.parameters())
    # the lowered learning rate survives a resume
    resumed = Trainer(tiny_config(tiny_npz, "train.max_steps=12"), run, resume=True)
    assert resumed.g_opt.param_groups[0]["lr"] == pytest.approx(1e-4) and resumed.rollbacks == 1


def test_repeated_divergence_stops_clearly(tiny_npz, tmp_path):
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=40", "train.checkpoint_every=2",
                                  "monitor.max_rollbacks=2"), tmp_path / "run")
    plant_nan_after(trainer, set(range(1, 41)))
    with pytest.raises(GanforgeError, match="diverged.*after 2 rollback"):
        trainer.run()


def collapse_after(trainer, step_from: int):
    """From step_from on, G maps every noise vector to the image of the first one."""
    G = trainer.G
    forward = G.forward

    def collapsed(z):
        out = forward(z)
        return out[:1].expand_as(out) if trainer.step >= step_from else out

    G.forward = collapsed


def test_planted_collapse_warns_and_can_stop(tiny_npz, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=16"), run)
    collapse_after(trainer, 8)
    trainer.run()
    evs, logs = events(run)
    assert any(e["event"] == "collapse_warning" for e in evs)
    before = [r["diversity"] for r in logs if r["step"] < 8]
    assert logs[-1]["diversity"] < 0.01 * min(before)  # one image repeated: no diversity left

    run2 = tmp_path / "run2"
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=40", "monitor.stop_on_collapse=true"), run2)
    collapse_after(trainer, 8)
    summary = trainer.run()
    assert summary["step"] < 40 and "collapse" in summary["reason"]


def test_monitor_units():
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    assert mean_pairwise_distance(images[:1].expand(6, -1, -1, -1)) == 0
    m = HealthMonitor(MonitorConfig(loss_limit=100), images)
    assert m.diversity(images) == pytest.approx(1.0)
    assert "NaN" in m.divergence({"loss_d": float("nan"), "loss_g": 1.0}).replace("nan", "NaN")
    assert "loss_limit" in m.divergence({"loss_d": 1.0, "loss_g": 1e6})
    assert m.divergence({"loss_d": 1.0, "loss_g": 2.0}) is None


def test_classes_dropping_at_an_evaluation_warns():
    m = HealthMonitor(MonitorConfig(), torch.rand(4, 1, 8, 8) * 2 - 1)
    assert m.classes_dropped({"fd_domain": 3.0}) is None  # no class metric: nothing to judge
    assert m.classes_dropped({"classes_covered": 10, "classes_total": 10}) is None
    warning = m.classes_dropped({"classes_covered": 6, "classes_total": 10, "classes_missing": [1, 3, 5, 7]})
    assert "6 of 10" in warning and "down from 10" in warning and "1, 3, 5, 7" in warning
    restored = HealthMonitor(MonitorConfig(), torch.rand(4, 1, 8, 8) * 2 - 1)
    restored.load_state_dict(m.state_dict())
    assert restored.classes_dropped({"classes_covered": 9, "classes_total": 10}) is not None


def test_planted_class_collapse_warns_through_evaluation(tiny_npz, tmp_path):
    """G keeps varied pixels but every sample becomes the first noise vector's class: the pixel
    signal may stay calm, the evaluation's class count falls and a warning is logged."""
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=12", "train.eval_every=4",
                                  "train.eval_metrics=fd", "train.eval_n=64"), run)
    covered = iter([3, 3, 1])
    original = trainer.evaluate

    def evaluate():
        results = original()
        results.update(classes_covered=next(covered), classes_total=3)  # planted class counts
        return results

    trainer.evaluate = evaluate
    trainer.run()
    evs, _ = events(run)
    warnings = [e for e in evs if e["event"] == "collapse_warning"]
    assert len(warnings) == 1 and "1 of 3 classes" in warnings[0]["message"] and warnings[0]["step"] == 12
