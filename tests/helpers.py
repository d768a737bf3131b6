"""Constants and helpers shared by tests (importable: tests/ is on the test path)."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Options that make the DCGAN tiny; used by training and CLI tests.
TINY = [
    "model.z_dim=8", "model.g_width=8", "model.d_width=8",
    "train.batch_size=8", "train.log_every=2", "train.sample_every=0", "train.grid_size=4",
    "train.progress=false", "train.precision=fp32",
]


# Tiny settings of every registered architecture (model tests add resolution and channels).
TINY_MODELS = {
    "dcgan": dict(resolution=16, channels=2, z_dim=8, g_width=4, d_width=4),
    "mlp": dict(z_dim=2, g_width=16, d_width=16),
    "r3gan": dict(resolution=16, channels=2, z_dim=8, width=8, group_channels=4, blocks=1),
    "resnet": dict(resolution=16, channels=2, z_dim=8, g_width=8, d_width=4),
    # noise_mode="const": G is deterministic in eval mode (training draws fresh noise whatever it is)
    "stylegan2": dict(resolution=16, channels=2, z_dim=8, w_dim=8, channel_base=64, channel_max=8, mbstd_group=4,
                      d_map_layers=2, noise_mode="const"),
}


def run_cli(*args, cwd=None, check: bool = True):
    """``ganforge ARGS`` in this process (``ganforge.cli.main.main``), as a finished process: returncode, stdout,
    stderr. Cheaper than a subprocess, which imports torch cold each time; argparse's exits count as return
    codes, and the warning display the command installs is put back afterwards."""
    import contextlib
    import io
    import os
    import subprocess
    import warnings

    from ganforge.cli.main import main

    argv, out, err = [str(a) for a in args], io.StringIO(), io.StringIO()
    here, shown = Path.cwd(), warnings.showwarning
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit:  # argparse: --help, --version, a bad flag
                code = exit.code if isinstance(exit.code, int) else 1
    finally:
        os.chdir(here)
        warnings.showwarning = shown
    proc = subprocess.CompletedProcess(["ganforge", *argv], code, out.getvalue(), err.getvalue())
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def console_script_env() -> dict:
    """The environment for running ``ganforge`` as a separate process on the code under test (this checkout's
    src/ first on the path, whichever copy the environment has installed)."""
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}


def free_port() -> int:
    """A TCP port on localhost that was free a moment ago (for a process group's rendezvous)."""
    from ganforge.federated.processes import free_port as os_port

    return os_port()


def randomize_(model, seed: int):
    """Seeded weights that keep activations around unit scale through a deep network (the FID Inception).

    (PyTorch's default initialisation shrinks them to ~1e-7 at the Inception's pool, which would make a
    comparison meaningless.)
    """
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.75 + 0.5 * torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.75 + 0.5 * torch.rand(m.running_var.shape, generator=g))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight.shape[1] ** 0.5)
                m.bias.copy_(0.01 * torch.randn(m.bias.shape, generator=g))
    return model


def recorded_reference(key: str):
    """What a reference implementation (pytorch-fid, torch-fidelity) output on a metric test's inputs, as
    recorded by tests/metrics/references/record.py (they cannot be installed beside these machines' torch)."""
    import json

    return json.loads((REPO / "tests" / "metrics" / "references" / "references.json").read_text())[key]


def shared_file(name: str) -> Path:
    """A file of the shared data folder, or skip the test when it is absent."""
    import pytest

    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


def tiny_config(data: Path, *extra: str):
    """A validated Config for a tiny DCGAN on ``data``, with ``section.key=value`` overrides."""
    from ganforge.config import Config, parse_override, set_value
    from ganforge.validation import validate

    cfg = Config()
    for text in [f"data.source={data}", *TINY, *extra]:
        set_value(cfg, *parse_override(text))
    return validate(cfg)


def tiny_arch_config(data: Path, arch: str, *extra: str):
    """A validated Config for architecture ``arch`` at its tiny settings on ``data``, with overrides."""
    options = [f"model.{k}={v}" for k, v in TINY_MODELS[arch].items() if k not in ("resolution", "channels")]
    loop = [opt for opt in TINY if not opt.startswith("model.")]
    return tiny_config(data, f"model.arch={arch}", *options, *loop, *extra)


def small_federation(tiny_npz: Path, tmp_path: Path, name: str = "fed", rounds: int = 2, *extra: str, **fed_options):
    """(GlobalRun, [Site, Site]): a tiny DCGAN federation over two IID halves of ``tiny_npz``, no network
    (``extra``: configuration overrides; ``fed_options``: FederationConfig fields)."""
    from ganforge.federated.partition import write_partitions
    from ganforge.federated.server import FederationConfig, GlobalRun, agree_on_data
    from ganforge.federated.site import Site

    files = write_partitions(str(tiny_npz), tmp_path / f"{name}-data", 2, "iid")
    sites = [Site(str(f), tmp_path / name / f"site-{k}", name=f"site-{k}") for k, f in enumerate(files)]
    cfg = tiny_config(tiny_npz, *extra)
    fed = FederationConfig(rounds=rounds, local_steps=3, min_sites=2, **fed_options)
    data = agree_on_data([s.describe() for s in sites], cfg.model.conditional)
    return GlobalRun.create(tmp_path / name / "server", cfg, fed, data), sites


