"""Run the chapter notebooks with papermill for a profile, then build the Jupyter Book.

``mammossl book run --profile tiny`` executes ``notebooks/*.ipynb`` in order into ``book/chapters/`` (where the
book reads them). A notebook that fails stops the run with a non-zero exit naming the notebook and the cell; its
partly executed copy goes to ``book/_failed/``, never into the book. Executed copies whose source and parameters
have not changed are kept, and shared artefacts (datasets, pretrained encoders, evaluations) come from the cache
(:mod:`mammossl_core.artefacts`), so a re-run after a failure continues where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import claims
from .chapter import dataset_label
from .config import resolve


def _repo() -> Path:
    return Path(os.environ.get("MAMMOSSL_REPO", Path(__file__).resolve().parents[1]))


def _digest(src: Path, params: dict) -> str:
    return hashlib.sha1(src.read_bytes() + json.dumps(params, sort_keys=True).encode()).hexdigest()


class NotebookError(RuntimeError):
    """A chapter notebook failed; the message names the notebook and the failing cell."""


def run_notebooks(profile: str = "tiny", params: dict | None = None, only: list[str] | None = None,
                  force: bool = False, notebooks_dir: Path | None = None, out_dir: Path | None = None) -> list[dict]:
    """Execute the notebooks in order; returns one record per notebook (name, status, seconds)."""
    import nbformat
    import papermill as pm

    repo = _repo()
    src_dir = notebooks_dir or repo / "notebooks"
    out_dir = out_dir or repo / "book" / "chapters"
    failed_dir = repo / "book" / "_failed"
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "out_dir": str(out_dir / "results"), **(params or {})}
    records = []
    for src in sorted(src_dir.glob("[0-9][0-9]_*.ipynb")):
        if only and not any(src.stem.startswith(o) for o in only):
            continue
        dst = out_dir / src.name
        digest = _digest(src, params)
        if not force and dst.is_file():
            meta = nbformat.read(dst, as_version=4).metadata.get("mammossl", {})
            if meta.get("digest") == digest:
                records.append({"notebook": src.name, "status": "up to date", "seconds": meta.get("seconds")})
                print(f"[book] {src.name}: up to date", flush=True)
                continue
        tmp = out_dir / f".tmp-{src.name}"
        t = time.perf_counter()
        print(f"[book] running {src.name} ({profile})", flush=True)
        try:
            pm.execute_notebook(str(src), str(tmp), parameters=params, kernel_name="python3", cwd=str(repo),
                                progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as e:
            failed_dir.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, failed_dir / src.name)
            raise NotebookError(f"{src.name}: cell {e.cell_index} failed with {e.ename}: {e.evalue} "
                                f"(executed copy in {failed_dir / src.name})") from None
        seconds = time.perf_counter() - t
        nb = nbformat.read(tmp, as_version=4)
        for cell in nb.cells:  # papermill's cell of injected parameters: collapsed in the HTML like the parameters
            tags = cell.metadata.get("tags", [])
            if "injected-parameters" in tags and "hide-input" not in tags:
                cell.metadata["tags"] = [*tags, "hide-input"]
        nb.metadata["mammossl"] = {"digest": digest, "seconds": round(seconds, 1), "params": params}
        nbformat.write(nb, tmp)
        os.replace(tmp, dst)
        records.append({"notebook": src.name, "status": "executed", "seconds": round(seconds, 1)})
        print(f"[book] {src.name}: {seconds:.0f} s", flush=True)
    (out_dir / "timings.json").write_text(json.dumps(records, indent=2))
    write_claims_page(Path(params["out_dir"]), out_dir / "claims.md", profile,
                      dataset_label(params.get("data_dir"), params.get("dataset", "CBIS-DDSM")))
    return records


def write_claims_page(results_dir: Path, page: Path, profile: str, dataset: str) -> Path:
    """The book's page of every chapter's claim checks, recomputed from the saved predictions
    (:func:`mammossl_core.claims.table`)."""
    prof = resolve(profile)
    df = claims.table(claims.load(results_dir), prof.eval.bootstrap)
    page.write_text(claims.markdown_page(df, profile, dataset))
    return page


def build(book_dir: Path | None = None) -> Path:
    """``jupyter-book build`` (warnings are errors, notebooks are not executed again); returns the HTML folder."""
    from .viz import pipeline_figure

    book_dir = book_dir or _repo() / "book"
    pipeline_figure(book_dir / "pipeline.png")
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(book_dir), "-W", "-n", "--keep-going"]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb), "build", str(book_dir), "-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    return book_dir / "_build" / "html"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="mammossl book", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["run", "build", "all"])
    ap.add_argument("--profile", default="tiny", choices=["tiny", "paper"])
    ap.add_argument("--data-dir", default=None, help="a prepared CBIS-DDSM dataset (default: synthetic)")
    ap.add_argument("--cmmd-dir", default=None, help="a prepared CMMD dataset (default: synthetic)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--only", nargs="*", default=None, help="notebook number prefixes, e.g. 00 04")
    ap.add_argument("--force", action="store_true", help="re-execute notebooks even if up to date")
    a = ap.parse_args(argv)
    params = {k: v for k, v in (("data_dir", a.data_dir), ("cmmd_dir", a.cmmd_dir), ("device", a.device)) if v}
    try:
        if a.action in ("run", "all"):
            run_notebooks(a.profile, params, a.only, a.force)
        if a.action in ("build", "all"):
            print(f"[book] HTML in {build()}")
    except NotebookError as e:
        print(f"mammossl book: error: {e}", file=sys.stderr)
        return 1
    return 0
