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
