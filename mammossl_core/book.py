"""Run the chapter notebooks with papermill for a profile, then build the Jupyter Book.

``mammossl book run --profile tiny`` executes ``notebooks/*.ipynb`` in order into ``book/chapters/`` (where the
book reads them). A notebook that fails stops the run with a non-zero exit naming the notebook and the cell; its
partly executed copy goes to ``book/_failed/``, never into the book. Executed copies whose source, parameters and
package source have not changed are kept, and shared artefacts (datasets, pretrained encoders, evaluations) come
from the cache (:mod:`mammossl_core.artefacts`), so a re-run after a failure continues where it stopped.

The chapters of one run share one Python kernel (:class:`SharedKernel`): each starts from an empty namespace, and
none pays again for the imports of torch, torchvision and lightly or for a kernel's start.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import confirmatory, source_digest
from .chapter import dataset_label
from .config import DEFAULT_PROFILE, PROFILES, resolve
from .pages import replicate_results, write_claims_page, write_preregistration_page, write_seeds_page


def _repo() -> Path:
    return Path(os.environ.get("MAMMOSSL_REPO", Path(__file__).resolve().parents[1]))


def _digest(src: Path, params: dict) -> str:
    """What an executed chapter depends on besides the cache: its cells without their outputs (the reference outputs
    that :func:`record_nbval` writes into the source change nothing), its parameters and the package source (which
    also keys the artefact cache), so an upgraded package executes the chapters again."""
    cells = [(c["cell_type"], c["source"], c.get("metadata", {}).get("tags", []))
             for c in json.loads(src.read_text())["cells"]]
    return hashlib.sha1(json.dumps([cells, params, source_digest()], sort_keys=True).encode()).hexdigest()


def _current(meta: dict, src: Path) -> bool:
    """Whether an executed chapter, by its ``mammossl`` metadata, was executed from ``src`` and the package source as
    they are now (its recorded digest is the one they give today)."""
    return src.is_file() and "params" in meta and meta.get("digest") == _digest(src, meta["params"])


#: the tag of the cells whose outputs nbval compares (``pytest --nbval-lax``): outputs that do not depend on the
#: machine (set-up line, counts, leak checks, table structure, the claims and their columns)
NBVAL_TAG = "nbval-check-output"


def record_nbval(chapters_dir: Path | None = None, notebooks_dir: Path | None = None) -> list[str]:
    """Copy the outputs of the cells tagged :data:`NBVAL_TAG` from the executed book (``book/chapters``) into the
    chapter notebooks as nbval's reference outputs; every other cell of the source keeps no output. nbval executes
    the notebooks with their default parameters, so a chapter whose executed copy is missing, was executed from
    another text of the chapter or another package source (its digest), or with other parameters than the defaults
    (another profile, a data folder, seed or replicate) stops the recording with its name, before anything is
    written (``ValueError``). Returns the notebooks written."""
    import nbformat

    repo = _repo()
    chapters_dir = chapters_dir or repo / "book" / "chapters"
    notebooks_dir = notebooks_dir or repo / "notebooks"
    todo = []
    for src in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        done = chapters_dir / src.name
        if not done.is_file():
            raise ValueError(f"{done}: no executed copy of {src.name}; run `make book` first")
        nb, ex = nbformat.read(src, as_version=4), nbformat.read(done, as_version=4)
        meta = ex.metadata.get("mammossl", {})
        if not _current(meta, src):
            raise ValueError(f"{done} was executed from another text of {src.name} or another package source; run "
                             "`make book` again")
        params = meta["params"]
        other = {k: v for k, v in params.items() if k not in ("profile", "out_dir")}
        if params.get("profile") != DEFAULT_PROFILE or other:
            raise ValueError(f"{done} was executed with {params}, but nbval executes the notebooks' defaults (profile "
                             f"{DEFAULT_PROFILE!r}, synthetic data): record from `make book`")
        executed = {c.get("id"): c for c in ex.cells}
        for c in nb.cells:
            if c.cell_type != "code":
                continue
            tagged = NBVAL_TAG in c.metadata.get("tags", [])
            e = executed.get(c.get("id"))
            if tagged and e is None:
                raise ValueError(f"{done}: cell {c.get('id')} of {src.name} is not in the executed copy")
            c.outputs = e.outputs if tagged else []
            c.execution_count = e.execution_count if tagged else None  # nbval skips a "never run" cell's outputs
        todo.append((src, nb))
    for src, nb in todo:
        tmp = src.with_name(f".tmp-{src.name}")
        nbformat.write(nb, tmp)
        os.replace(tmp, src)
    return [src.name for src, _ in todo]


def up_to_date(executed_dir: Path, notebooks_dir: Path | None = None) -> bool:
    """Whether every chapter executed into ``executed_dir`` (a replicate's or a seed's folder) was executed from the
    chapter notebooks and package source as they are now (its recorded digest is the one they give today)."""
    import nbformat

    src_dir = notebooks_dir or _repo() / "notebooks"
    done = sorted(Path(executed_dir).glob("[0-9][0-9]_*.ipynb"))
    return bool(done) and all(_current(nbformat.read(nb, as_version=4).metadata.get("mammossl", {}), src_dir / nb.name)
                              for nb in done)


class NotebookError(RuntimeError):
    """A chapter notebook failed; the message names the notebook and the failing cell."""


def for_the_book(nb):
    """An executed notebook as the book shows it: papermill's cell of injected parameters collapsed like the
    parameters; every output stays (the runner's kernel has tqdm's own switch off, ``TQDM_DISABLE``, so no progress
    bar is drawn)."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
    return nb


