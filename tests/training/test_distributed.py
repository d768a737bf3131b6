"""DDP on the CPU: two gloo processes, forked from the test process (as torchrun would start them)."""
import json
import multiprocessing
import os
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

from helpers import free_port, tiny_config
from ganforge.training.checkpoint import latest_checkpoint
from ganforge.training.data_order import EpochOrder
from ganforge.training.loop import Trainer

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")

# No BatchNorm (per-rank batch statistics would differ from one process's) and no minibatch stddev
# (its groups are drawn within each rank's batch): then R ranks with batch B compute what one
# process with batch R * B computes, up to the order of floating-point sums.
EXACT = ("model.d_norm=none", "model.g_norm=group", "reg.r1_gamma=1", "reg.r_interval=2", "train.ema_kimg=0.05")


def progress(trainer) -> dict:
    """Where a run stands in images: images seen, epoch, and the values its schedules set from them."""
    s = trainer.state
    return {"images": s.images_seen, "epoch": trainer.epoch, "lr_g": s.g_opt.param_groups[0]["lr"],
            "lr_d": s.d_opt.param_groups[0]["lr"], "r1_gamma": s.opts.reg.r1_gamma, "ema_kimg": s.ema.ema_kimg,
            "ema_beta": s.ema.beta}


def _rank_main(rank, world, port, cfg, run, resume, report=None):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from ganforge.training import distributed

    try:
        trainer = Trainer(cfg, run, resume=resume)
        if report is None:
            trainer.run()
            return
        path, probe_steps = report  # rank 0 writes progress() after probe_steps steps and at the end
        for _ in range(probe_steps):
            trainer.train_step()
        probe = progress(trainer)
        trainer.run()
        if rank == 0:
            path.write_text(json.dumps({"probe": probe, "end": progress(trainer)}))
    finally:
        distributed.shutdown()


def launch(cfg, run, world=2, resume=False, wait=True, report=None):
    ctx = multiprocessing.get_context("fork")
    port = free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, cfg, run, resume, report), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    if wait:
        for p in procs:
            p.join(120)
            assert p.exitcode == 0, f"rank exited with {p.exitcode}"
    return procs


def weights(run):
    ckpt = latest_checkpoint(run)
    return {n: load_file(str(ckpt / f"{n}.safetensors")) for n in ("generator", "discriminator", "generator_ema")}


