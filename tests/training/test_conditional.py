"""Class-conditional training and sampling, end to end on a tiny labelled set."""
import numpy as np
import pytest
import torch

from helpers import tiny_config
from ganforge import load_generator
from ganforge.errors import GanforgeError
from ganforge.sampling import write_samples
from ganforge.training.loop import Trainer


def test_conditional_run_trains_resumes_and_samples_by_class(tiny_npz, tmp_path):
    run = tmp_path / "run"
    extra = ("model.conditional=true", "train.ema_kimg=0.05", "reg.r1_gamma=1", "train.grid_size=8")
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=3", *extra), run)
    assert trainer.num_classes == 2 and trainer.model_cfg.num_classes == 2
    assert trainer.grid.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # one grid row per class
    trainer.run()
    Trainer(tiny_config(tiny_npz, "train.max_steps=4", *extra), run, resume=True).run()

    gen = load_generator(run)
    assert gen.num_classes == 2 and gen.class_counts == [20, 20]
    z = gen.noise(6, seed=0)
    a = gen.generate(z, labels=torch.zeros(6, dtype=torch.long))
    b = gen.generate(z, labels=torch.ones(6, dtype=torch.long))
    assert not torch.equal(a, b)  # the label steers G
    assert torch.equal(gen.sample(6, seed=0, labels=1), gen.sample(6, seed=0, labels="1"))
    with pytest.raises(GanforgeError, match="class-conditional: pass labels"):
        gen.generate(z)
    with pytest.raises(GanforgeError, match="unknown class"):
        gen.labels_for(4, "sandal")

    written = write_samples(run, 10, tmp_path / "s.npz", seed=1)
    data = np.load(written.path)
    assert data["labels"].tolist() == [0, 1] * 5 and data["images"].shape[0] == 10
    one = np.load(write_samples(run, 5, tmp_path / "one.npz", classes=1).path)
    assert one["labels"].tolist() == [1] * 5
    grid = write_samples(run, 8, tmp_path / "grid.png")
    assert grid.n == 8  # 2 rows (classes) x 4 columns


def test_conditional_needs_labels(tmp_path):
    path = tmp_path / "unlabelled.npz"
    np.savez(path, images=np.zeros((20, 14, 14), np.uint8))
    with pytest.raises(GanforgeError, match="model.conditional needs labelled data"):
        Trainer(tiny_config(path, "model.conditional=true", "train.max_steps=1"), tmp_path / "r")


def test_unconditional_generator_refuses_a_class(tiny_npz, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=1"), run).run()
    gen = load_generator(run)
    assert gen.num_classes == 0 and gen.labels_for(3) is None
    with pytest.raises(GanforgeError, match="not class-conditional"):
        gen.labels_for(3, "1")


def test_evaluating_a_conditional_run_adds_cas_and_per_class_fd(tiny_npz, tmp_path):
    from ganforge.metrics.run_eval import evaluate_run

    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=2", "model.conditional=true"), run).run()
    results = evaluate_run(run, real=str(tiny_npz), n=40, metrics="fd", progress=False)
    per_class = results["fd_domain_per_class"]
    assert len(per_class) == 2 and all(v >= 0 for v in per_class)
    assert results["fd_domain_class_mean"] == pytest.approx(sum(per_class) / 2)
    assert 0.0 <= results["cas"] <= 1.0
    plain = tmp_path / "plain"
    Trainer(tiny_config(tiny_npz, "train.max_steps=2"), plain).run()
    assert "cas" not in evaluate_run(plain, real=str(tiny_npz), n=40, metrics="fd", progress=False)
