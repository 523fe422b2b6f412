"""CPU benchmarks that measure two ways of doing the same job side by side in one run and print the ratio.

``python benchmarks/cpu.py [tiles|augment|trainer|whole-image|predict|synth|bootstrap|kernel|all] [--data DIR]``
(``make bench``). ``tests/test_benchmarks.py`` runs each at its smallest size, so that a change cannot break one
silently.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout


def _timeit(fn, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _ensure_data(data: str | None, workdir: Path) -> Path:
    from mammossl_core.data.synthetic import synthesize

    if data:
        return Path(data)
    d = workdir / "synth"
    if not (d / "dataset.json").is_file():
        synthesize(d, patients=40, seed=0, profile="tiny", progress=False, unlabeled_patients=0)
    return d


def bench_tiles(data: str | None, workdir: Path, n: int = 2000) -> dict:
    """Patches per second from the memory-mapped tile store vs one 16-bit PNG file per patch; bytes on disk."""
    from mammossl_core.config import get_profile
    from mammossl_core.data.layout import read_png16, write_png16
    from mammossl_core.data.tiles import TileDataset, ImageStore

    d = _ensure_data(data, workdir)
    store, _ = ImageStore.build(d, progress=False)
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
    store_bytes = (store.dir / "images.u16").stat().st_size + (store.dir / "masks.u8").stat().st_size
    png_bytes = sum((d / p).stat().st_size for p in __import__("pandas").read_csv(d / "images.csv").path)
    res = {"patches": len(order), "store_patches_per_s": len(order) / t_store, "png_patches_per_s": len(order) / t_png,
           "speedup": t_png / t_store, "store_bytes": store_bytes, "png_bytes": png_bytes,
           "store_over_png_bytes": store_bytes / png_bytes}
    print(f"[tiles] {len(order)} random {patch}px patches: store {res['store_patches_per_s']:.0f}/s, "
          f"one PNG per patch {res['png_patches_per_s']:.0f}/s -> store is {res['speedup']:.1f}x faster (target >= 10x)")
    print(f"[tiles] bytes on disk: store (images + masks) {store_bytes / 1e6:.1f} MB vs whole-image PNGs "
          f"{png_bytes / 1e6:.1f} MB -> ratio {res['store_over_png_bytes']:.2f}")
    return res


def _per_sample_pipeline(names: list[str], size: int):
    """The same transforms applied one sample at a time with torchvision (how most SSL libraries do it)."""
    import torch
    import torchvision.transforms.v2 as T
    import torchvision.transforms.v2.functional as TF

    rrc = T.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True)

    def one(x):  # x: (1, H, W) float in [0, 1]
        for n in names:
            if n == "crop":
                x = rrc(x)
            elif n == "brightness":
                x = (x + (torch.rand(()) * 0.4 - 0.2)).clamp(0, 1)
            elif n == "contrast":
                x = TF.adjust_contrast(x, float(torch.empty(()).uniform_(0.6, 1.4)))
            elif n == "gamma":
                x = TF.adjust_gamma(x, float(torch.empty(()).uniform_(0.5, 2.0)))
            elif n == "blur":
                x = TF.gaussian_blur(x, [7, 7], [float(torch.empty(()).uniform_(0.1, 2.0))] * 2)
            elif n == "equalize":  # torchvision equalises 8-bit data only
                x = TF.equalize((x * 255).to(torch.uint8)).float() / 255
            elif n == "sharpen":
                x = TF.adjust_sharpness(x, float(torch.empty(()).uniform_(0.5, 2.0)))
            elif n == "highpass":
                x = (0.5 + x - TF.gaussian_blur(x, [25, 25], [4.0, 4.0])).clamp(0, 1)
        return x.expand(3, -1, -1)

    return lambda batch: torch.stack([one(x) for x in batch])


def bench_augment(data: str | None, workdir: Path, batch: int = 256, size: int = 96) -> dict:
    """Batched on-device augmentation vs a per-sample torchvision pipeline of the same transforms (CPU)."""
    import torch

    from mammossl_core.augment import TRANSFORMS, MammoAugment

    torch.manual_seed(0)
    x = torch.rand(batch, 1, size, size)
    res = {}
    for pipeline in ("crop+gamma+contrast", "+".join(TRANSFORMS)):
        aug = MammoAugment(pipeline, size=size)
        g = torch.Generator().manual_seed(0)
        per = _per_sample_pipeline(pipeline.split("+"), size)
        t_batched = _timeit(lambda: aug(x, g))
        t_per = _timeit(lambda: per(x))
        res[pipeline] = t_per / t_batched
        print(f"[augment] {pipeline}: batch of {batch} at {size}px: batched {batch / t_batched:.0f} img/s, "
              f"per-sample torchvision {batch / t_per:.0f} img/s -> {t_per / t_batched:.1f}x (target >= 5x)")
    return res


def bench_trainer(data: str | None, workdir: Path, steps: int = 20, batch: int = 64, repeats: int = 3,
                  compiled: bool = True) -> dict:
    """Trainer step time vs a bare loop with lightly's modules and LARS, the same data and batch (BYOL, tiny, CPU),
    and the trainer with ``torch.compile`` vs eager; the sides interleaved, ``repeats`` times, median and range."""
    import torch
    from lightly.utils.lars import LARS

    from mammossl_core.augment import MammoAugment
    from mammossl_core.config import get_profile
    from mammossl_core.data.layout import PreparedDataset
    from mammossl_core.data.tiles import TileDataset, ImageStore
    from mammossl_core.pretrain import pretrain
    from mammossl_core.ssl import build_method

    d = _ensure_data(data, workdir)
    ImageStore.build(d, progress=False)
    prof = get_profile("tiny")
    warm = 5
    ids = list(PreparedDataset(d).split("train").image_id)
    ds = TileDataset(ImageStore(d), prof.data.tile_size, image_ids=ids)

    def bare() -> float:
        torch.manual_seed(0)
        model = build_method("byol", prof.pretrain)
        groups = model.build_optimizer(batch)[0].param_groups  # the same parameter groups
        opt = LARS([{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups],
                   lr=0.1, momentum=prof.pretrain.momentum)
        aug = MammoAugment(prof.pretrain.augment, size=prof.data.tile_size)
        g = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(ds)).numpy()
        times = []
        for k in range(steps + warm):
            t = time.perf_counter()
            x = ds[perm[k * batch:(k + 1) * batch]]
            loss = model([aug(x, g), aug(x, g)], k)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.after_step(k, 3400)
            times.append(time.perf_counter() - t)
        return sum(times[warm:]) / steps

    def trainer(mode: str) -> tuple[float, float]:
        stamps: list[float] = []
        s = pretrain("byol", d, workdir / f"bench_run_{mode}", "tiny", progress=False, batch_size=batch,
                     max_steps=steps + warm, checkpoint_every=10**9, epochs=100, compile=mode,
                     on_step=lambda s: stamps.append(time.perf_counter()))
        return (stamps[-1] - stamps[warm - 1]) / steps, s["first_step_s"]

    rows = []
    for _ in range(repeats):
        b = bare()
        e, _first = trainer("off")
        c, first = trainer("default") if compiled else (float("nan"), float("nan"))
        rows.append((b, e, c, first))
    r = np.asarray(rows)

    def stat(v):
        return f"{np.median(v):.3f} [{v.min():.3f}, {v.max():.3f}]"

    print(f"[trainer] BYOL tiny, batch {batch}, {steps} steps x {repeats} interleaved repeats (median [range]): "
          f"bare loop {np.median(r[:, 0]) * 1e3:.1f} ms/step, trainer {np.median(r[:, 1]) * 1e3:.1f} ms/step -> "
          f"ratio {stat(r[:, 1] / r[:, 0])} (target <= 1.10)")
    if compiled:
        print(f"[trainer] torch.compile on this CPU: {np.median(r[:, 2]) * 1e3:.1f} ms/step steady state, "
              f"compiled/eager {stat(r[:, 2] / r[:, 1])}; first step {stat(r[:, 3])} s")
    return {"trainer_s": float(np.median(r[:, 1])), "bare_s": float(np.median(r[:, 0])),
            "ratio": float(np.median(r[:, 1] / r[:, 0])), "compiled_s": float(np.median(r[:, 2])),
            "compile_first_step_s": float(np.median(r[:, 3]))}


def bench_whole_image(data: str | None, workdir: Path, encoder: str = "resnet50", patch: int = 96) -> dict:
    """One fully-convolutional pass over a paper-size image vs encoding its 50%-overlap tiles in batches."""
    import torch

    from mammossl_core.data.synthetic import SynthParams, render_image
    from mammossl_core.data.tiles import tile_grid
    from mammossl_core.encoders import build_trunk

    torch.manual_seed(0)
    params = SynthParams.of("paper")
    h, w = params.height, params.width
    img, _, _ = render_image(params, "CC", "b", [], np.random.default_rng(0))
    x = torch.from_numpy(img.astype(np.float32) / 65535).view(1, 1, h, w).expand(1, 3, -1, -1).contiguous()
    trunk, _ = build_trunk(encoder)
    trunk.eval()
    rows, cols = tile_grid(h, w, patch, 0.5)
    tiles = torch.stack([x[0, :, r:r + patch, c:c + patch] for r in rows for c in cols])

    @torch.no_grad()
    def whole():
        trunk(x)

    @torch.no_grad()
    def tiled(batch=64):
        for s in range(0, len(tiles), batch):
            trunk(tiles[s:s + batch]).mean((2, 3))

    t_whole, t_tiles = _timeit(whole, repeat=3), _timeit(tiled, repeat=3)
    print(f"[whole-image] {encoder}, {h}x{w} image: one fully-convolutional pass {t_whole:.2f} s, "
          f"{len(tiles)} tiles of {patch}px (50% overlap) in batches of 64 {t_tiles:.2f} s -> "
          f"{t_tiles / t_whole:.1f}x (target >= 3x)")
    return {"whole_s": t_whole, "tiles_s": t_tiles, "ratio": t_tiles / t_whole}


def bench_predict(data: str | None, workdir: Path, sizes: tuple[str, ...] = ("tiny", "paper"), repeats: int = 3
                  ) -> dict:
    """``mammossl predict`` (read, orient, resize, breast mask, score, MIP overlays, CSVs and HTML) vs the bare
    classifier forward on the same preprocessed batch, images/s on this CPU, at the tiny and the paper sizes (a
    random-encoder MIP classifier trained one epoch on 10 synthetic patients; ResNet-50 at the paper size)."""
    import torch

    from mammossl_core.data.synthetic import synthesize
    from mammossl_core.evaldata import load_eval_data
    from mammossl_core.evaluate import linear_eval
    from mammossl_core.loading import classifier
    from mammossl_core.predict import predict
    from mammossl_core.results import Evaluation

    out = {}
    for profile in sizes:
        d = workdir / f"predict_{profile}"
        if not (d / "dataset.json").is_file():
            synthesize(d, patients=10, seed=0, profile=profile, progress=False, unlabeled_patients=0)
        from mammossl_core.config import resolve
        from mammossl_core.data.products import build_products

        build_products(d, resolve(profile), progress=False)
        model_dir = workdir / f"predict_model_{profile}"
        if not Evaluation.exists(model_dir):
            linear_eval(d, None, "mip", profile, out=model_dir, linear_epochs=1)
        model = classifier(model_dir)
        ev = load_eval_data(d)
        rows = np.arange(min(8, len(ev.table)))
        x, breast = ev.images(rows, "cpu")
        n = len(rows)
        sub = workdir / f"predict_in_{profile}"
        sub.mkdir(exist_ok=True)
        for iid in ev.table.image_id.iloc[rows]:
            src = d / "images" / f"{iid}.png"
            (sub / src.name).write_bytes(src.read_bytes())
        t_pred, t_bare = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            predict(model_dir, sub, workdir / f"predict_out_{profile}", batch_size=n, progress=False)
            t_pred.append(time.perf_counter() - t)
            t = time.perf_counter()
            with torch.no_grad():
                model(x, breast)
            t_bare.append(time.perf_counter() - t)
        p, b = np.asarray(t_pred), np.asarray(t_bare)
        print(f"[predict] {profile} size {tuple(x.shape[2:])}, {n} images, {repeats} interleaved repeats: predict "
              f"{n / np.median(p):.2f} img/s [{n / p.max():.2f}, {n / p.min():.2f}], bare classifier forward "
              f"{n / np.median(b):.2f} img/s -> predict/forward time {np.median(p / b):.2f}x")
        out[profile] = {"predict_img_s": n / float(np.median(p)), "forward_img_s": n / float(np.median(b))}
    return out


def bench_synth(data: str | None, workdir: Path, patients: dict | None = None, repeats: int = 3) -> dict:
    """The synthetic generator on one core: images/s rendered in memory at the tiny and the paper size (interleaved,
    median and range of ``repeats``), and the texture statistics of the paper-size images beside the real films'."""
    from mammossl_core.data.synthetic import SynthParams, generate_images
    from mammossl_core.data.texture import compare_with_real, synthetic_texture

    patients = patients or {"tiny": 20, "paper": 3}
    rates: dict[str, list[float]] = {p: [] for p in patients}
    for _ in range(repeats):
        for prof, n in patients.items():
            params, k, t = SynthParams.of(prof), 0, time.perf_counter()
            for i in range(n):
                k += sum(1 for _ in generate_images(i, 0, params))
            rates[prof].append(k / (time.perf_counter() - t))
    out = {}
    for prof, r in rates.items():
        out[prof] = float(np.median(r))
        print(f"[synth] {prof} size: {np.median(r):.2f} images/s per core [{min(r):.2f}, {max(r):.2f}]")
    table = compare_with_real({d: synthetic_texture(patients["paper"], 11, d) for d in ("ddsm", "cmmd")})
    print("[synth] texture at the paper size vs real films:\n" + table.to_string(index=False))
    return out