def test_two_processes_with_batch_b_match_one_with_batch_2b(tiny_npz, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    Trainer(tiny_config(tiny_npz, "train.batch_size=8", "train.max_steps=4", *EXACT), one).run()
    launch(tiny_config(tiny_npz, "train.batch_size=4", "train.max_steps=4", *EXACT), two)
    a, b = weights(one), weights(two)
    for net in a:
        for key in a[net]:
            torch.testing.assert_close(b[net][key], a[net][key], rtol=1e-4, atol=1e-5, msg=f"{net}.{key}")
    # only rank 0 wrote: one log line per interval, as the single process
    lines = lambda run: [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines(two) == lines(one) == [2, 4]
    assert json.loads((two / "config.json").read_text())["train"]["batch_size"] == 4


def test_killed_two_process_run_resumes_with_two_or_one(tiny_npz, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_npz, "train.batch_size=4", "train.max_steps=100000", "train.checkpoint_every=1", *EXACT)
    procs = launch(cfg, run, wait=False)
    deadline = time.time() + 60
    while time.time() < deadline:
        ckpt = latest_checkpoint(run) if (run / "checkpoints").exists() else None
        if ckpt is not None and int(ckpt.name.split("-")[1]) >= 3:
            break
        time.sleep(0.05)
    for p in procs:  # as a failing node would: both ranks gone at once
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    step = Trainer(cfg, run, resume=True).step
    assert step >= 3
    launch(tiny_config(tiny_npz, "train.batch_size=4", f"train.max_steps={step + 2}", "train.checkpoint_every=1",
                       *EXACT), run, resume=True)
    assert latest_checkpoint(run).name == f"step-{step + 2:08d}"
    summary = Trainer(tiny_config(tiny_npz, "train.batch_size=4", f"train.max_steps={step + 3}",
                                  "train.checkpoint_every=1", *EXACT), run, resume=True).run()  # one process now
    assert summary["step"] == step + 3


# Schedules that read the images seen: a linear learning-rate decay and R1 burn-in over 80 images (2 epochs of
# the 40 tiny images) and the average's half-life ramped up with the images seen. Batch 4 per process.
SCHEDULED = ("train.batch_size=4", "schedule.shape=linear", "schedule.kimg=0.08", "schedule.lr_end_factor=0.1",
             "schedule.gamma_end_factor=0.5", "train.ema_rampup=0.5")


def assert_same_progress(got: dict, expected: dict) -> None:
    assert got == pytest.approx(expected, rel=1e-9), f"{got} != {expected}"


def test_two_process_run_resumed_on_one_continues_at_the_same_images_seen(tiny_npz, tmp_path):
    """2 processes x 4 images for 2 steps (16 images, 0.4 epoch), then one process: the resumed run stands where
    a one-process run does at the same images seen, after its first step and at the end of --epochs 2."""
    cfg = lambda *extra: tiny_config(tiny_npz, *SCHEDULED, *EXACT, *extra)
    run = tmp_path / "run"
    launch(cfg("train.max_steps=2"), run)
    resumed, alone = Trainer(cfg("train.max_epochs=2"), run, resume=True), Trainer(cfg("train.max_epochs=2"),
                                                                                    tmp_path / "alone")
    assert resumed.state.images_seen == 16 and resumed.epoch == 0.4
    for _ in range(5):
        alone.train_step()
    resumed.train_step()  # its schedules were set from the 16 images seen before the step, as alone's were
    assert_same_progress(progress(resumed), progress(alone))
    assert progress(resumed)["images"] == 20
    assert resumed.run()["step"] == 18 and alone.run()["step"] == 20  # steps of 8 images, then of 4
    assert_same_progress(progress(resumed), progress(alone))
    assert progress(resumed)["images"] == 80 and progress(resumed)["epoch"] == 2


def test_one_process_run_resumed_on_two_continues_at_the_same_images_seen(tiny_npz, tmp_path):
    """One process x 4 images for 2 steps (8 images, 0.2 epoch), then 2 processes: after their first step and at
    the end of --epochs 2 they stand where an uninterrupted 2-process run does at the same images seen."""
    cfg = lambda *extra: tiny_config(tiny_npz, *SCHEDULED, *EXACT, *extra)
    run = tmp_path / "run"
    Trainer(cfg("train.max_steps=2"), run).run()
    launch(cfg("train.max_epochs=2"), run, resume=True, report=(tmp_path / "resumed.json", 1))
    launch(cfg("train.max_epochs=2"), tmp_path / "two", report=(tmp_path / "two.json", 2))
    resumed, two = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("resumed", "two"))
    assert_same_progress(resumed["probe"], two["probe"])
    assert resumed["probe"]["images"] == 16 and resumed["probe"]["epoch"] == 0.4
    assert_same_progress(resumed["end"], two["end"])
    assert resumed["end"]["images"] == 80 and resumed["end"]["epoch"] == 2
    assert latest_checkpoint(run).name == "step-00000011"  # 2 steps of 4 images and 9 of 8


@pytest.mark.parametrize("before, after, read", [(2, 1, 3), (2, 1, 7), (1, 2, 4), (1, 2, 3), (1, 3, 5)])
def test_data_order_continues_the_epoch_on_another_process_count(before, after, read):
    """After ``read`` global batches on ``before`` processes, the ``after``-process order reads the rest of the
    epoch: no image twice, and only the images up to its next global batch boundary skipped (none when the
    position falls on one, as after 2 -> 1: then exactly what an uninterrupted ``after``-process run reads)."""
    n, batch = 42, 4  # 42 = neither 4, 8 nor 12 times a whole number: every epoch drops a partial batch
    old = [EpochOrder(n, batch, 5, r, before) for r in range(before)]
    new = [EpochOrder(n, batch, 5, r, after) for r in range(after)]
    images = lambda orders, batches: [int(i) for b in batches for o in orders for i in o.indices(b)]
    epoch, index = divmod(read, old[0].batches_per_epoch)
    seen = images(old, range(epoch * old[0].batches_per_epoch, read))  # this epoch's images read before
    start = new[0].continue_from(read, before)
    assert start // new[0].batches_per_epoch == epoch
    rest = images(new, range(start, (epoch + 1) * new[0].batches_per_epoch))
    assert len(set(seen + rest)) == len(seen) + len(rest)
    uninterrupted = images(new, range(epoch * new[0].batches_per_epoch, (epoch + 1) * new[0].batches_per_epoch))
    skipped = set(uninterrupted) - set(seen + rest)
    assert len(skipped) < batch * after
    assert (len(seen) % (batch * after) == 0) == (set(seen + rest) == set(uninterrupted))


def test_counters_saved_before_images_seen_load_as_from_this_process_count():
    """A state saved before images_seen and world_size existed: taken to come from as many processes as now
    (what resuming assumed then), so its data position is kept and its images seen follow from it."""
    from helpers import tiny_state

    saved = {k: v for k, v in tiny_state().state_dict().items() if k not in ("images_seen", "world_size")}
    saved.update(step=3, real_batches=3)
    for world in (1, 2):
        state = tiny_state()
        state.world_size, state.batch_size = world, 4
        state.load_state_dict(saved, EpochOrder(40, 4, 0, 0, world))
        assert (state.step, state.real_batches, state.images_seen) == (3, 3, 3 * 4 * world)


@pytest.mark.parametrize("arch", ["resnet", "stylegan2", "r3gan"])
def test_every_architecture_trains_on_two_processes(arch, tiny_npz, tmp_path):
    """A 2-process gloo run of each non-DCGAN architecture (conditional: the label paths too) finishes on both
    ranks (launch checks their exit codes) and rank 0's final checkpoint holds finite weights."""
    from helpers import tiny_arch_config

    run = tmp_path / arch
    extra = ["reg.pl_weight=2", "reg.pl_interval=2"] if arch == "stylegan2" else []  # path length: steps 0, 2
    launch(tiny_arch_config(tiny_npz, arch, "train.batch_size=4", "train.max_steps=3", "model.conditional=true",
                            *extra), run)
    saved = {n: load_file(str(latest_checkpoint(run) / f"{n}.safetensors")) for n in ("generator", "discriminator")}
    assert latest_checkpoint(run).name == "step-00000003"
    assert all(torch.isfinite(t).all() for net in saved.values() for t in net.values())


def _path_length_once(rank: int, decay: float, average=None) -> dict:
    """One path-length step of a tiny StyleGAN2 G on rank ``rank``'s own noise, with SGD at lr 1 (so the
    update is minus the gradient, and averaging updates averages gradients)."""
    from helpers import TINY_MODELS
    from ganforge.config import RegularizerConfig
    from ganforge.models import build_generator, model_config
    from ganforge.training.steps import StepOptions, path_length_step

    torch.manual_seed(0)  # the same G on every rank (and its noise inputs' draws)
    G = build_generator("stylegan2", model_config("stylegan2", **TINY_MODELS["stylegan2"]))
    reg = RegularizerConfig(pl_weight=1.0, pl_interval=1, pl_batch_shrink=1, pl_decay=decay)
    opts = StepOptions(reg=reg, rng=torch.Generator().manual_seed(10 + rank))
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(20 + rank))  # (4, z_dim): this rank's batch
    pl_mean = torch.tensor(0.5)
    path_length_step(G, torch.optim.SGD(G.parameters(), lr=1.0), z, None, opts, pl_mean, average=average)
    return {"params": {n: p.detach().clone() for n, p in G.named_parameters()}, "pl_mean": pl_mean}


