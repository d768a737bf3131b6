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
