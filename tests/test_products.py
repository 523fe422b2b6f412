"""One owner per data product: `mammossl tiles` builds, every other step reads, and a read-only dataset works."""
import os
import stat

import pytest

from mammossl_core.config import get_profile
from mammossl_core.data.layout import DataError
from mammossl_core.data.products import build_products
from mammossl_core.data.synthetic import synthesize
from mammossl_core.data.tiles import ImageStore


def _snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _chmod_tree(root, writable: bool):
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_missing_products_name_their_builder(tmp_path):
    d = synthesize(tmp_path / "ds", patients=10, seed=1, profile="tiny", workers=1, progress=False, unlabeled_patients=0)
    with pytest.raises(DataError, match="mammossl tiles --data"):
        ImageStore(d)
    from mammossl_core.pretrain import pretrain

    with pytest.raises(DataError, match="mammossl tiles --data"):
        pretrain("byol", d, tmp_path / "run", "tiny", progress=False, max_steps=1)


@pytest.mark.slow
def test_read_only_dataset_serves_pretraining_evaluation_and_analyses(tmp_path):
    from mammossl_core.analysis import attention, prototypes
    from mammossl_core.evaluate import linear_eval
    from mammossl_core.patch_eval import patch_linear_eval
    from mammossl_core.pretrain import pretrain

    d = synthesize(tmp_path / "ds", patients=16, seed=5, profile="tiny", workers=1, progress=False, unlabeled_patients=0)
    build_products(d, get_profile("tiny"), progress=False)
    before = _snapshot(d)
    _chmod_tree(d, writable=False)
    try:
        pretrain("swav", d, tmp_path / "run", "tiny", progress=False, max_steps=2, batch_size=16)
        pretrain("byol", d, tmp_path / "arun", "tiny", progress=False, max_steps=1, batch_size=8, source="annotated")
        linear_eval(d, tmp_path / "run" / "best.pt", "mip", "tiny", tmp_path / "lin", linear_epochs=1,
                    cache_dir=tmp_path / "grids")
        patch_linear_eval(d, tmp_path / "arun", "tiny", None, linear_epochs=1)
        prototypes.report(tmp_path / "run" / "best.pt", d, tmp_path / "proto", tiles=100)
        attention.report(d, tmp_path / "lin", tmp_path / "att")
        assert build_products(d, get_profile("tiny"), progress=False) == []  # up to date: nothing to write
    finally:
        _chmod_tree(d, writable=True)
    # as root the permission bits do not stop writes, so the test also checks that nothing in the dataset changed
    assert _snapshot(d) == before
    assert os.access(tmp_path / "lin" / "result.json", os.R_OK)
