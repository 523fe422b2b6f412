"""The book runner: its treatment of an executed notebook, its timings, its digest, and its shared kernel (on tiny
notebooks)."""
import json
import shutil

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from mammossl_core.book import for_the_book


def test_the_book_collapses_the_injected_parameters_and_keeps_every_output():
    warning = new_output("stream", name="stderr", text="UserWarning: a real warning\n  warnings.warn(msg)\n")
    printed = new_output("stream", name="stdout", text="\rprinted by the chapter")
    table = new_output("display_data", data={"text/plain": "a table"})
    nb = new_notebook(cells=[new_code_cell("ch.setup()", metadata={"tags": ["injected-parameters"]}),
                             new_code_cell("fit()", outputs=[warning, printed, table])])
    out = for_the_book(nbformat.from_dict(nb))
    assert out.cells[0].metadata["tags"] == ["injected-parameters", "hide-input"]
    assert out.cells[1].outputs == [warning, printed, table]


def test_a_partial_run_keeps_the_other_chapters_timings(tmp_path):
    from mammossl_core.book import _write_timings

    path = tmp_path / "timings.json"
    _write_timings(path, [{"notebook": "00_data.ipynb", "status": "executed", "seconds": 50.0},
                          {"notebook": "01_augmentations.ipynb", "status": "executed", "seconds": 40.0}])
    _write_timings(path, [{"notebook": "01_augmentations.ipynb", "status": "executed", "seconds": 42.0}])
    assert json.loads(path.read_text()) == [{"notebook": "00_data.ipynb", "status": "executed", "seconds": 50.0},
                                            {"notebook": "01_augmentations.ipynb", "status": "executed", "seconds": 42.0}]


def test_the_package_source_is_part_of_a_chapters_digest_and_of_every_artefact_key(tmp_path, monkeypatch):
    """A code change without a version bump executes the chapters again and misses the artefact cache."""
    import mammossl_core
    from mammossl_core import artefacts, book

    nb = tmp_path / "00_x.ipynb"
    _notebook(nb, "x = 1")
    before, key = book._digest(nb, {"profile": "tiny"}), artefacts.key(a=1)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "mod.py").write_text("x = 1\n")
    monkeypatch.setattr(mammossl_core, "__file__", str(pkg / "__init__.py"))
    mammossl_core.source_digest.cache_clear()
    try:
        changed = (book._digest(nb, {"profile": "tiny"}), artefacts.key(a=1))
        (pkg / "mod.py").write_text("x = 2\n")
        mammossl_core.source_digest.cache_clear()
        again = (book._digest(nb, {"profile": "tiny"}), artefacts.key(a=1))
    finally:
        mammossl_core.source_digest.cache_clear()
    assert changed != (before, key) and again[0] != changed[0] and again[1] != changed[1]


def _notebook(path, *sources):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_chapters_share_one_kernel_and_start_from_an_empty_namespace(tmp_path, monkeypatch):
    import pytest

    from mammossl_core.book import NotebookError, run_notebooks

    monkeypatch.setenv("MAMMOSSL_REPO", str(tmp_path))  # the kernel's working directory and book/_failed
    src, out = tmp_path / "notebooks", tmp_path / "chapters"
    src.mkdir()
    _notebook(src / "00_first.ipynb", "import os\nleft_over = 1\nprint(os.getpid())")
    _notebook(src / "01_second.ipynb", "import os\nprint(os.getpid(), 'left_over' in globals())",
              "from tqdm.auto import tqdm\nprint(os.environ.get('TQDM_DISABLE'), tqdm(range(3)).disable)")
    run_notebooks(notebooks_dir=src, out_dir=out)
    cells = {n: nbformat.read(out / f"{n}.ipynb", as_version=4).cells for n in ("00_first", "01_second")}
    pids = [cells["00_first"][-1].outputs[0].text.split(), cells["01_second"][-2].outputs[0].text.split()]
    assert pids[0][0] == pids[1][0] and pids[1][1] == "False"  # one kernel process, no variable carried over
    assert cells["01_second"][-1].outputs[0].text.split() == ["1", "True"]  # tqdm's own switch is off

    _notebook(src / "01_second.ipynb", "import os\nos._exit(3)")  # a chapter that kills the kernel
    _notebook(src / "02_third.ipynb", "print('ran')")
    with pytest.raises(NotebookError, match="01_second.ipynb: the kernel died"):
        run_notebooks(notebooks_dir=src, out_dir=out)
    assert (tmp_path / "book" / "_failed" / "01_second.ipynb").is_file()
    run_notebooks(notebooks_dir=src, out_dir=out, only=["02"])  # a later run starts a kernel of its own
    assert nbformat.read(out / "02_third.ipynb", as_version=4).cells[-1].outputs[0].text == "ran\n"


