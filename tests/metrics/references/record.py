"""Record what the reference implementations output on the inputs of the metric tests' parity checks.

pytorch-fid and torch-fidelity both import torchvision, and torchvision does not import beside the CPU build
of torch these machines use ("operator torchvision::nms does not exist"; installing them would also make pip
replace that torch with another release). So the tests compare with outputs recorded by this script, run in
an environment of its own that has the references, on the very inputs the tests build (imported from them):

    python3 -m venv fidref
    fidref/bin/pip install torch==2.14.1 torchvision==0.29.1 pytorch-fid==0.3.0 torch-fidelity==0.4.0 \
        scipy pytest pyyaml safetensors tqdm pillow
    PYTHONPATH=src:tests:tests/metrics fidref/bin/python tests/metrics/references/record.py

It writes, beside itself, references.json (the Fréchet distance of pytorch-fid, the Inception Score and KID
of torch-fidelity, and the versions that computed them) and inception.npz (pytorch-fid's FID Inception-v3
with the tests' seeded weights: its state-dict layout, pool features and logits for the tests' images).
"""
from __future__ import annotations

import json
import platform
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def inception_reference() -> dict[str, np.ndarray]:
    """pytorch-fid's FID network given the weights of ganforge's seeded network: layout and outputs."""
    import pytorch_fid.inception as ref
    from test_inception import PARITY_SEED, PARITY_SHAPES, parity_images

    from ganforge.metrics.inception import FIDInceptionV3
    from helpers import randomize_

    state = randomize_(FIDInceptionV3(), seed=PARITY_SEED).state_dict()
    built, build = {}, ref.fid_inception_v3
    ref.load_state_dict_from_url = lambda *a, **k: {k: v.clone() for k, v in state.items()}
    ref.fid_inception_v3 = lambda: built.setdefault("net", build())
    pool = ref.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    net = built["net"].eval()
    layout = {name: list(value.shape) for name, value in net.state_dict().items()}
    out = {"layout": np.array(json.dumps(layout))}
    with torch.no_grad():
        for shape, images in zip(PARITY_SHAPES, parity_images()):
            rgb = images.repeat(1, 3, 1, 1) if shape[1] == 1 else images  # the reference reads RGB
            features = pool(rgb.float() / 255)[0].flatten(1)  # its input: float in [0, 1]
            key = "x".join(map(str, shape))
            out[f"{key}/features"], out[f"{key}/logits"] = features.numpy(), net.fc(features).numpy()
    return out


def scalar_references() -> dict:
    import pytorch_fid.fid_score as fid_score
    import test_frechet
    import test_inception_score
    import test_kid
    import torch_fidelity.metric_isc as metric_isc
    import torch_fidelity.metric_kid as metric_kid

    from ganforge.metrics.frechet import GaussianStats

    a, b = (GaussianStats.of(x) for x in test_frechet.pytorch_fid_case())
    probs = test_inception_score.torch_fidelity_case()
    isc = metric_isc.isc_features_to_metric(torch.from_numpy(np.log(probs)), splits=10, shuffle=False)
    real, fake = test_kid.torch_fidelity_case()
    kid = metric_kid.kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), kid_subsets=10,
                                            kid_subset_size=1000, rng_seed=2020, verbose=False)
    return {
        "frechet_distance": float(fid_score.calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma)),
        "inception_score": [float(isc["inception_score_mean"]), float(isc["inception_score_std"])],
        "kid": [float(kid["kernel_inception_distance_mean"]), float(kid["kernel_inception_distance_std"])],
    }


def main() -> None:
    versions = {name: version(name) for name in ("torch", "torchvision", "pytorch-fid", "torch-fidelity", "numpy",
                                                 "scipy")}
    versions["python"] = platform.python_version()
    np.savez_compressed(HERE / "inception.npz", **inception_reference())
    values = {"recorded_with": versions, **scalar_references()}
    (HERE / "references.json").write_text(json.dumps(values, indent=2) + "\n")
    print(json.dumps(values, indent=2))


if __name__ == "__main__":
    main()
