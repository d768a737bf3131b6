"""Private training: the private D step adds up to the plain gradient, clipping is per record and per fake, epsilon is Opacus's, runs resume bit for bit,
the budget stops the run, and labels stay private."""
import json

import pytest
import torch

pytest.importorskip("opacus")

from opacus.accountants import PRVAccountant, RDPAccountant  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from helpers import tiny_config  # noqa: E402
from ganforge.losses import d_loss  # noqa: E402
from ganforge.training.checkpoint import latest_checkpoint  # noqa: E402
from ganforge.privacy.extension import private_training  # noqa: E402
from ganforge.training.loop import Trainer  # noqa: E402

# RDP: cheap to evaluate at every log line; PRV (the default) is checked where the accountant is the subject
DP = ["model.d_norm=group", "dp.noise=1.0", "train.batch_size=10", "dp.accountant=rdp"]
# the tests that drive Opacus's hooks by hand see the warning that the private step itself silences
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def private_trainer(data, run, *extra):
    return Trainer(tiny_config(data, *DP, *extra), run)


def plain_and_private_updates(trainer, real, fake, labels=None, fake_labels=None, class_weight=0.0):
    """D's plain gradient of its loss (+ the AC-GAN term) on (real, fake), and the private step's update on the
    same batches read off an SGD step with learning rate 1 (the run is built with no noise and no binding clip)."""
    import copy

    import torch.nn.functional as F

    private, D = private_training(trainer), trainer.state.D
    reference = copy.deepcopy(D)
    if class_weight:
        logits, classes = reference(real, labels, classes=True)
        loss = d_loss("minimax", logits, reference(fake, fake_labels)) + class_weight * F.cross_entropy(classes, labels)
    else:
        loss = d_loss("minimax", reference(real), reference(fake))
    loss.backward()
    plain = torch.cat([p.grad.flatten() for p in reference.parameters()])
    before = torch.cat([p.detach().flatten() for p in D.parameters()])
    private.d_step(private.gsm, private.optimizer, real, fake, trainer.state.opts, labels=labels,
                   fake_labels=fake_labels)
    return plain, before - torch.cat([p.detach().flatten() for p in D.parameters()])


UNBOUND = ["dp.max_grad_norm=1e6", "d_optim.name=sgd", "d_optim.lr=1", "d_optim.momentum=0", "train.batch_size=5"]


def test_without_clipping_or_noise_the_private_step_takes_the_plain_gradient(tiny_npz, tmp_path):
    """The real and the fake half, each summed over its own per-sample gradients and divided by E[B], add up
    to the gradient of D's loss when B = E[B] = the fakes' count: nothing is lost or counted twice."""
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1", *UNBOUND)
    private_training(trainer)._set_noise(0.0)
    torch.manual_seed(1)
    real, fake = torch.rand(5, 1, 16, 16) * 2 - 1, torch.rand(5, 1, 16, 16) * 2 - 1
    plain, update = plain_and_private_updates(trainer, real, fake)
    torch.testing.assert_close(update, plain, rtol=1e-4, atol=1e-6)


def test_each_record_and_each_fake_is_clipped_on_its_own(tiny_npz, tmp_path):
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1", "dp.max_grad_norm=0.01",
                              "d_optim.name=sgd", "d_optim.lr=1", "d_optim.momentum=0", "train.batch_size=6")
    private_training(trainer)._set_noise(0.0)
    real, fake = torch.rand(4, 1, 16, 16), torch.rand(6, 1, 16, 16)
    before = torch.cat([p.detach().flatten() for p in trainer.state.D.parameters()])
    private_training(trainer).d_step(private_training(trainer).gsm, private_training(trainer).optimizer, real, fake, trainer.state.opts)
    update = before - torch.cat([p.detach().flatten() for p in trainer.state.D.parameters()])
    assert update.norm() * 6 <= (4 + 6) * 0.01 * (1 + 1e-4)  # four records and six fakes, each clipped to 0.01


@pytest.mark.parametrize("accountant, cls", [("prv", PRVAccountant), ("rdp", RDPAccountant)])
def test_epsilon_is_opacus_accountant_for_the_run_noise_rate_and_steps(tiny_npz, tmp_path, accountant, cls):
    """The run's accountant is the one dp.accountant names (PRV, the default, and RDP), fed every D step."""
    run = tmp_path / "run"
    trainer = private_trainer(tiny_npz, run, "train.max_steps=6", "train.d_steps=2", f"dp.accountant={accountant}")
    summary = trainer.run()
    assert isinstance(private_training(trainer).accountant, cls)
    reference = cls()
    for _ in range(12):  # 6 G steps x 2 D steps
        reference.step(noise_multiplier=1.0, sample_rate=10 / 40)
    p = summary["privacy"]
    assert p["d_steps"] == 12 and p["sample_rate"] == 0.25 and p["delta"] == 1e-3 and p["accountant"] == accountant
    assert p["epsilon"] == pytest.approx(reference.get_epsilon(delta=1e-3), abs=1e-4)
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epsilon"] for r in log if "epsilon" in r] == sorted(r["epsilon"] for r in log if "epsilon" in r)
    meta = json.loads((latest_checkpoint(run) / "generator.json").read_text())
    assert meta["privacy"]["epsilon"] == p["epsilon"] and "privacy" in meta


