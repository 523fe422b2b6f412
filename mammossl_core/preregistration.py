"""The pre-registered analysis plan (``preregistration.toml`` beside this module): the synthetic benchmark the
confirmatory runs use, every claim's statement, rule (kind, margin, metric) and role, the primary claim, the replicate
and seed plan, and the constants of the analysis.

Chapters name a claim by its key (:meth:`mammossl_core.chapter.Chapter.claim`); its rule comes from here, so no
notebook can test a claim under another rule than the registered one. The book renders this file on its
pre-registration page.

>>> plan().primary
'ssl_beats_random'
>>> plan().rule("larger_encoder_no_gain").kind
'no_gain'
"""
from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

PATH = Path(__file__).with_name("preregistration.toml")
KINDS = ("better", "noninferior", "no_gain")
METRICS = ("auc", "accuracy")


@dataclass(frozen=True)
class ClaimRule:
    """How one claim is tested: ``statement`` may hold ``{placeholders}`` that the chapter fills (a label fraction,
    an encoder's name)."""

    key: str
    chapter: str
    statement: str
    kind: str = "better"
    margin: float = 0.0
    metric: str = "auc"
    note: str = ""


@dataclass(frozen=True)
class Benchmark:
    """The synthetic benchmark fixed before the confirmatory runs: the generator's version, the profile whose
    dataset settings it was chosen at, and the digest of both (:func:`benchmark_digest`)."""

    generator_version: str
    profile: str
    digest: str


def benchmark_digest(profile: str = "tiny") -> str:
    """A digest of what decides the synthetic benchmark: the generator's source (``data/synthetic/*.py``) and the
    profile's synthetic and image settings (``SynthConfig``, ``DataConfig``). Any change to either is another
    benchmark."""
    from .config import get_profile
    from .data import synthetic

    prof = get_profile(profile)
    h = hashlib.sha1(json.dumps([asdict(prof.synth), asdict(prof.data)], sort_keys=True, default=str).encode())
    root = Path(synthetic.__file__).parent
    for f in sorted(root.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def benchmark_changes(b: "Benchmark") -> list[str]:
    """How today's generator and profile differ from the registered benchmark ``b`` (empty: it is the one)."""
    from .data.synthetic import GENERATOR_VERSION

    out, digest = [], benchmark_digest(b.profile)
    if b.generator_version != GENERATOR_VERSION:
        out.append(f"generator version {GENERATOR_VERSION}, registered {b.generator_version}")
    if b.digest != digest:
        out.append(f"benchmark digest {digest} (generator source and {b.profile} profile's synthetic and data "
                   f"settings), registered {b.digest}")
    return out


@dataclass(frozen=True)
class Plan:
    alpha: float
    power: float
    bootstrap: int
    replicates: int
    primary: str
    multiplicity: str
    development_seeds: tuple[int, ...]
    confirmatory_seeds: tuple[int, ...]
    confirmatory_seed: int
    confirmatory_profile: str
    claims: tuple[ClaimRule, ...]
    benchmark: Benchmark

    def rule(self, key: str) -> ClaimRule:
        for c in self.claims:
            if c.key == key:
                return c
        raise KeyError(f"claim {key!r} is not pre-registered in {PATH}; registered: {[c.key for c in self.claims]}")


def load(path: str | Path = PATH) -> Plan:
    """The plan of ``path``, checked: known kinds and metrics, margins >= 0, a registered primary claim, no
    confirmatory seed that development used, and the confirmatory run's seed among the confirmatory ones."""
    raw = tomllib.loads(Path(path).read_text())
    rules = tuple(ClaimRule(key=k, **v) for k, v in raw.get("claims", {}).items())
    p = raw["plan"]
    out = Plan(claims=rules, benchmark=Benchmark(**raw["benchmark"]),
               **{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})
    for r in rules:
        if r.kind not in KINDS or r.metric not in METRICS or r.margin < 0:
            raise ValueError(f"{path}: claim {r.key!r}: kind {r.kind!r} (of {KINDS}), metric {r.metric!r} (of "
                             f"{METRICS}), margin {r.margin} (>= 0)")
    out.rule(out.primary)
    if set(out.development_seeds) & set(out.confirmatory_seeds):
        raise ValueError(f"{path}: seeds {sorted(set(out.development_seeds) & set(out.confirmatory_seeds))} are both "
                         "development and confirmatory")
    if out.confirmatory_seed not in out.confirmatory_seeds:
        raise ValueError(f"{path}: confirmatory_seed {out.confirmatory_seed} is not one of {out.confirmatory_seeds}")
    if out.multiplicity != "holm":
        raise ValueError(f"{path}: multiplicity {out.multiplicity!r}: only 'holm' is implemented")
    return out


@functools.lru_cache(maxsize=1)
def plan() -> Plan:
    """The committed plan (read once)."""
    return load(PATH)
