"""Conversion of TCIA downloads at scale, shared by the CBIS-DDSM and CMMD converters: one job per whole image,
run in parallel processes with a progress bar, resumable (finished images are verified and skipped), never a
half-written PNG, and a final per-file report."""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .dicom import DicomError, is_binary_mask, needs_flip, read_dicom, resize16, resize_mask
from .layout import DataError, read_mask, read_png16, write_mask, write_png16
from ..io import write_csv


def _done(out: Path, job: dict) -> bool:
    """The image and all its masks exist and read back at the right size."""
    try:
        img = read_png16(out / "images" / f"{job['image_id']}.png")
        if img.shape != tuple(job["size"]):
            return False
        return all(read_mask(out / m["mask_path"]).shape == img.shape for m in job["lesions"])
    except DataError:
        return False


def convert_job(job: dict) -> list[dict]:
    """Convert one whole image and its lesion masks; returns report rows (one per file)."""
    out = Path(job["out"])
    iid = job["image_id"]
    if _done(out, job):
        return [{"image_id": iid, "file": "", "status": "skipped", "reason": "already converted and verified"}]
    rows = []
    full = None
    candidates = job["full"]
    if not candidates:
        return [{"image_id": iid, "file": job.get("expected", ""), "status": "failed",
                 "reason": "no DICOM file found for this image"}]
    for path in candidates:  # the largest non-mask image of the series is the mammogram
        try:
            d = read_dicom(path, **job.get("read", {}))
        except DicomError as e:
            rows.append({"image_id": iid, "file": str(path), "status": "failed", "reason": str(e)})
            continue
        if not is_binary_mask(d.pixels) and (full is None or d.pixels.size > full[1].pixels.size):
            full = (path, d)
    if full is None:
        return rows or [{"image_id": iid, "file": str(candidates[0]), "status": "failed", "reason": "no mammogram"}]
    path, d = full
    flip = needs_flip(d.pixels)
    img = d.pixels[:, ::-1] if flip else d.pixels
    write_png16(out / "images" / f"{iid}.png", resize16(np.ascontiguousarray(img), tuple(job["size"])))
    rows.append({"image_id": iid, "file": str(path), "status": "written", "reason": "flipped" if flip else "",
                 "laterality_dicom": d.laterality or "", "view_dicom": d.view or ""})
    for les in job["lesions"]:
        mask, why = None, "no ROI DICOM found"
        for p in les["roi"]:
            try:
                m = read_dicom(p, raw=True, check_modality=False).pixels
            except DicomError as e:
                why = str(e)
                continue
            if not is_binary_mask(m):  # the cropped image (its path may be swapped with the mask's in the CSV)
                continue
            note = ""
            if m.shape != d.pixels.shape:
                note = f"mask {m.shape} resized to image {d.pixels.shape}"
                m = resize_mask(m > 0, d.pixels.shape)
            mask = (m > 0, p, note)
            break
        if mask is None:
            rows.append({"image_id": iid, "lesion_id": les["lesion_id"], "file": ";".join(map(str, les["roi"])),
                         "status": "failed", "reason": why if les["roi"] else "no ROI DICOM found"})
            continue
        m, p, note = mask
        m = m[:, ::-1] if flip else m
        write_mask(out / les["mask_path"], resize_mask(np.ascontiguousarray(m), tuple(job["size"])))
        rows.append({"image_id": iid, "lesion_id": les["lesion_id"], "file": str(p), "status": "written", "reason": note})
    return rows


def run_jobs(jobs: list[dict], workers: int | None = None, desc: str = "convert") -> pd.DataFrame:
    """Run :func:`convert_job` over ``jobs`` in parallel; returns the report table."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    rows: list[dict] = []
    bar = tqdm(total=len(jobs), desc=desc, unit="image")
    if workers > 1:
        with mp.get_context("fork" if os.name != "nt" else "spawn").Pool(workers) as pool:
            for r in pool.imap_unordered(convert_job, jobs, chunksize=1):
                rows += r
                bar.update()
    else:
        for job in jobs:
            rows += convert_job(job)
            bar.update()
    bar.close()
    cols = ["image_id", "lesion_id", "file", "status", "reason", "laterality_dicom", "view_dicom"]
    return pd.DataFrame(rows, columns=cols).sort_values(["image_id", "lesion_id"], na_position="first")


def summarise(report: pd.DataFrame, out: Path) -> dict:
    """Write ``report.csv`` and return counts of written, skipped and failed files."""
    write_csv(out / "report.csv", report)
    counts = report.status.value_counts().to_dict()
    return {"written": int(counts.get("written", 0)), "skipped": int(counts.get("skipped", 0)),
            "failed": int(counts.get("failed", 0))}


def convert_all(jobs: list[dict], out: Path, workers: int | None, desc: str,
                failures: list[dict] | None = None) -> tuple[pd.DataFrame, dict, set[str]]:
    """Run the jobs (:func:`run_jobs`), add the files refused before conversion (``failures``), write
    ``report.csv``; returns the report, the counts (:func:`summarise`) and the ids of the images now on disk."""
    report = run_jobs(jobs, workers, desc=desc)
    if failures:
        report = pd.concat([report, pd.DataFrame(failures)], ignore_index=True)
    counts = summarise(report, Path(out))
    whole = report.lesion_id.isna() | (report.lesion_id == "")
    ok = set(report[whole & report.status.isin(["written", "skipped"])].image_id)
    return report, counts, ok


@dataclass(frozen=True)
class Converter:
    """A data source that ``mammossl prepare NAME`` converts: its own command-line options and the call that
    converts (returning the summary that is also written to ``dataset.json``)."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict]


def converters() -> dict[str, Converter]:
    """The registry of converters, by command name (a new source: its module with a ``CONVERTER``, one entry here)."""
    from . import cbis_ddsm, cmmd, folder

    return {c.name: c for c in (cbis_ddsm.CONVERTER, cmmd.CONVERTER, folder.CONVERTER)}
