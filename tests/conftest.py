"""Shared fixtures: one small synthetic dataset per test session (tiny profile)."""
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def cache_root(tmp_path_factory):
    """Artefacts and frozen-grid caches of the tests go to a temporary cache root, never into the work tree."""
    d = tmp_path_factory.mktemp("cache")
    old = os.environ.get("MAMMOSSL_CACHE")
    os.environ["MAMMOSSL_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("MAMMOSSL_CACHE", None)
    else:
        os.environ["MAMMOSSL_CACHE"] = old


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    from mammossl_core.data.synthetic import synthesize

    d = tmp_path_factory.mktemp("synth")
    synthesize(d, patients=24, seed=3, profile="tiny", workers=2, progress=False, unlabeled_patients=8)
    return d


@pytest.fixture(scope="session")
def store(synth_dir):
    """The data products of the session dataset (image store, tile indexes, annotated patches), built once."""
    from mammossl_core.config import get_profile
    from mammossl_core.data.products import build_products
    from mammossl_core.data.tiles import ImageStore

    assert build_products(synth_dir, get_profile("tiny"), progress=False) == []
    return ImageStore(synth_dir)


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
