"""CKKS: the server adds ciphertexts it cannot decrypt; the sites recover the FedAvg weights."""
import numpy as np
import pytest

pytest.importorskip("tenseal")

from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.federated import he  # noqa: E402
from ganforge.federated.decrypt import decrypt_run  # noqa: E402
from ganforge.federated.weights import weighted_mean  # noqa: E402
from ganforge.sampling import load_generator  # noqa: E402
from helpers import small_federation as federation  # noqa: E402
from flwr.common import ndarrays_to_parameters  # noqa: E402
from ganforge.federated.site import Site  # noqa: E402


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    site, server = he.keygen(tmp_path_factory.mktemp("keys"))
    return he.load_context(site), he.load_context(server), site, server


def test_encrypted_sum_decrypts_to_the_weighted_mean(keys):
    site_ctx, server_ctx, *_ = keys
    rng = np.random.default_rng(0)
    shapes = [(5000,), (3, 3, 4)]  # more values than one ciphertext holds
    sites = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(3)]
    images = [640, 128, 1000]
    uploads = [he.encrypt(site_ctx, he.pack_weights(w, n / 1000)) for w, n in zip(sites, images)]
    total = he.add_ciphertexts(server_ctx, uploads)
    mean = he.unpack_weights(he.decrypt(site_ctx, total, 5000 + 36 + 1), sites[0])
    expected = weighted_mean(sites, images)
    assert max(float(np.abs(a - b).max()) for a, b in zip(mean, expected)) < 1e-5
    with pytest.raises(ValueError, match="secret"):
        he.decrypt(server_ctx, total, 10)  # the server's key cannot read the sum


def test_upload_size_is_what_the_docs_say(keys):
    site_ctx, *_ = keys
    chunk = he.encrypt(site_ctx, np.zeros(he.SLOTS))[0]
    per_value = len(chunk) / he.SLOTS
    assert 28 < per_value < 34  # seeded symmetric ciphertexts: about 30 bytes per value (module docstring)


def test_chunk_files_round_trip(tmp_path):
    chunks = [b"abc", b"", bytes(range(256))]
    he.write_chunks(tmp_path / "x.ckks", chunks)
    assert he.read_chunks(tmp_path / "x.ckks") == chunks


def test_encrypted_federation_decrypts_to_the_plain_round(keys, tiny_npz, tmp_path):
    site_ctx, server_ctx, site_key, server_key = keys
    run, sites = federation(tiny_npz, tmp_path)
    start = run.weights()
    plan = (run.fed.id, run.cfg, run.fed.rounds, run.fed.local_steps, len(sites))
    results = [s.train_round(*plan, start) for s in sites]
    uploads = [he.encrypt(site_ctx, he.pack_weights([w + d for w, d in zip(start, r.update)], r.images / 24)) for r in results]
    run.finish_round([(r.images, r.metrics) for r in results], 0, 1.0, {},
                     encrypted=he.add_ciphertexts(server_ctx, uploads))
    assert all(np.array_equal(a, b) for a, b in zip(run.weights(), start))  # the server learnt nothing
    with pytest.raises(GanforgeError, match="secret"):
        decrypt_run(run.run_dir, server_key, tmp_path / "nope")
    out = decrypt_run(run.run_dir, site_key, tmp_path / "decrypted")
    plain = [w + d for w, d in zip(start, weighted_mean([r.update for r in results], [r.images for r in results]))]
    gen = load_generator(out)
    assert gen.step == run.fed.local_steps
    from ganforge.federated.server import GlobalRun

    decrypted = GlobalRun.resume(out).weights()
    reference = GlobalRun.resume(run.run_dir)  # the plain FedAvg weights, loaded as the server loads a round's
    reference.load_weights(plain)
    assert max(float(np.abs(a - b).max()) for a, b in zip(decrypted, reference.weights())) < 1e-5