def _path_length_rank(rank, world, port, out, decay):
    import torch.distributed as dist

    from ganforge.training import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.save(_path_length_once(rank, decay, average=distributed.mean), out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("decay", [0.0, 1.0])
def test_path_length_step_on_two_processes_averages_gradients_and_running_mean(decay, tmp_path):
    """G is called outside DDP in the path-length step: the ranks' gradients and batch means must be
    averaged by hand. Decay 0 keeps the running mean fixed, so the update must be the mean of the two
    ranks' single-process updates; decay 1 makes the running mean the mean of the ranks' batch means."""
    ctx, port = multiprocessing.get_context("fork"), free_port()
    procs = [ctx.Process(target=_path_length_rank, args=(r, 2, port, tmp_path, decay)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    alone = [_path_length_once(r, decay) for r in range(2)]
    torch.testing.assert_close(ranks[0]["pl_mean"], ranks[1]["pl_mean"], rtol=0, atol=0)
    torch.testing.assert_close(ranks[0]["pl_mean"], (alone[0]["pl_mean"] + alone[1]["pl_mean"]) / 2)
    if decay > 0:  # the ranks' own batch means differ, so the shared one is a real average
        assert not torch.equal(alone[0]["pl_mean"], alone[1]["pl_mean"])
    for name, value in ranks[0]["params"].items():
        torch.testing.assert_close(ranks[1]["params"][name], value, rtol=0, atol=0, msg=name)  # ranks in step
        if decay == 0:
            expected = (alone[0]["params"][name] + alone[1]["params"][name]) / 2
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)
    changed = [n for n in alone[0]["params"] if not torch.equal(alone[0]["params"][n], alone[1]["params"][n])]
    assert changed, "the two ranks' own updates should differ (different noise), or the test shows nothing"
