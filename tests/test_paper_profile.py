"""The paper profile cannot rot: every chapter notebook runs with papermill at the ``paper`` profile on CPU.

The notebooks get ``profile="paper"``: the paper's encoders (ResNet-50, ResNet-50x2, ResNet-152, ViT-B/16), tile sizes
(64-256 px), annotated patch size (224 px), pooling sizes and optimiser hyperparameters, and the code paths a GPU user
runs with real data (``data_dir``/``cmmd_dir`` point at prepared datasets, as after ``mammossl prepare``). What is
capped, so that the whole run fits CI on two cores:

* the data: a small synthetic dataset per domain (``PATIENTS`` patients; CMMD's five folds need a benign and a
  malignant patient in every fifth) at ``SIZE``, a quarter of the paper's
  resolution in each direction (measured on 2 cores at 1152x896: ResNet-50 forward + backward 4.4 s per image,
  ResNet-152 22 s; at half resolution the finetuning chapters alone took over 30 minutes);
* pretraining: ``max_steps`` steps at ``batch_size`` (the schedule still spans the paper's 200 epochs);
* evaluation: ``epochs`` epochs; the grids of chapter 1 (two transforms), chapter 2 (tiles of 64-128 px: a 256 px
  tile does not fit these small breasts), chapter 5 (two label fractions) and chapter 8 (one fold: each fold runs
  the same code) are shortened through their papermill parameters.

Each notebook is one test, run in chapter order, sharing one artefact cache as the book does. The cache must stay
under ``CACHE_BUDGET_GB`` after every chapter: CI machines have seen little free disk, and the paper's encoders make
large checkpoints (finished cached runs keep ``best.pt`` only, see :func:`mammossl_core.pretrain.drop_resume_state`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.paper, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PATIENTS = {"ddsm": 10, "cmmd": 12}
SIZE = {"ddsm": (288, 224), "cmmd": (287, 239)}
#: ``MAMMOSSL_SMOKE_DEVICE=cuda`` runs the same capped chapters on a GPU (benchmarks/gpu_pretrain.py does)
CAPS = {"device": os.environ.get("MAMMOSSL_SMOKE_DEVICE", "cpu"), "max_steps": 2, "batch_size": 4, "epochs": 1, "transforms": ["crop", "gamma"],
        "tile_sizes": [64, 96, 128], "label_fractions": [0.5, 1.0], "cv_folds": 1}
CACHE_BUDGET_GB = 8.0


def _gb(root: Path) -> float:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e9


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    """Two small prepared datasets at the paper profile (film and digital domains) and one shared cache."""
    from mammossl_core.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("paper")
    dirs = {}
    for domain, (h, w) in SIZE.items():
        dirs[domain] = synthesize(root / domain, patients=PATIENTS[domain], seed=0, profile="paper", domain=domain,
                                  workers=2, progress=False, height=h, width=w, unlabeled_patients=2)
    yield root, dirs
    # the checkpoints and caches take several GB; the executed notebooks (root/chapters) are kept for inspection
    shutil.rmtree(root / "cache", ignore_errors=True)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_paper_profile(notebook, paper_run, monkeypatch):
    import nbformat

    from mammossl_core.book import run_notebooks

    root, dirs = paper_run
    monkeypatch.setenv("MAMMOSSL_CACHE", str(root / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # conftest's Agg shows nothing
    params = {"data_dir": str(dirs["ddsm"]), "cmmd_dir": str(dirs["cmmd"]), **CAPS}
    rec = run_notebooks("paper", params, only=[notebook.stem[:2]], force=True, out_dir=root / "chapters")
    assert [r["status"] for r in rec] == ["executed"]
    nb = nbformat.read(root / "chapters" / notebook.name, as_version=4)
    assert nb.metadata["mammossl"]["params"]["profile"] == "paper"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = " ".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "profile paper" in text
    if notebook.stem[:2] != "00":  # each experiment ends with the paper's number beside this run's
        assert "paper" in text and any("image/png" in o.get("data", {}) for o in outputs)
    size = _gb(root / "cache")
    print(f"[paper smoke] after {notebook.stem}: cache {size:.2f} GB")
    assert size < CACHE_BUDGET_GB, f"the artefact cache holds {size:.1f} GB after {notebook.stem}"
