"""The book runner: its treatment of an executed notebook, its timings and its digest (no execution here)."""
import json

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from mammossl_core.book import for_the_book


def test_the_book_leaves_out_progress_bars_and_keeps_every_other_output():
    bar = [new_output("stream", name="stderr", text=f"\rlinear gap: {k}0%|##  | {k}/10") for k in range(3)]
    kept_bar = new_output("stream", name="stderr", text="\rsupervised: 100%|####| 10/10\n")
    newline = new_output("stream", name="stderr", text="\n")
    warning = new_output("stream", name="stderr", text="UserWarning: a real warning\n  warnings.warn(msg)\n")
    printed = new_output("stream", name="stdout", text="\rprinted by the chapter")
    table = new_output("display_data", data={"text/plain": "a table"})
    nb = new_notebook(cells=[new_code_cell("ch.setup()", metadata={"tags": ["injected-parameters"]}),
                             new_code_cell("fit()", outputs=[*bar, kept_bar, newline, warning, printed, table])])
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


def test_the_package_version_is_part_of_a_chapters_digest(tmp_path, monkeypatch):
    from mammossl_core import book

    nb = tmp_path / "00_x.ipynb"
    nb.write_text("{}")
    before = book._digest(nb, {"profile": "tiny"})
    monkeypatch.setattr(book, "__version__", "999.0")
    assert book._digest(nb, {"profile": "tiny"}) != before
