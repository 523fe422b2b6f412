"""The parameters of a synthetic dataset, taken from a profile."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ...config import Profile, SynthConfig, image_size, replace, resolve


#: 2.1: the digital domain draws its own patients; 3.0: acquisition varies per image, lesions differ by morphology
#: only, mimics in every breast, an unlabelled pool; 3.1: acquisition ranges recentred on the real films' percentiles
GENERATOR_VERSION = "3.1"


@dataclass(frozen=True)
class SynthParams(SynthConfig):
    """The settings of one synthetic dataset: its profile's :class:`~mammossl_core.config.SynthConfig` and the image
    size of its domain, all taken from the profile by :meth:`of` (the defaults here are never used)."""

    height: int = 0
    width: int = 0
    domain: str = "ddsm"

    @classmethod
    def of(cls, profile: str | Profile | None = None, domain: str = "ddsm", **overrides) -> "SynthParams":
        """The parameters of ``domain`` at ``profile``, with ``overrides`` (e.g. ``lesion_contrast=0.1``); unknown
        names raise ``ValueError``."""
        prof = resolve(profile)
        h, w = image_size(prof, domain)
        return replace(cls(**asdict(prof.synth), height=h, width=w, domain=domain), overrides, "synthetic parameter")

    def record(self) -> dict:
        """What a dataset's ``dataset.json`` keeps of them (the patient count is the dataset's own entry)."""
        return {k: v for k, v in asdict(self).items() if k not in ("patients", "unlabeled_patients")}
