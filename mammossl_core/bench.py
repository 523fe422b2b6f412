"""Benchmarks that measure two ways of doing the same job side by side in one run and print the ratio.

``python -m mammossl_core.bench [tiles|augment|trainer|whole-image|all] [--data DIR]``
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _timeit(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _ensure_data(data: str | None, workdir: Path) -> Path:
    from .data.synthetic import synthesize

    if data:
        return Path(data)
    d = workdir / "synth"
    if not (d / "dataset.json").is_file():
        synthesize(d, patients=40, seed=0, profile="tiny", progress=False)
    return d


def bench_tiles(data: str | None, workdir: Path, n: int = 2000) -> dict:
    """Patches per second from the memory-mapped tile store vs one 16-bit PNG file per patch; bytes on disk."""
    from .config import get_profile
    from .data.layout import read_png16, write_png16
    from .data.tiles import TileDataset, TileStore

    d = _ensure_data(data, workdir)
    store, _ = TileStore.build(d, progress=False)
    patch = get_profile("tiny").data.tile_size if not data else 96
    ds = TileDataset(store, patch)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(ds), size=min(n, len(ds)), replace=False)
    png_dir = workdir / f"png_patches_{patch}"
    png_dir.mkdir(exist_ok=True)
    files = []
    for j, i in enumerate(pick):
        f = png_dir / f"{j}.png"
        if not f.exists():
            t = ds.tiles[i]
            write_png16(f, np.ascontiguousarray(store.images[t["image"], t["row"]:t["row"] + patch, t["col"]:t["col"] + patch]))
        files.append(f)
    batch = 256
    order = pick.copy()

    def from_store():
        for s in range(0, len(order), batch):
            ds[order[s:s + batch]]

    def from_png():
        for f in files:
            read_png16(f, allow_blank=True).astype(np.float32)

    t_store, t_png = _timeit(from_store), _timeit(from_png)
    store_bytes = (store.dir / "store.u16").stat().st_size + (store.dir / "masks.u8").stat().st_size
    png_bytes = sum((d / p).stat().st_size for p in __import__("pandas").read_csv(d / "images.csv").path)
    res = {"patches": len(order), "store_patches_per_s": len(order) / t_store, "png_patches_per_s": len(order) / t_png,
           "speedup": t_png / t_store, "store_bytes": store_bytes, "png_bytes": png_bytes,
           "store_over_png_bytes": store_bytes / png_bytes}
    print(f"[tiles] {len(order)} random {patch}px patches: store {res['store_patches_per_s']:.0f}/s, "
          f"one PNG per patch {res['png_patches_per_s']:.0f}/s -> store is {res['speedup']:.1f}x faster (target >= 10x)")
    print(f"[tiles] bytes on disk: store (images + masks) {store_bytes / 1e6:.1f} MB vs whole-image PNGs "
          f"{png_bytes / 1e6:.1f} MB -> ratio {res['store_over_png_bytes']:.2f}")
    return res


BENCHES = {"tiles": bench_tiles}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mammossl_core.bench", description=__doc__)
    ap.add_argument("which", nargs="?", default="all", choices=["all", *BENCHES])
    ap.add_argument("--data", default=None, help="prepared dataset (default: a small synthetic one)")
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name, fn in BENCHES.items():
            if a.which in ("all", name):
                fn(a.data, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
