"""Every image architecture trains, resumes bit for bit, samples and evaluates through the same loop."""
import pytest
import torch
from safetensors.torch import load_file

from ganforge import load_generator
from ganforge.models import list_models
from ganforge.runs import latest_checkpoint
from ganforge.training.loop import Trainer
from helpers import tiny_arch_config

ARCHS = list_models(data="images")


def _weights(run):
    folder = latest_checkpoint(run)
    return {name: load_file(folder / f"{name}.safetensors") for name in ("generator", "discriminator")}


@pytest.mark.parametrize("conditional", [False, True], ids=["uncond", "cond"])
@pytest.mark.parametrize("arch", ARCHS)
def test_trains_resumes_bit_for_bit_and_samples(arch, conditional, tiny_npz, tmp_path):
    extra = ["model.conditional=true"] if conditional else []
    straight, split = tmp_path / "straight", tmp_path / "split"
    Trainer(tiny_arch_config(tiny_npz, arch, "train.max_steps=4", *extra), straight).run()
    Trainer(tiny_arch_config(tiny_npz, arch, "train.max_steps=2", *extra), split).run()
    summary = Trainer(tiny_arch_config(tiny_npz, arch, "train.max_steps=4", *extra), split, resume=True).run()
    assert summary["step"] == 4
    a, b = _weights(straight), _weights(split)
    for net in a:
        for key in a[net]:
            assert a[net][key].equal(b[net][key]), f"{arch} {net}.{key} differs after resume"
    gen = load_generator(straight)
    assert gen.arch == arch and gen.num_classes == (2 if conditional else 0)  # tiny_npz: 2 classes
    images = gen.sample(6, seed=1)
    assert images.dtype == torch.uint8 and images.shape[0] == 6
    assert images.equal(gen.sample(6, seed=1))  # the same seed gives the same images


@pytest.mark.parametrize("arch", ARCHS)
def test_evaluates_during_training(arch, tiny_npz, tmp_path):
    trainer = Trainer(tiny_arch_config(tiny_npz, arch, "train.max_steps=2", "train.eval_every=2", "train.eval_n=16"),
                      tmp_path / "r")
    trainer.run()
    assert trainer.best is not None and trainer.best["step"] == 2


def test_stylegan2_with_path_length_regularisation_and_style_mixing_resumes_bit_for_bit(tiny_npz, tmp_path):
    extra = ["reg.pl_weight=2", "reg.pl_interval=2", "model.style_mixing=0.9", "reg.r1_gamma=0.01",
             "reg.r_interval=4", "reg.lazy_adjust=true", "train.ema_kimg=0.5", "train.ema_rampup=0.05"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    Trainer(tiny_arch_config(tiny_npz, "stylegan2", "train.max_steps=5", *extra), straight).run()
    Trainer(tiny_arch_config(tiny_npz, "stylegan2", "train.max_steps=3", *extra), split).run()
    Trainer(tiny_arch_config(tiny_npz, "stylegan2", "train.max_steps=5", *extra), split, resume=True).run()
    a, b = _weights(straight), _weights(split)
    for net in a:
        for key in a[net]:
            assert a[net][key].equal(b[net][key]), f"{net}.{key} differs after resume"


def test_a_generator_with_random_noise_inputs_samples_reproducibly_by_seed(tiny_npz, tmp_path):
    run = tmp_path / "r"
    Trainer(tiny_arch_config(tiny_npz, "stylegan2", "train.max_steps=1", "model.noise_mode=random"), run).run()
    gen = load_generator(run)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, other = gen.sample(4, seed=5), gen.sample(4, seed=5), gen.sample(4, seed=6)
    assert a.equal(b) and not a.equal(other)
    assert torch.get_rng_state().equal(state)  # the caller's global generator is left alone
    z = gen.noise(4, seed=5)
    assert not gen.generate(z, seed=1).equal(gen.generate(z, seed=2))  # the noise inputs do change the images


def test_truncation_pulls_stylegan2_samples_to_the_average_style_and_is_refused_elsewhere(tiny_npz, tmp_path):
    from ganforge.errors import GanforgeError

    run = tmp_path / "sg2"
    Trainer(tiny_arch_config(tiny_npz, "stylegan2", "train.max_steps=2"), run).run()
    gen = load_generator(run)  # tiny settings: constant noise inputs, so psi = 0 leaves nothing random
    free = gen.sample(4, seed=0)
    gen.truncation = 0.0
    average = gen.sample(4, seed=0)
    assert all(img.equal(average[0]) for img in average) and not all(img.equal(free[0]) for img in free)
    dcgan = tmp_path / "dcgan"
    Trainer(tiny_arch_config(tiny_npz, "dcgan", "train.max_steps=1"), dcgan).run()
    gen = load_generator(dcgan)
    gen.truncation = 0.7
    with pytest.raises(GanforgeError, match="truncation needs a style-based generator"):
        gen.sample(2)