def bench_bootstrap(data: str | None, workdir: Path, patients: int = 100, n_boot: int = 500, repeats: int = 5
                    ) -> dict:
    """The patient bootstrap of an AUC interval: one scikit-learn ``roc_auc_score`` call per resample vs all resampled
    AUCs at once from image multiplicities (:func:`mammossl_core.metrics.auc_ci`), interleaved; a book-sized test set
    (``patients`` patients, four images each) and the tiny profile's ``n_boot``. Prints the largest difference of the
    two intervals' ends too."""
    from sklearn.metrics import roc_auc_score

    from mammossl_core.metrics import _resamples, _skip_checks, auc_ci

    rng = np.random.default_rng(0)
    pid = np.repeat(np.arange(patients), 4)
    y = np.repeat(rng.random(patients) < 0.4, 4).astype(int)
    s = np.round(y * 0.6 + rng.normal(0, 0.5, len(y)), 3)

    def per_resample():
        with _skip_checks():
            stats = [roc_auc_score(y[i], s[i]) for i in _resamples(y, pid, n_boot, 0)]
        return np.percentile(stats, [2.5, 97.5])

    times: dict[str, list[float]] = {"per resample": [], "at once": []}
    for _ in range(repeats):
        t = time.perf_counter()
        ref = per_resample()
        times["per resample"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ci = auc_ci(y, s, n_boot=n_boot, groups=pid)
        times["at once"].append(time.perf_counter() - t)
    for k, v in times.items():
        print(f"[bootstrap] {k}: {np.median(v) * 1000:.1f} ms [{min(v) * 1000:.1f}, {max(v) * 1000:.1f}]")
    ratio = np.array(times["per resample"]) / np.array(times["at once"])
    gap = float(max(abs(ref[0] - ci.low), abs(ref[1] - ci.high)))
    print(f"[bootstrap] speed-up {np.median(ratio):.0f}x [{ratio.min():.0f}, {ratio.max():.0f}]; "
          f"largest difference of the interval ends {gap:.1e}")
    return {"speedup": float(np.median(ratio)), "max_difference": gap}


def bench_kernel(data: str | None, workdir: Path, chapters: int = 4, repeats: int = 3) -> dict:
    """The book runner's chapters in one shared kernel (:class:`mammossl_core.book.SharedKernel`) vs a kernel of their
    own each (one ``run_notebooks`` call per chapter, as the runner did before), interleaved: ``chapters`` notebooks
    whose only work is a chapter's imports, so that what is measured is the set-up that every chapter pays."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from mammossl_core.book import run_notebooks

    src = workdir / "kernel-notebooks"
    src.mkdir(parents=True, exist_ok=True)
    imports = ("import numpy as np, pandas as pd, matplotlib.pyplot as plt, seaborn as sns\n"
               "from mammossl_core import artefacts, paper\nfrom mammossl_core.chapter import setup\n"
               "from mammossl_core.evaluate import finetune, linear_eval, supervised")
    names = []
    for i in range(chapters):
        nb = new_notebook(cells=[new_code_cell(imports), new_code_cell(f"x = {i}")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, src / f"{i:02d}_imports.ipynb")
        names.append(f"{i:02d}")
    times: dict[str, list[float]] = {"a kernel per chapter": [], "one shared kernel": []}
    for _ in range(repeats):
        t = time.perf_counter()
        for n in names:
            run_notebooks(notebooks_dir=src, out_dir=workdir / "kernel-out", only=[n], force=True)
        times["a kernel per chapter"].append((time.perf_counter() - t) / chapters)
        t = time.perf_counter()
        run_notebooks(notebooks_dir=src, out_dir=workdir / "kernel-out", force=True)
        times["one shared kernel"].append((time.perf_counter() - t) / chapters)
    for k, v in times.items():
        print(f"[kernel] {k}: {np.median(v):.2f} s per chapter [{min(v):.2f}, {max(v):.2f}]")
    own, shared = np.array(times["a kernel per chapter"]), np.array(times["one shared kernel"])
    saved, ratio = own - shared, own / shared
    print(f"[kernel] saved per chapter: {np.median(saved):.2f} s [{saved.min():.2f}, {saved.max():.2f}]; "
          f"ratio {np.median(ratio):.1f}x [{ratio.min():.1f}, {ratio.max():.1f}]")
    return {"saved_s": float(np.median(saved)), "ratio": float(np.median(ratio))}


BENCHES = {"tiles": bench_tiles, "augment": bench_augment, "trainer": bench_trainer, "whole-image": bench_whole_image,
           "predict": bench_predict, "synth": bench_synth, "bootstrap": bench_bootstrap, "kernel": bench_kernel}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/cpu.py", description=__doc__)
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
