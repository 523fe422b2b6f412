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
* lesions with masks: masses (benign round/oval and circumscribed, malignant irregular with margins that fade into
  the tissue, or spiculated: curved spicules and tissue pulled in towards the mass), architectural distortion
  (spicules and retraction around a faint centre, filed as a mass of shape "distortion") and calcification clusters (benign coarse and
  scattered, malignant fine pleomorphic or fine linear, clustered); a lesion appears in both the CC and MLO view of its breast; lesions cover a small part of the
  image (the "needle in a haystack" of the paper);
* two acquisition domains (paper Fig. 7): ``ddsm`` (scanned film: non-linear film response, fine grain, film-edge
  bands and burned-in labels) and ``cmmd`` (full-field digital: linear processing, quantum noise, clean background).

Every patient is drawn from its own random stream ``(seed, [domain,] patient index)``, so files are byte-identical
for the same arguments whatever the number of worker processes, and the two domains drawn with one seed share no
patient.
"""
from .acquisition import acquire
from .anatomy import DENSITY_FRACTION, breast_shape, draw_anatomy, power_law_noise, tissue
from .assembly import generate_images, generate_patient, render_image, synthesize
from .lesions import draw_lesion, render_calcs, render_mass, retract
from .params import GENERATOR_VERSION, SynthParams

__all__ = ["GENERATOR_VERSION", "DENSITY_FRACTION", "SynthParams", "acquire", "breast_shape", "draw_anatomy",
           "draw_lesion", "generate_images", "generate_patient", "power_law_noise", "render_calcs", "render_image",
           "render_mass", "retract", "synthesize", "tissue"]
