"""Atomic file writes shared by every step that writes results: a failure never leaves a half-written file.

>>> write_json("runs/x/result.json", {"auc": 0.71})  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """A table as CSV without the index, atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_json(path: str | os.PathLike, obj: dict) -> None:
    """A dict as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def cache_root() -> Path:
    """Where derived files that belong to no dataset go (artefacts, frozen-grid features): ``$MAMMOSSL_CACHE``, else
    ``.cache/`` of the project when the package runs from a checkout (whatever the working directory: a notebook
    opened in ``notebooks/`` finds what ``make book`` cached), else ``.cache/`` in the working directory."""
    if "MAMMOSSL_CACHE" in os.environ:
        return Path(os.environ["MAMMOSSL_CACHE"]).resolve()
    project = Path(__file__).resolve().parents[1]
    return (project if (project / "pyproject.toml").is_file() else Path.cwd()) / ".cache"
