"""The privacy commands as a user runs them: train with a budget, sample (which states epsilon), refusals."""
import pytest

pytest.importorskip("opacus")

from helpers import TINY  # noqa: E402
from ganforge.cli.main import main  # noqa: E402

SETS = [arg for opt in TINY + ["model.d_norm=group", "train.batch_size=10", "dp.accountant=rdp"]
        for arg in ("--set", opt)]


def test_train_with_a_budget_then_sample_states_epsilon(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_npz), "--out", str(run), "--max-steps", "4", "--dp-epsilon", "8",
                 "--dp-max-grad-norm", "0.5", *SETS]) == 0
    out = capsys.readouterr().out
    assert "privacy: budget epsilon 8, delta 1e-03; noise multiplier" in out
    assert "stopped at step 4" in out and "spent (budget epsilon 8)" in out
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "grid.png")]) == 0
    out = capsys.readouterr().out
    assert "differentially private generator: epsilon = " in out and "clipping 0.5" in out


def test_refusals_are_one_line_errors(tiny_npz, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_npz), "--out", str(tmp_path / "r"), "--max-steps", "2",
                 "--dp-noise", "1", "--set", "reg.r1_gamma=1", *SETS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "gradient penalties" in err[0]


def test_a_noise_multiplier_alone_trains_without_a_hidden_budget(tiny_npz, tmp_path, capsys):
    from ganforge.configure import build_config

    assert build_config(None, None, [("dp.noise", 1.0)]).dp.epsilon is None  # the dp recipe, minus its budget
    assert build_config("dp", None, [("dp.noise", 1.0), ("dp.epsilon", 5.0)]).dp.epsilon == 5.0
    assert build_config("dp").dp.epsilon == 10.0  # the recipe alone keeps its budget
    assert main(["train", "--data", str(tiny_npz), "--out", str(tmp_path / "r"), "--max-steps", "2",
                 "--dp-noise", "0.3", *SETS]) == 0
    out = capsys.readouterr().out
    assert "privacy: no budget, delta 1e-03; noise multiplier 0.3" in out and "stopped at step 2:" in out


def test_a_delta_of_one_over_n_is_refused_in_one_line(tiny_npz, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_npz), "--out", str(tmp_path / "r"), "--max-steps", "2",
                 "--dp-noise", "1", "--dp-delta", "0.025", *SETS])  # 40 records: 1/N = 0.025
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "dp.delta=0.025 is not below 1/N" in err[0]


def test_evaluating_a_private_run_reads_its_training_images_only_when_asked(tiny_npz, tmp_path, capsys):
    import shutil

    import numpy as np

    from ganforge.metrics.run_eval import evaluate_run

    private_data = tmp_path / "private.npz"
    shutil.copy(tiny_npz, private_data)
    run = tmp_path / "run"
    assert main(["train", "--data", str(private_data), "--out", str(run), "--max-steps", "2", "--dp-noise", "1",
                 *SETS]) == 0
    held_out = tmp_path / "held.npz"
    rng = np.random.default_rng(1)
    np.savez(held_out, images=(rng.random((40, 14, 14)) * 200).astype(np.uint8))
    private_data.unlink()  # any read of the training images would now fail
    said = []
    results = evaluate_run(run, real=str(held_out), n=40, metrics="fd", progress=False, say=said.append)
    assert "fd_domain" in results and len(said) == 1 and "training images are not read" in said[0]
    with pytest.raises(Exception, match="private.npz"):  # asked for them: they are read (and missing here)
        evaluate_run(run, real=str(held_out), train=str(private_data), n=40, metrics="fd,memorisation",
                     progress=False, say=said.append)
