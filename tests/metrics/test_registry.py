"""Contract tests run for every metric in the registry (``METRICS``), so a metric added later is covered too.

Every metric goes through :func:`evaluate` on tiny 16-px grayscale sets whose three classes differ in
brightness, with the domain network (a classifier trained once on 300 labelled training images, about
3 s; Inception is never loaded). The reference is 60 held-out images; the generated sets are:

* ``copies``: exact copies of the reference (fake == real);
* ``heldout``: 60 other images of the same distribution;
* ``noise``: uniform random pixels; ``constant``: every pixel 128;
* ``train_copies``: copies of 60 training images (what memorisation must flag).

Results are memoised per (metrics, generated set) within this module, so each evaluation runs once
however many tests read it; the determinism test recomputes on purpose.
"""
from __future__ import annotations

import fnmatch
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.metrics.evaluate import METRICS, PRIMARY, Evaluator, evaluate, primary_value
from ganforge.metrics.names import ALIASES, parse_metrics

NAMES = sorted(METRICS)
BASE_KEYS = {"extractor", "n_fake", "n_real"}  # what evaluate reports besides the metrics
DOCS = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"

# Result names a metric returns that docs/evaluation.md does not list (kept explicit so the list only shrinks).
UNDOCUMENTED: dict[str, set[str]] = {}  # result names a metric returns that docs/evaluation.md does not list

GOOD_SETS = ("copies", "heldout")
BAD_SETS = ("noise", "constant")
EXTRA_BAD_SETS = {
    # memorisation flags replayed training images: that is the failure its primary value must rank worse
    "memorisation": ("train_copies",),
}
INVERTED = {
    # (metric, bad set): why the metric legitimately ranks that "bad" set at least as well as real images
    ("memorisation", "noise"): "memorisation measures copying, not fidelity: noise is far from every training "
                               "image, so it has no near-copies (share 0), below real images' ~1/N baseline",
    ("memorisation", "constant"): "memorisation measures copying, not fidelity: a constant image copies no "
                                  "training image (near-copy share 0), below real images' ~1/N baseline",
}


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """NumPy's OpenBLAS threads spin against torch's OpenMP ones once torch is loaded: on a 2-core machine
    a small matrix product gets ~100x slower (KID's 300 of them take 3 s instead of 0.1 s). One BLAS
    thread, as conftest gives torch one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only slower without it
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def _make(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 (1, 16, 16) images of 3 balanced classes: class c has pixels in 20 + 90 c + [0, 40)."""
    labels = torch.arange(n) % 3
    noise = torch.randint(0, 40, (n, 1, 16, 16), generator=torch.Generator().manual_seed(seed))
    return (20 + 90 * labels[:, None, None, None] + noise).to(torch.uint8), labels


@pytest.fixture(scope="module")
def data():
    train, train_labels = _make(300, 0)
    real, real_labels = _make(60, 1)
    heldout, _ = _make(60, 2)
    fakes = {
        "copies": real.clone(),
        "heldout": heldout,
        "noise": torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(3)),
        "constant": torch.full_like(real, 128),
        "train_copies": train[:60].clone(),
    }
    return {"train": train, "train_labels": train_labels, "real": real, "real_labels": real_labels, "fakes": fakes}


def _evaluate(data, fake: str, metrics: list[str], **kwargs) -> dict:
    return evaluate(data["fakes"][fake], data["real"], metrics, real_labels=data["real_labels"], train=data["train"],
                    train_labels=data["train_labels"], extractor="domain", progress=False, **kwargs)


@pytest.fixture(scope="module")
def run(data):
    """run(fake set, metrics) -> evaluate's results, computed once per module."""
    memo: dict = {}

    def run(fake: str, metrics: list[str]) -> dict:
        key = (fake, tuple(metrics))
        if key not in memo:
            memo[key] = _evaluate(data, fake, list(metrics))
        return memo[key]

    return run


def _own(results: dict) -> dict:
    """The metric's part of evaluate's results."""
    return {k: v for k, v in results.items() if k not in BASE_KEYS}


def _documented_names() -> dict[str, list[str]]:
    """{metric: result-name patterns} from the metrics table of docs/evaluation.md."""
    table = DOCS.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`[a-z_]+`", cells[0]):
            out[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[1])
    return out


def _better(a: float, b: float, higher: bool) -> bool:
    return a > b if higher else a < b


# --- 1. every metric runs and returns finite, documented, consistently named numbers -----------------------


@pytest.mark.parametrize("name", NAMES)
def test_runs_and_returns_finite_plain_values(name, run):
    for fake in ("copies", "heldout", "noise", "constant"):
        results = run(fake, [name])
        assert results["extractor"] == "domain" and results["n_fake"] == 60 and results["n_real"] == 60
        own = _own(results)
        assert own, f"{name} returned no values"
        json.dumps(results, allow_nan=False)  # written as JSON by `ganforge eval` and metrics.jsonl
        for key, value in own.items():
            if isinstance(value, list):  # e.g. classes_missing: class indices
                assert all(type(v) is int for v in value), (key, value)
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                assert ok, f"{name}: {key} is a {type(value).__name__}, not a number"
                assert math.isfinite(value), (key, value)


