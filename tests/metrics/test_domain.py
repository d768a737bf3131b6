"""The domain feature network's cache."""
import torch

from ganforge.metrics.domain import load_or_train


def test_domain_network_is_trained_once_with_a_notice_then_read_from_the_cache(tmp_path, capsys):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.arange(64) % 2
    net, key = load_or_train(images, labels, cache_dir=tmp_path, progress=False)
    notice = capsys.readouterr().err
    assert "training the domain classifier on 64 reference images" in notice and str(tmp_path) in notice
    again, same_key = load_or_train(images, labels, cache_dir=tmp_path, progress=False)
    assert same_key == key and capsys.readouterr().err == ""  # read back, not trained again
    x = images[:4].float() / 127.5 - 1
    assert torch.equal(net.features(x), again.features(x))