#: run in the shared kernel before each chapter: an empty namespace, no figure left open, and torch's
#: deterministic-algorithms switch back at a fresh interpreter's default (pretraining turns it on)
_RESET = """%reset -f
import sys as _sys
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
if "torch" in _sys.modules:
    _sys.modules["torch"].use_deterministic_algorithms(False)
del _sys
"""


class SharedKernel:
    """One Python kernel for the chapters of a run. :meth:`fresh` hands papermill the kernel with its namespace
    cleared (IPython's ``%reset -f``): a chapter sees none of the previous chapter's variables, only the modules
    already imported, so the ~5 s of imports (torch, torchvision and lightly) and the ~1 s kernel start that every
    chapter paid are paid once (``python benchmarks/cpu.py kernel``). Chapters seed every random draw
    themselves (the package's protocols take a ``seed``), so their numbers do not depend on what ran before them
    in the kernel (a whole book executed both ways writes byte-identical predictions). A
    chapter that kills the kernel ends the run (:class:`NotebookError`); a kernel found dead, or whose reset fails,
    is replaced by a new one."""

    def __init__(self, cwd: Path):
        # the asynchronous manager, as nbclient creates for itself: nbclient polls it from its event loop to notice a
        # kernel that died (the blocking manager hangs there)
        from jupyter_client.manager import AsyncKernelManager

        self.cwd = cwd
        self.km = AsyncKernelManager(kernel_name="python3")

    def fresh(self):
        """The kernel manager of a running kernel with an empty namespace."""
        return _sync(self._fresh())

    async def _fresh(self):
        if self.km.has_kernel and await self.km.is_alive():
            kc = self.km.client()
            kc.start_channels()
            try:
                await kc.wait_for_ready(timeout=60)
                reply = await kc.execute_interactive(_RESET, timeout=60, output_hook=lambda msg: None)
            finally:
                kc.stop_channels()
            if reply["content"]["status"] == "ok":
                return self.km
            await self.km.shutdown_kernel(now=True)
        elif self.km.has_kernel:
            await self.km.cleanup_resources()
        # tqdm reads its switch when it is imported: set in the kernel's environment before anything runs
        await self.km.start_kernel(cwd=str(self.cwd), env={**os.environ, "TQDM_DISABLE": "1"})
        return self.km

    def close(self) -> None:
        if self.km.has_kernel:
            _sync(self.km.shutdown_kernel(now=True))


