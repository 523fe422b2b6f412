"""Prediction on a user's own mammograms: image in, probability out, with a picture of where the model looked.

``mammossl predict --model EVAL_DIR --input FILE|DIR|images.csv --out DIR`` runs any whole-image classifier saved
by an evaluation protocol (linear, finetuned, supervised; GAP, MIP or SA: :func:`~mammossl_core.loading.classifier`)
on DICOM files, 16-bit PNGs or the images of a prepared dataset, with the preprocessing of training: the DICOM
display pipeline (:func:`~mammossl_core.data.dicom.read_dicom`), the breast turned to the left, the image resized
to the size the model was trained at (16 bits throughout), the breast mask of the image store.

Writes into ``DIR``:

* ``predictions.csv``: one row per image (image_id, patient_id, laterality, view, score = P(malignant), file,
  flipped);
* ``breasts.csv``: one row per breast (patient and laterality): the mean of its views' scores;
* ``overlays/<image_id>.png`` for MIP and SA: the pooling attention over the image in its original orientation;
* ``index.html``: every image with its score and overlay, viewable offline;
* ``report.csv``: the files that could not be scored, each with the reason (the rest are scored; the command then
  exits with 1); ``run.json``: the model, its training profile and dataset, the input and the counts.
"""
from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import image_size, resolve
from .data.dicom import DicomError, needs_flip, read_dicom, resize16
from .data.folder import dicom_files
from .data.layout import DataError, PreparedDataset, read_png16
from .data.tiles import breast_mask
from .io import atomic_path, write_csv, write_json
from .loading import classifier
from .pooling import pooling_class
from .results import Evaluation
from .whole_image import grid_mask

#: how the views of one breast are combined into the breast's score
BREAST_RULE = ("mean of the scores of the breast's views; views are grouped by patient and laterality, the patient "
               "being the DICOM PatientID or, for CBIS-DDSM's per-image IDs (Mass-Test_P_00038_LEFT_CC), the patient "
               "part of the name (P_00038)")
#: CBIS-DDSM writes one PatientID per image: abnormality type, set, patient, side and view
_CBIS_DDSM_ID = re.compile(r"^(?:Calc|Mass)-(?:Training|Test)_(P_\d+)_(?:LEFT|RIGHT)_(?:CC|MLO)(?:_\d+)?$")


def breast_patient(patient_id: str) -> str:
    """The patient whose breast an image shows: CBIS-DDSM's per-image ID names it (``Mass-Test_P_00038_LEFT_CC`` ->
    ``P_00038``); any other ID is the patient.

    >>> breast_patient("Mass-Test_P_00038_LEFT_CC"), breast_patient("D1-0001")
    ('P_00038', 'D1-0001')
    """
    m = _CBIS_DDSM_ID.match(patient_id)
    return m.group(1) if m else patient_id


@dataclass
class Item:
    """One image to score, before preprocessing."""

    image_id: str
    file: str
    patient_id: str = ""
    laterality: str = ""
    view: str = ""


def _items(source: Path) -> tuple[list[Item], Path | None]:
    """The images named by ``source`` (a file, a folder or a dataset's ``images.csv``) and, for a dataset, its root."""
    if source.name == "images.csv" or (source.is_dir() and (source / "dataset.json").is_file()):
        ds = PreparedDataset(source.parent if source.name == "images.csv" else source)
        return [Item(r.image_id, str(ds.root / r.path), str(r.patient_id), str(r.laterality), str(r.view))
                for r in ds.images.itertuples()], ds.root
    if source.is_file():
        files = [source]
    elif source.is_dir():
        files = sorted(set(dicom_files(source)) | set(source.rglob("*.png")))
    else:
        raise DataError(f"{source}: no such file or folder")
    if not files:
        raise DataError(f"{source}: no DICOM (.dcm, .dicom, no extension) or PNG file to score")
    seen: dict[str, int] = {}
    items = []
    for f in files:
        stem = f.stem if f.suffix.lower() in (".png", ".dcm", ".dicom") else f.name
        base = stem if stem not in ("1-1", "1-2") else "_".join(f.relative_to(source).parts[:-1] or [stem])
        k = seen.get(base, 0)
        seen[base] = k + 1
        items.append(Item(base if k == 0 else f"{base}_{k}", str(f)))
    return items, None