def test_the_run_stops_before_its_budget_and_the_noise_is_planned_for_it(tiny_npz, tmp_path):
    cfg = tiny_config(tiny_npz, "model.d_norm=group", "train.batch_size=10", "dp.epsilon=3", "dp.noise=1.0",
                      "dp.accountant=rdp", "train.max_steps=20")  # the budget allows 3 steps
    summary = Trainer(cfg, tmp_path / "a").run()
    assert summary["reason"].startswith("reached the privacy budget") and summary["step"] < 20
    assert summary["privacy"]["epsilon"] <= 3.0
    reference = RDPAccountant()
    reference.history = [(1.0, 0.25, summary["privacy"]["d_steps"] + 1)]
    assert reference.get_epsilon(delta=1e-3) > 3.0  # one more step would have overspent

    planned = Trainer(tiny_config(tiny_npz, "model.d_norm=group", "train.batch_size=10", "dp.epsilon=3",
                                  "train.max_steps=4", "dp.accountant=rdp"), tmp_path / "b")
    result = planned.run()
    assert result["step"] == 4 and 2.95 <= result["privacy"]["epsilon"] <= 3.0
    reference = RDPAccountant()  # (the planning itself is checked for PRV and RDP in test_accounting.py)
    reference.history = [(private_training(planned).noise, 0.25, 4)]
    assert reference.get_epsilon(delta=1e-3) == pytest.approx(result["privacy"]["epsilon"], abs=1e-3)