def _sync(coroutine):
    """Run ``coroutine`` to its end the way nbclient runs its own (jupyter_core's event loop)."""
    from jupyter_core.utils import run_sync

    async def run():
        return await coroutine

    return run_sync(run)()


def run_notebooks(profile: str = "tiny", params: dict | None = None, only: list[str] | None = None,
                  force: bool = False, notebooks_dir: Path | None = None, out_dir: Path | None = None) -> list[dict]:
    """Execute the notebooks in order into ``out_dir`` (default ``book/chapters``), their results under
    ``out_dir/results``; returns one record per notebook (name, status, seconds). Writes the claim-check page, and
    for the book's own folder also the page of findings across dataset seeds."""
    repo = _repo()
    src_dir = notebooks_dir or repo / "notebooks"
    out_dir = out_dir or repo / "book" / "chapters"
    failed_dir = repo / "book" / "_failed"
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "out_dir": str(out_dir / "results"), **(params or {})}
    kernel = SharedKernel(repo)
    try:
        records = _run(src_dir, out_dir, failed_dir, params, profile, only, force, kernel)
    finally:
        kernel.close()
    _write_timings(out_dir / "timings.json", records)
    label = dataset_label(params.get("data_dir"), params.get("dataset", "CBIS-DDSM"))
    book = out_dir == repo / "book" / "chapters"
    write_claims_page(Path(params["out_dir"]), out_dir / "claims.md", profile, label, params.get("seed", 0),
                      replicate_results(out_dir, up_to_date) if book else [],
                      confirmatory.load() if book else None)
    if book:
        write_seeds_page(out_dir, profile, label)
        write_preregistration_page(out_dir / "preregistration.md")
    return records


def _run(src_dir: Path, out_dir: Path, failed_dir: Path, params: dict, profile: str, only, force: bool,
         kernel: SharedKernel) -> list[dict]:
    import nbformat
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    repo = _repo()
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
            # the chapter's name is its file's stem, whatever its parameters cell says
            pm.execute_notebook(str(src), str(tmp), parameters={**params, "chapter": src.stem}, kernel_name="python3",
                                cwd=str(repo),
                                progress_bar=False, log_output=False, km=kernel.fresh())
        except pm.PapermillExecutionError as e:
            failed_dir.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, failed_dir / src.name)
            raise NotebookError(f"{src.name}: cell {e.cell_index} failed with {e.ename}: {e.evalue} "
                                f"(executed copy in {failed_dir / src.name})") from None
        except DeadKernelError:  # a crash (out of memory, a segfault): the partly executed copy says where
            failed_dir.mkdir(parents=True, exist_ok=True)
            if tmp.is_file():
                os.replace(tmp, failed_dir / src.name)
            raise NotebookError(f"{src.name}: the kernel died while the chapter ran (out of memory or a crash; "
                                f"executed copy in {failed_dir / src.name})") from None
        seconds = time.perf_counter() - t
        nb = for_the_book(nbformat.read(tmp, as_version=4))
        nb.metadata["mammossl"] = {"digest": digest, "seconds": round(seconds, 1), "params": params}
        nbformat.write(nb, tmp)
        os.replace(tmp, dst)
        records.append({"notebook": src.name, "status": "executed", "seconds": round(seconds, 1)})
        print(f"[book] {src.name}: {seconds:.0f} s", flush=True)
    return records


def _write_timings(path: Path, records: list[dict]) -> None:
    """One record per notebook: this run's, and for notebooks this run left out (``--only``) the earlier ones."""
    kept = {}
    if path.is_file():
        try:
            kept = {r["notebook"]: r for r in json.loads(path.read_text())}
        except (ValueError, KeyError, TypeError):
            kept = {}  # unreadable: this run's records only
    kept.update({r["notebook"]: r for r in records})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([kept[k] for k in sorted(kept)], indent=2))
    os.replace(tmp, path)


