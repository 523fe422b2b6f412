"""nbval as its users run it (``make nbval``): the recorded outputs of the cells tagged ``nbval-check-output`` are
what an execution must reproduce. After ``make book`` (the artefacts are cached), chapter 9 executed by nbval passes
with its recorded outputs and fails when one recorded output is changed."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mammossl_core.book import NBVAL_TAG

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "09_your_own_mammograms.ipynb"


def _nbval(path: Path) -> subprocess.CompletedProcess:
    """nbval on ``path`` as a user runs it: the project's artefact cache and matplotlib's default backend, not the
    test session's (``conftest.py``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAMMOSSL_CACHE", "MPLBACKEND")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "notebooks" / "nbval_sanitize.cfg"),
                           str(path)], cwd=path.parent, capture_output=True, text=True,
                          env={**env, "TQDM_DISABLE": "1"}, timeout=900)


def test_every_chapter_has_recorded_outputs_for_its_checked_cells_and_none_elsewhere():
    for src in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(src, as_version=4)
        checked = [c for c in nb.cells if c.cell_type == "code" and NBVAL_TAG in c.metadata.get("tags", [])]
        assert checked, f"{src.name}: no cell tagged {NBVAL_TAG}"
        assert all(c.outputs for c in checked), f"{src.name}: a checked cell without recorded outputs (make nbval-record)"
        assert not any(c.outputs for c in nb.cells if c.cell_type == "code" and c not in checked), \
            f"{src.name}: outputs recorded in a cell that nbval does not check"


@pytest.mark.book
def test_nbval_passes_the_recorded_outputs_and_fails_a_changed_one(tmp_path):
    nb = nbformat.read(CHAPTER, as_version=4)
    summary = next(c for c in nb.cells if NBVAL_TAG in c.metadata.get("tags", [])
                   and any(o.get("name") == "stdout" and "'written': " in o.text for o in c.outputs))
    (tmp_path / "same").mkdir()
    nbformat.write(nb, tmp_path / "same" / CHAPTER.name)
    same = _nbval(tmp_path / "same" / CHAPTER.name)
    assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-2000:]

    out = next(o for o in summary.outputs if o.get("name") == "stdout")
    out.text = out.text.replace("'written': ", "'written': 10")  # the conversion summary as if it wrote 10x more
    (tmp_path / "changed").mkdir()
    nbformat.write(nb, tmp_path / "changed" / CHAPTER.name)
    changed = _nbval(tmp_path / "changed" / CHAPTER.name)
    assert changed.returncode != 0
    assert "Cell outputs differ" in changed.stdout and "written': 108" in changed.stdout, changed.stdout[-3000:]
    assert "1 failed" in changed.stdout, changed.stdout[-3000:]