@pytest.mark.parametrize("name", NAMES)
def test_result_names_are_the_same_for_any_input_and_documented(name, run):
    keys = set(_own(run("copies", [name])))
    for fake in ("heldout", "noise", "constant"):
        assert set(_own(run(fake, [name]))) == keys, f"{name} returns other names for {fake} images"
    documented = _documented_names()
    assert name in documented, f"docs/evaluation.md does not list metric {name!r}"
    patterns = documented[name]
    undocumented = {k for k in keys if not any(fnmatch.fnmatchcase(k, p) for p in patterns)}
    assert undocumented == UNDOCUMENTED.get(name, set()), f"{name}: names missing from docs/evaluation.md"
    for pattern in patterns:  # each documented name is returned (those of another extractor aside)
        if "inception" not in pattern:
            assert any(fnmatch.fnmatchcase(k, pattern) for k in keys), f"{name}: documented {pattern!r} not returned"


@pytest.mark.parametrize("name", NAMES)
def test_same_values_when_run_with_every_other_metric(name, run):
    """evaluate merges the metrics' dicts: no name may be shared (one would overwrite the other), and a
    metric must not be affected by which others run beside it (modes and memorisation add sets)."""
    alone = _own(run("heldout", [name]))
    together = run("heldout", NAMES)
    for other in NAMES:
        if other != name:
            assert not set(alone) & set(_own(run("heldout", [other]))), f"{name} and {other} share result names"
    assert {k: together[k] for k in alone} == alone


# --- 2. the primary value ranks real-like images above clearly different ones -----------------------------


def _direction_cases():
    for name in NAMES:
        for bad in BAD_SETS + EXTRA_BAD_SETS.get(name, ()):
            for good in GOOD_SETS:
                reason = INVERTED.get((name, bad))
                marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)] if reason else []
                yield pytest.param(name, good, bad, marks=marks, id=f"{name}-{good}-vs-{bad}")


@pytest.mark.parametrize("name,good,bad", list(_direction_cases()))
def test_primary_value_prefers_real_like_images(name, good, bad, run):
    key, good_value, higher = primary_value(name, run(good, [name]))
    _, bad_value, _ = primary_value(name, run(bad, [name]))
    assert _better(good_value, bad_value, higher), (
        f"{key} ({'higher' if higher else 'lower'} is better): {good} images {good_value:.6g}, {bad} {bad_value:.6g}")


# --- 3. determinism --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_leaves_the_reference_unchanged(name, data, run):
    """Twice through one Evaluator (as training does) and once more through evaluate, under other global
    random states: equal results, and the Evaluator's reference features are not modified."""
    first = run("heldout", [name])
    ev = Evaluator(data["real"], data["real_labels"], train=data["train"], train_labels=data["train_labels"],
                   extractor="domain", progress=False)
    reference = ev.real.features.copy(), None if ev.real.probs is None else ev.real.probs.copy()
    results = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        results.append(ev(data["fakes"]["heldout"], [name]))
    torch.manual_seed(3)
    np.random.seed(3)
    results.append(_evaluate(data, "heldout", [name]))
    assert results == [first] * 3
    assert np.array_equal(ev.real.features, reference[0])
    assert reference[1] is None or np.array_equal(ev.real.probs, reference[1])


def test_results_do_not_depend_on_the_cache(data, run, tmp_path):
    """A fresh cache retrains the domain network and re-extracts the reference: every metric reads the same."""
    assert _evaluate(data, "heldout", NAMES, cache_dir=tmp_path) == run("heldout", NAMES)


# --- 4. names, aliases and the best-weights rule ---------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_metric_name_parses_to_itself(name):
    assert name == name.strip().lower() and "," not in name
    assert parse_metrics(name) == [name] and parse_metrics(f" {name.upper()} ") == [name]


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_resolves_to_a_registered_metric(alias):
    target = ALIASES[alias]
    assert target in METRICS, f"alias {alias!r} points at unregistered {target!r}"
    assert alias not in METRICS, f"alias {alias!r} would hide the metric of that name"
    assert parse_metrics(alias) == [target] and parse_metrics(f" {alias.upper()} ") == [target]
    assert parse_metrics([alias, target]) == [target]  # an alias and its metric count once


def test_unknown_metric_lists_every_name():
    with pytest.raises(GanforgeError, match="unknown metric") as info:
        parse_metrics("fd,no_such_metric")
    for name in list(METRICS) + list(ALIASES):
        assert name in str(info.value)


def test_primary_covers_exactly_the_registry():
    """The rule in the code: every registered metric has a PRIMARY entry (training keeps the best weights by
    ``primary_value(metrics[0], ...)`` with no fallback; memorisation has one too, though training refuses
    it as an evaluation metric), and PRIMARY names no unregistered metric."""
    assert set(PRIMARY) == set(METRICS)


@pytest.mark.parametrize("name", NAMES)
def test_primary_value_picks_one_of_the_metrics_own_numbers(name, run):
    assert name in PRIMARY, f"{name} has no PRIMARY entry: `train.eval_metrics={name}` would fail at the first eval"
    own = _own(run("heldout", [name]))
    key, value, higher = primary_value(name, run("heldout", [name]))
    assert key in own and not isinstance(own[key], (bool, list)) and value == own[key] and math.isfinite(value)
    assert type(higher) is bool
    assert primary_value(name, run("heldout", NAMES)) == (key, value, higher)  # the same among all results
