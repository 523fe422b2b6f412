"""The parameters of a synthetic dataset, taken from a profile."""
from __future__ import annotations

from dataclasses import dataclass

from ...config import Profile, image_size, resolve


GENERATOR_VERSION = "2.0"


@dataclass(frozen=True)
class SynthParams:
    """Parameters of one synthetic dataset: the image size of a domain and the generator's settings, all taken
    from a profile (:meth:`of`), never defaulted here."""

    height: int
    width: int
    domain: str
    malignant_fraction: float
    benign_fraction: float
    lesion_contrast: float
    lesion_size: float
    texture_beta: float
    distortion_share: float

    @classmethod
    def of(cls, profile: str | Profile | None = None, domain: str = "ddsm", **overrides) -> "SynthParams":
        """The parameters of ``domain`` at ``profile`` (:class:`~mammossl_core.config.SynthConfig`), with
        ``overrides`` (e.g. ``lesion_contrast=0.1``); unknown names raise ``ValueError``."""
        prof = resolve(profile)
        h, w = image_size(prof, domain)
        c = prof.synth
        values = dict(height=h, width=w, domain=domain, malignant_fraction=c.malignant_fraction,
                      benign_fraction=c.benign_fraction, lesion_contrast=c.lesion_contrast,
                      lesion_size=c.lesion_size, texture_beta=c.texture_beta,
                      distortion_share=c.distortion_share)
        bad = set(overrides) - set(values)
        if bad:
            raise ValueError(f"unknown synthetic parameter(s) {sorted(bad)}; known: {sorted(values)}")
        return cls(**{**values, **overrides})