def _load(item: Item, raw: bool) -> np.ndarray:
    """The item's 16-bit image (DICOM through the display pipeline); fills in patient, laterality and view."""
    path = Path(item.file)
    if path.suffix.lower() == ".png":
        try:
            return read_png16(path)
        except DataError as e:
            raise DataError(f"{e}; give 16-bit PNGs or the original DICOM files (an 8-bit PNG has lost the "
                            f"mammogram's dynamic range)") from None
    d = read_dicom(path, raw=raw)
    item.laterality = item.laterality or (d.laterality or "")
    item.view = item.view or (d.view or "")
    item.patient_id = item.patient_id or breast_patient(d.patient_id)
    return d.pixels


def model_image_size(saved: Evaluation) -> tuple[int, int]:
    """The (height, width) the classifier was trained at: its dataset's image size where that dataset is at hand,
    else the size of its profile (film)."""
    meta = Path(saved.dataset) / "dataset.json"
    if saved.dataset and meta.is_file():
        size = json.loads(meta.read_text()).get("image_size")
        if size:
            return int(size[0]), int(size[1])
    return image_size(resolve(saved.profile or None), "ddsm")


def _overlay(path: Path, img: np.ndarray, att: np.ndarray, flipped: bool, title: str) -> None:
    """The image in its original orientation with the attention (cells upsampled to pixels) over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = F.interpolate(torch.from_numpy(att)[None, None].float(), size=img.shape, mode="nearest")[0, 0].numpy()
    if flipped:
        img, a = img[:, ::-1], a[:, ::-1]
    fig, ax = plt.subplots(figsize=(4.2, 5.4))
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    im = ax.imshow(a, cmap="inferno", alpha=0.45, vmin=0, vmax=max(float(att.max()), 1e-6))
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.04, label="attention")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _html(df: pd.DataFrame, breasts: pd.DataFrame, run: dict, overlays: bool) -> str:
    rows = []
    for r in df.itertuples():
        src = f"overlays/{html.escape(r.image_id)}.png"  # the thumbnail links to the full-size overlay
        pic = (f'<a href="{src}"><img src="{src}" alt="attention overlay of {html.escape(r.image_id)}" width="260"></a>'
               if overlays else "")
        rows.append(f"<tr><td>{html.escape(r.image_id)}</td><td>{html.escape(str(r.patient_id))}</td>"
                    f"<td>{html.escape(str(r.laterality))}</td><td>{html.escape(str(r.view))}</td>"
                    f"<td class='score'>{r.score:.3f}</td><td>{pic}</td></tr>")
    brows = "".join(f"<tr><td>{html.escape(str(b.patient_id))}</td><td>{html.escape(str(b.laterality))}</td>"
                    f"<td>{b.views}</td><td class='score'>{b.score:.3f}</td></tr>" for b in breasts.itertuples())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mammossl predictions</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} .score{{font-weight:bold}}</style></head>
<body><h1>Predictions</h1>
<p>Model: <code>{html.escape(run['model'])}</code> ({html.escape(run['protocol'])}, {html.escape(run['pooling'])}
pooling, trained at the <b>{html.escape(str(run['profile']))}</b> profile on <code>{html.escape(str(run['dataset']))}</code>).
Score: the model's probability of malignancy. {run['scored']} image(s) scored, {run['failed']} failed
(see report.csv).</p>
<h2>Breasts</h2><p>{html.escape(BREAST_RULE)}.</p>
<table><tr><th>patient</th><th>laterality</th><th>views</th><th>score</th></tr>{brows}</table>
<h2>Images</h2>
<table><tr><th>image</th><th>patient</th><th>laterality</th><th>view</th><th>score</th><th>attention</th></tr>
{''.join(rows)}</table></body></html>
"""


