"""Shared fixtures: one small synthetic dataset per test session (tiny profile)."""
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    from mammossl_core.data.synthetic import synthesize

    d = tmp_path_factory.mktemp("synth")
    synthesize(d, patients=24, seed=3, profile="tiny", workers=2, progress=False)
    return d


@pytest.fixture(scope="session")
def store(synth_dir):
    from mammossl_core.data.tiles import TileStore

    s, failures = TileStore.build(synth_dir, progress=False)
    assert failures == []
    return s


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
