"""Linear evaluation on the annotated patch set (paper IV, Table 1 and Fig. 3): a frozen patch encoder's pooled
embeddings, standardised with training statistics, and a 5-class linear layer fitted with the same loop as the
whole-image protocols (:func:`mammossl_core.evaluate.fit`)."""
from __future__ import annotations


import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .config import Profile, resolve
from .data.layout import PreparedDataset
from .data.patches import CLASSES, AnnotatedPatches
from .evaluate import fit
from .results import Evaluation
from .loading import patch_encoder
from .metrics import accuracy


@torch.no_grad()
def patch_embeddings(data, checkpoint, patch: int, device="cpu", batch: int = 256):
    """Pooled embeddings (:func:`~mammossl_core.loading.patch_encoder`) of the annotated patch set:
    (``(N, m)`` array, patch table)."""
    net = patch_encoder(checkpoint, device)
    ap = AnnotatedPatches(data, patch)
    x, _ = ap.tensors()
    emb = torch.cat([net(x[s:s + batch].to(device).expand(-1, 3, -1, -1)).float().cpu()
                     for s in range(0, len(x), batch)])
    return emb.numpy(), ap.table


def patch_linear_eval(data, checkpoint, profile: str | Profile | None = None, out=None, seed: int = 0, device="cpu",
                      **overrides) -> Evaluation:
    """5-class accuracy of a linear layer on frozen embeddings (Adam lr 1e-3, weight decay 0.01); the epoch with
    the best validation accuracy is kept."""
    prof = resolve(profile, eval=overrides)
    e = prof.eval
    emb, table = patch_embeddings(data, checkpoint, prof.data.annotated_patch, device)
    split = table.split.to_numpy()
    x = torch.from_numpy(emb)
    x = (x - x[split == "train"].mean(0)) / (x[split == "train"].std(0) + 1e-6)
    y = torch.as_tensor(table.cls.to_numpy().copy())
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], len(CLASSES))
    tr, va, te = (np.nonzero(split == s)[0] for s in ("train", "val", "test"))

    @torch.no_grad()
    def validate() -> float:
        return accuracy(y[va], head(x[va]).argmax(1))

    history = fit(head, lambda rows, g: F.cross_entropy(head(x[rows]), y[rows]), validate, head.parameters(), tr,
                  e.patch_linear_lr, e.patch_linear_weight_decay, e.linear_epochs, e.batch_size, seed, "patches")
    with torch.no_grad():
        pred = head(x).argmax(1).numpy()
    result = Evaluation("patches", profile=prof.name, dataset=str(data), seed=seed, checkpoint=str(checkpoint),
                        accuracy=accuracy(y.numpy()[te], pred[te]), n_test=int(len(te)),
                        val_accuracy=max(h["val"] for h in history) if history else float("nan"))
    if out is not None:
        patients = PreparedDataset(data).images.set_index("image_id").patient_id
        # the predictions schema of every protocol: the true class as label, the predicted class as score
        pred_table = table.rename(columns={"cls": "label"}).assign(score=pred, patient_id=table.image_id.map(patients))
        result.save(out, pred_table, pd.DataFrame([{"epoch": h["epoch"], "val_accuracy": h["val"]} for h in history]))
    return result
