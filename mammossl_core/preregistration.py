"""The pre-registered analysis plan (``preregistration.toml`` beside this module): every claim's statement, rule
(kind, margin, metric) and role, the primary claim, the replicate and seed plan, and the constants of the analysis.

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
import tomllib
from dataclasses import dataclass
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
class Plan:
    alpha: float
    power: float
    bootstrap: int
    replicates: int
    primary: str
    multiplicity: str
    fragile_se: float
    development_seeds: tuple[int, ...]
    confirmatory_seeds: tuple[int, ...]
    claims: tuple[ClaimRule, ...]

    def rule(self, key: str) -> ClaimRule:
        for c in self.claims:
            if c.key == key:
                return c
        raise KeyError(f"claim {key!r} is not pre-registered in {PATH}; registered: {[c.key for c in self.claims]}")


def load(path: str | Path = PATH) -> Plan:
    """The plan of ``path``, checked: known kinds and metrics, margins >= 0, a registered primary claim, and no
    confirmatory seed that development used."""
    raw = tomllib.loads(Path(path).read_text())
    rules = tuple(ClaimRule(key=k, **v) for k, v in raw.get("claims", {}).items())
    p = raw["plan"]
    out = Plan(claims=rules, **{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})
    for r in rules:
        if r.kind not in KINDS or r.metric not in METRICS or r.margin < 0:
            raise ValueError(f"{path}: claim {r.key!r}: kind {r.kind!r} (of {KINDS}), metric {r.metric!r} (of "
                             f"{METRICS}), margin {r.margin} (>= 0)")
    out.rule(out.primary)
    if set(out.development_seeds) & set(out.confirmatory_seeds):
        raise ValueError(f"{path}: seeds {sorted(set(out.development_seeds) & set(out.confirmatory_seeds))} are both "
                         "development and confirmatory")
    if out.multiplicity != "holm":
        raise ValueError(f"{path}: multiplicity {out.multiplicity!r}: only 'holm' is implemented")
    return out


@functools.lru_cache(maxsize=1)
def plan() -> Plan:
    """The committed plan (read once)."""
    return load(PATH)
