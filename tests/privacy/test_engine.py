"""Private training: per-pair clipping is per record, epsilon is Opacus's, runs resume bit for bit,
the budget stops the run, and labels stay private."""
import json

import pytest
import torch

pytest.importorskip("opacus")

from opacus.accountants import PRVAccountant, RDPAccountant  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from helpers import tiny_config  # noqa: E402
from ganforge.losses import d_loss  # noqa: E402
from ganforge.privacy.engine import PrivateTraining  # noqa: E402
from ganforge.training.checkpoint import latest_checkpoint  # noqa: E402
from ganforge.training.loop import Trainer  # noqa: E402

DP = ["model.d_norm=group", "dp.noise=1.0", "train.batch_size=10"]
# the tests that drive Opacus's hooks by hand see the warning that the private step itself silences
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def private_trainer(data, run, *extra):
    return Trainer(tiny_config(data, *DP, *extra), run)


def test_per_pair_gradients_are_those_of_each_real_fake_pair(tiny_npz, tmp_path):
    """Two D passes (real, fake) then one backward: Opacus's per-sample gradient of pair i must equal the
    gradient of pair i's own loss, so clipping it bounds one record's influence."""
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1", "dp.max_grad_norm=1e6")
    private, D = trainer.private, trainer.state.D
    torch.manual_seed(1)
    real = torch.rand(5, 1, 16, 16) * 2 - 1
    fake = torch.rand(5, 1, 16, 16) * 2 - 1
    private.gsm.enable_hooks()
    try:
        loss = d_loss("minimax", private.gsm(real), private.gsm(fake))
        private.optimizer.zero_grad()
        loss.backward()
        per_pair = {name: p.grad_sample.clone() for name, p in D.named_parameters()}
    finally:
        private.gsm.disable_hooks()
    for i in range(5):
        D.zero_grad()
        d_loss("minimax", D(real[i:i + 1]), D(fake[i:i + 1])).backward()
        for name, p in D.named_parameters():
            torch.testing.assert_close(per_pair[name][i], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_clipping_bounds_each_pair_and_noise_is_added(tiny_npz, tmp_path):
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1", "dp.max_grad_norm=0.01")
    opt = trainer.private.optimizer
    real, fake = torch.rand(6, 1, 16, 16), torch.rand(6, 1, 16, 16)
    trainer.private.gsm.enable_hooks()
    loss = d_loss("minimax", trainer.private.gsm(real), trainer.private.gsm(fake))
    opt.zero_grad()
    loss.backward()
    trainer.private.gsm.disable_hooks()
    opt.noise_multiplier = 0.0  # to see the clipped sum alone
    opt.pre_step()
    summed = torch.cat([p.summed_grad.flatten() for p in opt.params])
    assert summed.norm() <= 6 * 0.01 * (1 + 1e-4)  # six pairs, each clipped to 0.01


def test_epsilon_is_opacus_accountant_for_the_run_noise_rate_and_steps(tiny_npz, tmp_path):
    run = tmp_path / "run"
    trainer = private_trainer(tiny_npz, run, "train.max_steps=6", "train.d_steps=2", "dp.accountant=rdp")
    summary = trainer.run()
    reference = RDPAccountant()
    for _ in range(12):  # 6 G steps x 2 D steps
        reference.step(noise_multiplier=1.0, sample_rate=10 / 40)
    p = summary["privacy"]
    assert p["d_steps"] == 12 and p["sample_rate"] == 0.25 and p["delta"] == 1e-2
    assert p["epsilon"] == pytest.approx(reference.get_epsilon(delta=1e-2), abs=1e-4)
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epsilon"] for r in log if "epsilon" in r] == sorted(r["epsilon"] for r in log if "epsilon" in r)
    meta = json.loads((latest_checkpoint(run) / "generator.json").read_text())
    assert meta["privacy"]["epsilon"] == p["epsilon"] and "privacy" in meta


def test_the_run_stops_before_its_budget_and_the_noise_is_planned_for_it(tiny_npz, tmp_path):
    cfg = tiny_config(tiny_npz, "model.d_norm=group", "train.batch_size=10", "dp.epsilon=3", "dp.noise=1.0",
                      "dp.accountant=rdp", "train.max_steps=1000")
    summary = Trainer(cfg, tmp_path / "a").run()
    assert summary["reason"].startswith("reached the privacy budget") and summary["step"] < 1000
    assert summary["privacy"]["epsilon"] <= 3.0
    reference = RDPAccountant()
    reference.history = [(1.0, 0.25, summary["privacy"]["d_steps"] + 1)]
    assert reference.get_epsilon(delta=1e-2) > 3.0  # one more step would have overspent

    planned = Trainer(tiny_config(tiny_npz, "model.d_norm=group", "train.batch_size=10", "dp.epsilon=3",
                                  "train.max_steps=20", "dp.accountant=prv"), tmp_path / "b")
    result = planned.run()
    assert result["step"] == 20 and 2.95 <= result["privacy"]["epsilon"] <= 3.0
    reference = PRVAccountant()
    reference.history = [(planned.private.noise, 0.25, 20)]
    assert reference.get_epsilon(delta=1e-2) == pytest.approx(result["privacy"]["epsilon"], abs=1e-3)


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
    assert [tuple(e) for e in resumed_trainer.private.accountant.history] == [*prior, (1.0, 0.25, 6 * d_steps)]


def test_private_labels_generator_classes_come_from_the_release(tiny_npz, tmp_path):
    uniform = private_trainer(tiny_npz, tmp_path / "u", "model.conditional=true", "train.max_steps=2",
                              "dp.accountant=rdp")
    assert uniform.state.fake_label_probs.tolist() == [0.5, 0.5]
    free = uniform.run()["privacy"]["epsilon"]
    meta = json.loads((latest_checkpoint(tmp_path / "u") / "generator.json").read_text())
    assert meta["class_counts"] is None and meta["privacy"]["labels"] == "uniform"  # the true counts are not kept
    reference = RDPAccountant()
    reference.history = [(1.0, 0.25, 2)]
    assert free == pytest.approx(reference.get_epsilon(delta=1e-2), abs=1e-4)

    hist = private_trainer(tiny_npz, tmp_path / "h", "model.conditional=true", "dp.labels=histogram",
                           "dp.label_noise=2", "train.max_steps=2", "dp.accountant=rdp")
    counts = hist.private.class_counts  # 20 and 20, each plus N(0, 2^2) noise, rounded, at least 0
    assert len(counts) == 2 and all(0 <= c <= 40 for c in counts)
    assert hist.state.fake_label_probs.sum().item() == pytest.approx(1.0)
    spent = hist.run()["privacy"]["epsilon"]
    reference = RDPAccountant()
    reference.history = [(2.0, 1.0, 1), (1.0, 0.25, 2)]
    assert spent == pytest.approx(reference.get_epsilon(delta=1e-2), abs=1e-4)  # the release is paid for
    assert spent > free
    meta = json.loads((latest_checkpoint(tmp_path / "h") / "generator.json").read_text())
    assert meta["class_counts"] == counts


def test_a_batch_that_draws_no_record_still_takes_its_noisy_step(tiny_npz, tmp_path):
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1")
    before = [p.detach().clone() for p in trainer.state.D.parameters()]
    empty = torch.zeros(0, 1, 16, 16)
    fake = torch.zeros(0, 1, 16, 16)
    stats = trainer.private.d_step(trainer.private.gsm, trainer.state.d_opt, empty, fake, trainer.state.opts, step=0)
    assert stats["loss_d"].item() == 0.0 and len(trainer.private.accountant) == 1
    assert any(not a.equal(b) for a, b in zip(before, trainer.state.D.parameters()))  # noise moved D


def test_poisson_batches_vary_and_g_always_sees_the_fixed_batch(tiny_npz, tmp_path):
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1")
    sizes = {len(trainer.order.indices(b)) for b in range(30)}
    assert len(sizes) > 3 and all(0 <= s <= 40 for s in sizes)
    again = trainer.order.indices(7)
    assert again.equal(trainer.order.indices(7))  # a function of the secret seed and the batch number
    trainer.private.secret_seed += 1
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
    noise = first.private.noise
    first.run()
    resumed = Trainer(tiny_config(tiny_npz, *base, "train.max_steps=100"), run, resume=True)
    assert resumed.private.noise == noise  # not re-planned for 100 steps
    summary = resumed.run()
    assert summary["step"] == 4 and summary["reason"].startswith("reached the privacy budget")


def test_the_classifier_term_is_clipped_with_its_pair(tiny_npz, tmp_path):
    """AC-GAN under DP: the cross-entropy on a real record's label is part of that record's pair gradient
    (so clipping bounds it too), and a private run trains the head and logs both class terms."""
    import torch.nn.functional as F

    ac = ["model.conditional=true", "model.d_classifier=true", "reg.class_weight=2"]
    trainer = private_trainer(tiny_npz, tmp_path / "r", "train.max_steps=1", "dp.max_grad_norm=1e6", *ac)
    private, D = trainer.private, trainer.state.D
    torch.manual_seed(1)
    real, fake = torch.rand(5, 1, 16, 16) * 2 - 1, torch.rand(5, 1, 16, 16) * 2 - 1
    labels, fake_labels = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([1, 0, 0, 1, 1])

    def pair_loss(net, i):
        logits, classes = net(real[i], labels[i], classes=True)
        return d_loss("minimax", logits, net(fake[i], fake_labels[i])) + 2 * F.cross_entropy(classes, labels[i])

    private.gsm.enable_hooks()
    try:
        private.optimizer.zero_grad()
        pair_loss(private.gsm, slice(None)).backward()
        per_pair = {name: p.grad_sample.clone() for name, p in D.named_parameters()}
    finally:
        private.gsm.disable_hooks()
    assert per_pair["classifier.weight"].abs().sum() > 0
    for i in range(5):
        D.zero_grad()
        pair_loss(D, slice(i, i + 1)).backward()
        for name, p in D.named_parameters():
            torch.testing.assert_close(per_pair[name][i], p.grad, rtol=1e-4, atol=1e-6, msg=name)

    records = []
    run = private_trainer(tiny_npz, tmp_path / "run", "train.max_steps=2", "train.log_every=1", *ac)
    head = run.state.D.classifier.weight.detach().clone()
    run.run(on_log=records.append)
    assert not torch.equal(head, run.state.D.classifier.weight)
    assert all(r["class_d"] > 0 and r["class_g"] > 0 for r in records)