def fedavg_round(run, sites):
    """One plain FedAvg round driven directly: -> (logged record, start weights, the sites' results)."""
    from ganforge.federated.weights import weighted_mean

    start = run.weights()
    plan = (run.fed.id, run.cfg, run.fed.rounds, run.fed.local_steps, len(sites))
    results = [s.train_round(*plan, start) for s in sites]
    mean = weighted_mean([r.update for r in results], [r.images for r in results])
    record = run.finish_round([(r.weight, r.metrics) for r in results], 0, 1.0, {}, mean_update=mean)
    return record, start, results


def tiny_state(seed=0, d_steps=1, arch="dcgan"):
    """A TrainState of a tiny 16-px, 1-channel DCGAN (``arch="mlp"``: a tiny MLP GAN of 2-d points) with lazy R1
    (every 2nd D step) and an averaged G."""
    import torch

    from ganforge.config import OptimizerConfig, RegularizerConfig
    from ganforge.models import build_discriminator, build_generator, model_config
    from ganforge.training.ema import EMA
    from ganforge.training.runtime import Precision
    from ganforge.training.state import TrainState
    from ganforge.training.steps import StepOptions, make_optimizer

    torch.manual_seed(seed)
    sizes = dict(resolution=16, channels=1) if arch == "dcgan" else {}
    cfg = model_config(arch, z_dim=8, g_width=8, d_width=8, **sizes)
    G, D = build_generator(arch, cfg), build_discriminator(arch, cfg)
    opts = StepOptions(precision=Precision("fp32", "cpu"), reg=RegularizerConfig(r1_gamma=1.0, r_interval=2))
    return TrainState(G=G, D=D, g_opt=make_optimizer(G.parameters(), OptimizerConfig()),
                      d_opt=make_optimizer(D.parameters(), OptimizerConfig()), opts=opts, z_dim=8, seed=seed,
                      d_steps=d_steps, ema=EMA(G, 0.05, 4, z_dim=8))


def random_batches(k, n=4, seed=1, shape=(1, 16, 16)):
    """k unconditional batches of n random 16-px, 1-channel images in [-1, 1] for :func:`tiny_state` (``shape=(2,)``:
    2-d points, for its MLP)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, *shape, generator=gen) * 2 - 1, None) for _ in range(k)]


def state_weights(state) -> dict:
    """Copies of every network's weights of a TrainState, by network name."""
    return {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in state.networks().items()}


def check_metric_behaviour(train_x, train_y, test_x, test_y, other_x, other_y, n_classes, only_class=0,
                           max_covered_for_one_class=1):
    """The domain metrics on real images: near-ideal on held-out images, far worse on noise, one repeated image,
    one class and copies of the training images (tests/metrics/test_evaluate*.py)."""
    import torch

    from ganforge.metrics.evaluate import Evaluator
    from ganforge.metrics.names import parse_metrics

    ev = Evaluator(test_x, test_y, train=train_x, train_labels=train_y, extractor="domain", progress=False)
    metrics = parse_metrics("fd,kid,pr,dc,modes,memorisation")
    self_fd = ev(test_x, ["fd"])["fd_domain"]
    held = ev(other_x, metrics)  # other real images, unseen in training: near-ideal values
    noise = ev(torch.randint(0, 256, test_x.shape, dtype=torch.uint8), ["fd"])["fd_domain"]
    repeated = ev(test_x[:1].expand_as(test_x).contiguous(), ["fd", "pr"])
    one_class = ev(test_x[test_y == only_class].repeat(n_classes, 1, 1, 1)[: len(test_x)], ["fd", "modes"])
    copies = ev(train_x[: len(test_x)], ["memorisation"])

    assert abs(self_fd) < 1e-6 * max(1.0, held["fd_domain"])
    assert held["fd_domain"] > 0
    for bad in (noise, repeated["fd_domain"], one_class["fd_domain"]):
        assert bad > 20 * held["fd_domain"]
    assert held["classes_covered"] == n_classes and held["classes_missing"] == []
    assert held["memorisation_near_copy_share"] < 0.05 and copies["memorisation_near_copy_share"] > 0.95
    # a classifier trained on a few thousand images confuses a little: a lone class leaks into others,
    # which the correction for its confusion on the reference images explains away
    assert one_class["classes_covered"] <= max_covered_for_one_class
    assert len(one_class["classes_missing"]) >= n_classes - max_covered_for_one_class
    assert held["precision_domain"] > 0.6 and held["recall_domain"] > 0.6 and held["coverage_domain"] > 0.6
    assert repeated["recall_domain"] < 0.05
    return held, copies