def test_the_site_key_is_never_readable_by_others(tmp_path, monkeypatch):
    """site.key is created with mode 0600: at every later write in keygen it already has it (a chmod after
    writing would leave it world-readable in between)."""
    import pathlib
    import stat

    seen = []
    original = pathlib.Path.write_bytes

    def spying(self, data):
        out = original(self, data)
        seen.extend(stat.S_IMODE(p.stat().st_mode) for p in self.parent.glob(he.SITE_KEY))
        return out

    monkeypatch.setattr(pathlib.Path, "write_bytes", spying)
    site, _ = he.keygen(tmp_path / "keys")
    assert seen and set(seen) == {0o600}
    assert stat.S_IMODE(site.stat().st_mode) == 0o600


def test_he_does_not_import_the_server():
    """he.py is the crypto alone; the server imports it, never the reverse (no import cycle)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(he))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "server" not in imported and not any(m and m.endswith(".server") for m in imported)


def test_ckks_rounds_weigh_sites_by_their_images(keys, tiny_npz, tmp_path, unequal_sites):
    """Two sites holding 8 and 32 images: the decrypted sum is their images-weighted mean."""
    from flwr.common import parameters_to_ndarrays

    from ganforge.federated.flower_client import SiteClient
    from ganforge.federated.round_messages import fit_instructions
    from ganforge.federated.site_policy import SitePolicy

    site_ctx, server_ctx, site_key, _ = keys
    run, _ = federation(tiny_npz, tmp_path, max_site_images=100)
    sites = unequal_sites
    ins = fit_instructions(run, ndarrays_to_parameters(run.weights()), 2)
    ins.config["he"] = "ckks"
    replies = [SiteClient(s, SitePolicy(he_key=str(site_key))).fit(ins) for s in sites]
    total = he.add_ciphertexts(server_ctx, [r.parameters.tensors for r in replies])
    template = run.weights()
    mean = he.unpack_weights(he.decrypt(site_ctx, total, sum(a.size for a in template) + 1), template)
    plain = [SiteClient(Site(s.data_source, tmp_path / "plain" / s.name, name=s.name)).fit(
        fit_instructions(run, ndarrays_to_parameters(run.weights()), 2)) for s in sites]
    local = [[w + d for w, d in zip(template, parameters_to_ndarrays(r.parameters))] for r in plain]
    assert max(float(np.abs(a - b).max()) for a, b in zip(mean, weighted_mean(local, [8, 32]))) < 1e-5
    assert max(float(np.abs(a - b).max()) for a, b in zip(mean, weighted_mean(local, [1, 1]))) > 1e-4


def test_sample_and_eval_refuse_an_encrypted_servers_folder(tiny_npz, tmp_path, capsys):
    from ganforge.cli.main import main

    run, _ = federation(tiny_npz, tmp_path, he="ckks")
    for argv in (["sample", str(run.run_dir), "--n", "4", "--out", str(tmp_path / "s.png")],
                 ["eval", str(run.run_dir), "--real", str(tiny_npz), "--n", "8", "--metrics", "pr"]):
        assert main(argv) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "weights live at the sites" in err[0], err
    assert not (tmp_path / "s.png").exists()


def test_simulate_takes_a_site_key(keys, tmp_path):
    """simulate --he ckks --he-key site.key: the sites use that key, the server a key made from it without the
    secret (before, the sites were pointed at RUN/keys/site.key, which did not exist)."""
    import argparse

    from ganforge.cli.federate_cmd import _simulation_keys

    _, _, site_key, server_key = keys
    args = argparse.Namespace(he="ckks", he_key=str(site_key))
    site, server = _simulation_keys(args, tmp_path / "run")
    assert site == str(site_key.resolve()) and not he.load_context(server).has_secret_key()
    with pytest.raises(GanforgeError, match="site key"):
        _simulation_keys(argparse.Namespace(he="ckks", he_key=str(server_key)), tmp_path / "run2")