@torch.no_grad()
def predict(model_dir: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike, device: str = "cpu",
            batch_size: int = 8, raw: bool = False, progress: bool = True) -> dict:
    """Score the images of ``source`` with the classifier in ``model_dir``; see the module docstring."""
    model_dir, source, out = Path(model_dir), Path(source), Path(out)
    if not Evaluation.exists(model_dir) or Evaluation.load(model_dir).pooling is None:
        raise DataError(f"{model_dir}: not a trained classifier of whole images; give the --out folder of "
                        "`mammossl evaluate linear|finetune|supervised`, not a pretraining run")
    saved = Evaluation.load(model_dir)
    model = classifier(model_dir, device=device)
    size = model_image_size(saved)
    items, _ = _items(source)
    attends = pooling_class(saved.pooling).attends
    records, failures = [], []
    bar = tqdm(total=len(items), desc="predict", unit="image", disable=not progress)
    for s in range(0, len(items), batch_size):
        batch, imgs, flips = [], [], []
        for it in items[s:s + batch_size]:
            try:
                img = _load(it, raw)
            except (DataError, DicomError) as e:
                failures.append({"image_id": it.image_id, "file": it.file, "status": "failed", "reason": str(e)})
                continue
            flip = needs_flip(img)
            img = np.ascontiguousarray(img[:, ::-1] if flip else img)
            if img.shape != size:
                img = resize16(img, size)
            batch.append(it)
            imgs.append(img)
            flips.append(flip)
        bar.update(len(items[s:s + batch_size]))
        if not batch:
            continue
        x = torch.from_numpy(np.stack(imgs).astype(np.float32) / 65535.0).unsqueeze(1).to(device)
        breast = torch.from_numpy(np.stack([breast_mask(i) for i in imgs])).to(device)
        h = model.grid(x)
        logit, w = model.classify(h, grid_mask(breast, h.shape[2], h.shape[3]))
        scores = torch.sigmoid(logit).float().cpu().numpy()
        w = w.float().cpu().numpy()
        for k, it in enumerate(batch):
            records.append({"image_id": it.image_id, "patient_id": it.patient_id, "laterality": it.laterality,
                            "view": it.view, "score": float(scores[k]), "file": it.file, "flipped": bool(flips[k])})
            if attends:
                _overlay(out / "overlays" / f"{it.image_id}.png", imgs[k] / 65535.0, w[k], flips[k],
                         f"{it.image_id}  score {scores[k]:.3f}")
    bar.close()
    cols = ["image_id", "patient_id", "laterality", "view", "score", "file", "flipped"]
    df = pd.DataFrame(records, columns=cols)
    known = df[df.laterality.isin(["L", "R"]) & (df.patient_id != "")]
    breasts = (known.groupby(["patient_id", "laterality"])
               .agg(score=("score", "mean"), views=("image_id", "count")).reset_index())
    run = {"model": str(model_dir), "protocol": saved.protocol, "pooling": saved.pooling,
           "profile": saved.profile, "dataset": saved.dataset, "input": str(source),
           "image_size": list(size), "breast_rule": BREAST_RULE, "device": str(device), "raw_dicom": raw,
           "scored": int(len(df)), "failed": int(len(failures))}
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "predictions.csv", df)
    write_csv(out / "breasts.csv", breasts)
    write_csv(out / "report.csv", pd.DataFrame(failures, columns=["image_id", "file", "status", "reason"]))
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(_html(df, breasts, run, attends))
    write_json(out / "run.json", run)
    if df.empty:
        raise DataError(f"{source}: no image could be scored; see {out / 'report.csv'}")
    return run