@pytest.mark.parametrize("extra", [[], ["model.conditional=true", "dp.labels=histogram", "train.d_steps=2"]])
def test_a_private_run_resumes_bit_for_bit_with_its_accountant(tiny_npz, tmp_path, extra, monkeypatch):
    # two runs draw two secret seeds; for the comparison both get the same one (a resume reads it back)
    monkeypatch.setattr("ganforge.privacy.engine.draw_secret_seed", lambda: 1234)
    straight = tmp_path / "straight"
    first = private_trainer(tiny_npz, straight, "train.max_steps=6", *extra).run()
    split = tmp_path / "split"
    private_trainer(tiny_npz, split, "train.max_steps=3", *extra).run()
    resumed_trainer = Trainer(tiny_config(tiny_npz, *DP, "train.max_steps=6", *extra), split, resume=True)
    second = resumed_trainer.run()
    for name in ("generator", "discriminator"):
        a = load_file(str(latest_checkpoint(straight) / f"{name}.safetensors"))
        b = load_file(str(latest_checkpoint(split) / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), name
    assert first["privacy"] == second["privacy"]
    d_steps = 2 if extra else 1
    prior = [(20.0, 1.0, 1)] if extra else []  # the label histogram at the default dp.label_noise
    assert [tuple(e) for e in private_training(resumed_trainer).accountant.history] == [*prior, (1.0, 0.25, 6 * d_steps)]


def test_private_labels_generator_classes_come_from_the_release(tiny_npz, tmp_path):
    uniform = private_trainer(tiny_npz, tmp_path / "u", "model.conditional=true", "train.max_steps=2",
                              "dp.accountant=rdp")
    assert uniform.state.fake_label_probs.tolist() == [0.5, 0.5]
    free = uniform.run()["privacy"]["epsilon"]
    meta = json.loads((latest_checkpoint(tmp_path / "u") / "generator.json").read_text())
    assert meta["class_counts"] is None and meta["privacy"]["labels"] == "uniform"  # the true counts are not kept
    reference = RDPAccountant()
    reference.history = [(1.0, 0.25, 2)]
    assert free == pytest.approx(reference.get_epsilon(delta=1e-3), abs=1e-4)

    hist = private_trainer(tiny_npz, tmp_path / "h", "model.conditional=true", "dp.labels=histogram",
                           "dp.label_noise=2", "train.max_steps=2", "dp.accountant=rdp")
    counts = private_training(hist).class_counts  # 20 and 20, each plus N(0, 2^2) noise, rounded, at least 0
    assert len(counts) == 2 and all(0 <= c <= 40 for c in counts)
    assert hist.state.fake_label_probs.sum().item() == pytest.approx(1.0)
    spent = hist.run()["privacy"]["epsilon"]
    reference = RDPAccountant()
    reference.history = [(2.0, 1.0, 1), (1.0, 0.25, 2)]
    assert spent == pytest.approx(reference.get_epsilon(delta=1e-3), abs=1e-4)  # the release is paid for
    assert spent > free
    meta = json.loads((latest_checkpoint(tmp_path / "h") / "generator.json").read_text())
    assert meta["class_counts"] == counts


def test_a_batch_that_draws_no_record_still_takes_its_noisy_step(tiny_npz, tmp_path):
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1")
    before = [p.detach().clone() for p in trainer.state.D.parameters()]
    empty = torch.zeros(0, 1, 16, 16)
    fake = torch.zeros(0, 1, 16, 16)
    stats = private_training(trainer).d_step(private_training(trainer).gsm, trainer.state.d_opt, empty, fake, trainer.state.opts, step=0)
    assert stats["loss_d"].item() == 0.0 and len(private_training(trainer).accountant) == 1
    assert any(not a.equal(b) for a, b in zip(before, trainer.state.D.parameters()))  # noise moved D


def test_poisson_batches_vary_and_g_always_sees_the_fixed_batch(tiny_npz, tmp_path):
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1")
    sizes = {len(trainer.order.indices(b)) for b in range(30)}
    assert len(sizes) > 3 and all(0 <= s <= 40 for s in sizes)
    again = trainer.order.indices(7)
    assert again.equal(trainer.order.indices(7))  # a function of the secret seed and the batch number
    private_training(trainer).secret_seed += 1
    assert not trainer.order.indices(7).equal(again) or len(again) == 0
    assert trainer.state.fake_batch == 10


def test_a_private_run_evaluates_only_on_images_named_for_it(tiny_npz, tmp_path):
    run = tmp_path / "r"
    Trainer(tiny_config(tiny_npz, *DP, "train.max_steps=2", "train.eval_every=2", "train.eval_n=16",
                        f"train.eval_data={tiny_npz}"), run).run()
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert len(evals) == 1 and any(key.startswith("fd") for key in evals[0]["eval"])


def test_a_longer_limit_on_resume_keeps_the_noise_and_stops_at_the_budget(tiny_npz, tmp_path):
    run = tmp_path / "r"
    base = ["model.d_norm=group", "train.batch_size=10", "dp.epsilon=2", "dp.accountant=rdp"]
    first = Trainer(tiny_config(tiny_npz, *base, "train.max_steps=4"), run)
    noise = private_training(first).noise
    first.run()
    resumed = Trainer(tiny_config(tiny_npz, *base, "train.max_steps=100"), run, resume=True)
    assert private_training(resumed).noise == noise  # not re-planned for 100 steps
    summary = resumed.run()
    assert summary["step"] == 4 and summary["reason"].startswith("reached the privacy budget")


def test_the_classifier_term_is_part_of_each_records_gradient(tiny_npz, tmp_path):
    """AC-GAN under DP: the cross-entropy on a real record's label enters that record's per-sample gradient (so
    clipping bounds it too), and a private run trains the head and logs both class terms."""
    ac = ["model.conditional=true", "model.d_classifier=true", "reg.class_weight=2"]
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1", *UNBOUND, *ac)
    private_training(trainer)._set_noise(0.0)
    torch.manual_seed(1)
    real, fake = torch.rand(5, 1, 16, 16) * 2 - 1, torch.rand(5, 1, 16, 16) * 2 - 1
    labels, fake_labels = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([1, 0, 0, 1, 1])
    head = trainer.state.D.classifier.weight.detach().clone()
    plain, update = plain_and_private_updates(trainer, real, fake, labels, fake_labels, class_weight=2.0)
    torch.testing.assert_close(update, plain, rtol=1e-4, atol=1e-6)
    assert not torch.equal(head, trainer.state.D.classifier.weight)

    records = []
    run = private_trainer(tiny_npz, tmp_path / "run", "train.max_steps=2", "train.log_every=1", *ac)
    head = run.state.D.classifier.weight.detach().clone()
    run.run(on_log=records.append)
    assert not torch.equal(head, run.state.D.classifier.weight)
    assert all(r["class_g"] > 0 for r in records)  # G's class term reads only fakes: logged
    # D's loss, mean D(x) and class loss on the private records are outside the noised sum: never logged
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "loss_g" in r]
    assert steps and all(not {"loss_d", "d_real", "class_d"} & r.keys() and "epsilon" in r for r in steps + records)