def test_a_training_replicate_keeps_the_datasets_and_moves_the_training_seed(monkeypatch, tmp_path):
    """Replicate r trains with seed + 1000 r on the same datasets (CBIS-DDSM and CMMD): its claims pair item by item
    with replicate 0's."""
    from mammossl_core import chapter

    drawn = []
    monkeypatch.setattr(chapter.artefacts, "dataset",
                        lambda data_dir, prof, domain, seed: drawn.append((domain, seed)) or tmp_path / domain)
    ch = chapter.setup("04_whole_image", seed=5, replicate=2, out_dir=tmp_path / "results")
    ch.cmmd()
    assert drawn == [("ddsm", 5), ("cmmd", 5)]
    assert ch.seed == 2005 and ch.data_seed == 5 and ch.pretrain_overrides["seed"] == 2005


def _tagged(path, outputs=None, source="print(len(x))", tags=("nbval-check-output",)):
    """A chapter with an untagged cell and a cell tagged for nbval, each with ``outputs``."""
    out = outputs or []
    nb = new_notebook(cells=[new_code_cell("x = [1, 2]", outputs=out),
                             new_code_cell(source, metadata={"tags": list(tags)}, outputs=out)])
    for i, c in enumerate(nb.cells):
        c.id = f"cell{i}"
    nbformat.write(nb, path)


def _executed(tmp_path, params, source="print(len(x))"):
    """``notebooks/00_x.ipynb`` and its copy executed by the book from ``source`` with ``params``."""
    from mammossl_core import book

    printed = [new_output("stream", name="stdout", text="2\n")]
    for d in ("notebooks", "chapters", "ran"):
        (tmp_path / d).mkdir()
    _tagged(tmp_path / "notebooks" / "00_x.ipynb")
    _tagged(tmp_path / "ran" / "00_x.ipynb", source=source)
    _tagged(tmp_path / "chapters" / "00_x.ipynb", printed, source=source)
    ex = nbformat.read(tmp_path / "chapters" / "00_x.ipynb", as_version=4)
    for i, c in enumerate(ex.cells):
        c.execution_count = i + 1
    ex.metadata["mammossl"] = {"digest": book._digest(tmp_path / "ran" / "00_x.ipynb", params), "params": params}
    nbformat.write(ex, tmp_path / "chapters" / "00_x.ipynb")
    return printed


def test_nbval_references_are_the_books_outputs_of_the_tagged_cells_only(tmp_path):
    from mammossl_core import book

    printed = _executed(tmp_path, {"profile": "tiny", "out_dir": "results"})
    digest = book._digest(tmp_path / "notebooks" / "00_x.ipynb", {})
    assert book.record_nbval(tmp_path / "chapters", tmp_path / "notebooks") == ["00_x.ipynb"]
    nb = nbformat.read(tmp_path / "notebooks" / "00_x.ipynb", as_version=4)
    assert nb.cells[0].outputs == [] and nb.cells[1].outputs == printed
    assert nb.cells[0].execution_count is None and nb.cells[1].execution_count == 2  # nbval skips unrun cells
    # recording outputs does not make the executed chapter out of date
    assert book._digest(tmp_path / "notebooks" / "00_x.ipynb", {}) == digest


def test_nbval_recording_refuses_a_book_executed_from_other_code_or_other_parameters(tmp_path):
    import pytest

    from mammossl_core import book

    _executed(tmp_path, {"profile": "tiny", "out_dir": "results"}, source="print(len(x) + 1)")
    before = (tmp_path / "notebooks" / "00_x.ipynb").read_text()
    with pytest.raises(ValueError, match="executed from another text of 00_x.ipynb or another package source"):
        book.record_nbval(tmp_path / "chapters", tmp_path / "notebooks")
    for params in ({"profile": "paper", "out_dir": "results"}, {"profile": "tiny", "data_dir": "/data/cbis"}):
        for d in ("notebooks", "chapters", "ran"):
            shutil.rmtree(tmp_path / d)
        _executed(tmp_path, params)
        with pytest.raises(ValueError, match="nbval executes the notebooks' defaults"):
            book.record_nbval(tmp_path / "chapters", tmp_path / "notebooks")
    assert (tmp_path / "notebooks" / "00_x.ipynb").read_text() == before


def test_a_replicate_executed_by_other_code_is_left_out_of_the_pooling(tmp_path, capsys):
    from mammossl_core import book
    from mammossl_core.pages import replicate_results

    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "04_x.ipynb", "x = 1")
    for r, source in ((1, "x = 1"), (2, "x = 2")):  # replicate 2 ran an older text of the chapter
        d = tmp_path / "replicates" / f"rep_{r}"
        (d / "results").mkdir(parents=True)
        _notebook(d / "04_x.ipynb", source)
        nb = nbformat.read(d / "04_x.ipynb", as_version=4)
        params = {"profile": "tiny", "replicate": r}
        (tmp_path / "src.ipynb").write_text(nbformat.writes(nb))
        nb.metadata["mammossl"] = {"digest": book._digest(tmp_path / "src.ipynb", params), "params": params}
        nbformat.write(nb, d / "04_x.ipynb")
    kept = replicate_results(tmp_path, lambda d: book.up_to_date(d, tmp_path / "notebooks"))
    assert kept == [tmp_path / "replicates" / "rep_1" / "results"]
    assert "rep_2 was executed by other code" in capsys.readouterr().out
