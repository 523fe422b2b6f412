"""The difficulty controls: brightness-only detectors scored like models, beside the lesion-detector ceiling."""
import numpy as np
from scipy import ndimage

from mammossl_core.controls import ERODE, brightness_controls, difficulty_card
from mammossl_core.data.tiles import ImageStore


def test_controls_are_what_they_say_and_scored_like_models(synth_dir, store):
    scores = brightness_controls(synth_dir)
    s = ImageStore(synth_dir)
    k = s.image_ids.index(scores.image_id.iloc[0])
    img = np.asarray(s.images[k], dtype=np.float32) / 65535
    inner = ndimage.binary_erosion(np.asarray(s.masks[k]) > 0, iterations=ERODE)  # the tiny size: no scaling
    assert scores["bright_p99.9"].iloc[0] == np.percentile(img[inner], 99.9)
    assert scores["blurred_max_s2"].iloc[0] == ndimage.gaussian_filter(img, 2.0)[inner].max()
    card = difficulty_card(synth_dir, n_boot=50)
    assert card.control.iloc[-1] == "lesion detector blind to pathology" and len(card) == 6
    auc = card["test AUC"].to_numpy()
    assert ((auc >= 0) & (auc <= 1)).all() and (card.low.iloc[:-1] <= card["test AUC"].iloc[:-1]).all()


def test_brightness_controls_stay_near_chance_and_the_oracle_well_above(tmp_path):
    """On a generated dataset, no brightness-only detector separates malignant breasts from the rest much better than
    chance (generator 2.x: 0.70-0.77, its lesions added at one fixed contrast), while the lesion-aware oracle does."""
    from sklearn.metrics import roc_auc_score

    from mammossl_core.config import get_profile
    from mammossl_core.controls import lesion_oracle
    from mammossl_core.data.products import build_products
    from mammossl_core.data.synthetic import synthesize

    d = synthesize(tmp_path / "ds", patients=160, seed=100, profile="tiny", workers=2, progress=False,
                   unlabeled_patients=0)
    build_products(d, get_profile("tiny"), progress=False)
    import pandas as pd

    scores = pd.concat([brightness_controls(d, s) for s in ("train", "val", "test")])
    aucs = {c: roc_auc_score(scores.label, scores[c]) for c in scores.columns[3:]}
    assert max(aucs.values()) <= 0.68, aucs
    oracle, held_out = lesion_oracle(d, "test", patients=200, epochs=15)
    assert roc_auc_score(oracle.label, oracle.oracle) >= 0.85 and held_out > 0.7