def run_seeds(profile: str = "tiny", params: dict | None = None, seeds: list[int] | None = None,
              force: bool = False) -> list[dict]:
    """Re-execute the chapters of ``BookConfig.seed_chapters`` at other dataset seeds (``BookConfig.other_seeds``):
    each seed's notebooks and results go to ``book/chapters/seeds/seed_<N>/`` (outside the book's table of
    contents); then the page of findings across seeds is rewritten."""
    prof = resolve(profile)
    chapters = _repo() / "book" / "chapters"
    records = []
    for s in seeds if seeds is not None else prof.book.other_seeds:
        print(f"[book] dataset seed {s}: chapters {', '.join(prof.book.seed_chapters)}", flush=True)
        records += run_notebooks(profile, {**(params or {}), "seed": s}, list(prof.book.seed_chapters), force,
                                 out_dir=chapters / "seeds" / f"seed_{s}")
    write_seeds_page(chapters, profile, dataset_label((params or {}).get("data_dir"), "CBIS-DDSM"))
    return records


def run_replicates(profile: str = "tiny", params: dict | None = None, replicates: list[int] | None = None,
                   force: bool = False) -> list[dict]:
    """Re-execute the chapters that test a claim as training replicates (:mod:`mammossl_core.preregistration`:
    replicates 1 .. ``replicates - 1`` of the plan by default): the same dataset, training seed ``seed + 1000 r``;
    each replicate's notebooks and results go to ``book/chapters/replicates/rep_<r>/``, and the claims page is
    rewritten with every replicate pooled."""
    from .preregistration import plan

    chapters = _repo() / "book" / "chapters"
    only = sorted({r.chapter[:2] for r in plan().claims})
    records = []
    for r in replicates if replicates is not None else range(1, plan().replicates):
        print(f"[book] training replicate {r}: chapters {', '.join(only)}", flush=True)
        records += run_notebooks(profile, {**(params or {}), "replicate": r}, only, force,
                                 out_dir=chapters / "replicates" / f"rep_{r}")
    params = {"profile": profile, **(params or {})}
    label = dataset_label(params.get("data_dir"), params.get("dataset", "CBIS-DDSM"))
    write_claims_page(chapters / "results", chapters / "claims.md", profile, label, params.get("seed", 0),
                      replicate_results(chapters, up_to_date), confirmatory.load())
    return records


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
    ap.add_argument("action", choices=["run", "build", "all", "seeds", "replicates", "confirm", "confirm-check",
                                       "nbval-record"],
                    help="run: execute the notebooks; build: the HTML; all: both; seeds: the seed chapters at other "
                         "dataset seeds; replicates: the claim chapters as training replicates (then `build` again); "
                         "confirm: the pre-registered confirmatory run into book/confirmatory/ (resumable; commit it, "
                         "then `all`); confirm-check: re-execute its replicate 0 of the primary claim and compare; "
                         "nbval-record: the executed book's outputs of the cells tagged nbval-check-output become "
                         "the notebooks' reference outputs for `pytest --nbval-lax`")
    ap.add_argument("--seeds", nargs="*", type=int, default=None, help="dataset seeds for `seeds` (default: the "
                    "profile's BookConfig.other_seeds)")
    ap.add_argument("--replicates", nargs="*", type=int, default=None, help="training replicates for `replicates` "
                    "(default: 1 .. the pre-registered count - 1) or `confirm` (default: 0 .. count - 1)")
    ap.add_argument("--profile", default="tiny", choices=sorted(PROFILES))
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
        if a.action == "seeds":
            run_seeds(a.profile, params, a.seeds, a.force)
        if a.action == "replicates":
            run_replicates(a.profile, params, a.replicates, a.force)
        if a.action == "confirm":
            print(f"[confirm] {confirmatory.run(a.replicates, a.force, params).describe()}")
        if a.action == "confirm-check":
            confirmatory.check()
        if a.action in ("build", "all"):
            print(f"[book] HTML in {build()}")
        if a.action == "nbval-record":
            print(f"[book] nbval reference outputs recorded in {', '.join(record_nbval())}")
    except (NotebookError, ValueError) as e:
        print(f"mammossl book: error: {e}", file=sys.stderr)
        return 1
    return 0
