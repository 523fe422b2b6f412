"""The synthetic mammogram generator: the embedded default dataset, with pixel-exact ground truth.

No real mammogram can be downloaded where this project is built, so every experiment runs by default on
synthetic screening exams that mimic what matters for the paper (section III):

* anatomy (since generator 2.0, after the ideas of procedural breast phantoms such as VICTRE's breastPhantom and OpenVCT,
  reduced to a fast 2-D projection): a breast attached to the chest wall on the left of the image (the project's
  orientation convention) with a nipple, a compressed-thickness fall-off that darkens it towards a thin skin line, a
  subcutaneous fat layer, a fibroglandular cone behind the nipple that is denser towards the chest wall (BI-RADS
  density a-d = its share of the breast) with a ``1/f^beta`` texture, fibrous strands and ducts converging on the
  nipple, fat lobules bounded by Cooper's ligaments, and on MLO views the pectoral muscle with a soft convex edge; the
  two views of a breast share its size, density and tissue seed (:func:`draw_anatomy`). Measured with the real-film
  estimator (:mod:`mammossl_core.data.texture`) at the paper size, slope and intensity fall in the real films' ranges;
* lesions with masks (since generator 3.0 told apart by morphology only): masses (benign round/oval and
  circumscribed, malignant irregular with margins that fade into the tissue, or spiculated: curved spicules and tissue
  pulled in towards the mass), architectural distortion (spicules and retraction around a faint centre, filed as a
  mass of shape "distortion") and calcification clusters (benign punctate or rim, malignant fine pleomorphic or fine
  linear branching); size, contrast (drawn per lesion over a wide range), integrated density of masses, dot size and
  dot count come from the same distributions for both pathologies; a lesion appears in both the CC and MLO view of
  its breast and covers a small part of the image (the "needle in a haystack" of the paper);
* mimics in every breast whatever its pathology (:mod:`.mimics`): summation densities, focal asymmetries, vascular
  and skin calcifications, with their own masks (``mimics.csv``);
* two acquisition domains (paper Fig. 7): ``ddsm`` (scanned film: non-linear film response, fine grain, film-edge
  bands and burned-in labels) and ``cmmd`` (full-field digital: a vendor's tone curve, quantum noise, clean
  background), and within each a per-image acquisition (dose, beam contrast, tone curve, noise:
  :class:`~.acquisition.Acquisition`, recorded in ``images.csv``);
* an unlabelled pool (split ``unlabeled``, ``SynthConfig.unlabeled_patients``) that pretraining reads.

Every patient is drawn from its own random stream ``(seed, [domain,] patient index)``, so files are byte-identical
for the same arguments whatever the number of worker processes, and the two domains drawn with one seed share no
patient.
"""
from .acquisition import Acquisition, acquire
from .anatomy import DENSITY_FRACTION, breast_shape, draw_anatomy, power_law_noise, tissue
from .assembly import SynthView, generate_images, generate_patient, render_image, synthesize
from .mimics import draw_mimics, render_mimic
from .lesions import draw_lesion, render_calcs, render_mass, retract
from .params import GENERATOR_VERSION, SynthParams

__all__ = ["GENERATOR_VERSION", "DENSITY_FRACTION", "Acquisition", "SynthParams", "SynthView", "acquire", "draw_mimics", "render_mimic", "breast_shape", "draw_anatomy",
           "draw_lesion", "generate_images", "generate_patient", "power_law_noise", "render_calcs", "render_image",
           "render_mass", "retract", "synthesize", "tissue"]
