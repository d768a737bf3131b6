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
    assert "privacy: budget epsilon 8, delta 1e-02; noise multiplier" in out
    assert "stopped at step 4" in out and "spent (budget epsilon 8)" in out
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "grid.png")]) == 0
    out = capsys.readouterr().out
    assert "differentially private generator: epsilon = " in out and "clipping 0.5" in out


def test_refusals_are_one_line_errors(tiny_npz, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_npz), "--out", str(tmp_path / "r"), "--max-steps", "2",
                 "--dp-noise", "1", "--set", "reg.r1_gamma=1", *SETS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "gradient penalties" in err[0]
