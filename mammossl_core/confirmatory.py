"""The confirmatory result set: the pre-registered run that the book's claims page reports, made by one command and
committed with the book (``book/confirmatory/``), because its replicates do not fit in ``make book``.

``mammossl book confirm`` executes the chapters that test a claim at the plan's confirmatory profile and first
confirmatory seed (:mod:`mammossl_core.preregistration`), once per training replicate ``0 .. replicates - 1`` (training
seed ``seed + 1000 r`` on the same dataset). The executed notebooks and everything they cached stay in the artefact
cache; what the claims need is copied into the set, per replicate, as each finishes: every claim chapter's
``claims.json`` and its ``evidence/`` predictions (small CSVs). ``manifest.json`` says what made the set: profile,
seed, replicates done, the package's source digest, the benchmark's digest, the machine's numerics fingerprint. An
interrupted run is resumed by the same command (finished chapters are not executed again).

Two checks keep the set honest. A set whose source digest is not today's was made by other code: a test fails and
the claims page says so instead of pooling it. :func:`check` re-executes replicate 0 of the primary claim's chapter
and compares it with the committed replicate 0: on a machine with the set's numerics fingerprint the differences must
agree to rounding; on another machine, where training ends elsewhere, each re-executed difference must fall inside
the 99% prediction interval of one more replicate, ``mean +- t(0.995, R-1) sd sqrt(1 + 1/R)`` over the set's ``R``
replicate differences (at least +-``MIN_TOLERANCE``): the same rule on every machine, derived from the training
variance the set measured.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from . import claims, source_digest
from .io import cache_root, write_json
from .numerics import fingerprint
from .preregistration import benchmark_changes, benchmark_digest, plan

MANIFEST = "manifest.json"
#: the narrowest cross-machine tolerance of a difference (replicates that agree exactly leave no spread to scale)
MIN_TOLERANCE = 0.01
#: same numerics: differences agree to the rounding of summed AUCs
SAME_MACHINE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ResultSet:
    """A committed confirmatory result set: its folder and manifest."""

    root: Path
    profile: str
    seed: int
    replicates: tuple[int, ...]
    source_digest: str
    benchmark_digest: str
    fingerprint: str
    machine: str
    created: str

    @property
    def current(self) -> bool:
        """Made by the package source as it is now."""
        return self.source_digest == source_digest()

    def results(self) -> list[Path]:
        """The replicates' results folders (``claims.load`` reads each), in replicate order."""
        return [self.root / f"rep_{r}" for r in self.replicates]

    def table(self, n_boot: int | None = None):
        """Every claim's pooled evidence and verdict over the set's replicates (:func:`mammossl_core.claims.table`)."""
        return claims.table(claims.by_claim(*[claims.load(r) for r in self.results()]), n_boot, seed=self.seed)

    def describe(self) -> str:
        reps = f"{self.replicates[0]}-{self.replicates[-1]}" if len(self.replicates) > 1 else str(self.replicates[0])
        return (f"confirmatory run: dataset seed {self.seed}, training replicates {reps}, profile {self.profile}, "
                f"made on {self.machine} (numerics fingerprint `{self.fingerprint}`) on {self.created}")


def default_root() -> Path:
    return Path(os.environ.get("MAMMOSSL_REPO", Path(__file__).resolve().parents[1])) / "book" / "confirmatory"


def load(root: Path | None = None) -> ResultSet | None:
    """The result set under ``root`` (default ``book/confirmatory``), or None where none was committed."""
    root = Path(root) if root is not None else default_root()
    path = root / MANIFEST
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return ResultSet(root=root, profile=m["profile"], seed=m["seed"], replicates=tuple(m["replicates"]),
                     source_digest=m["source_digest"], benchmark_digest=m["benchmark_digest"],
                     fingerprint=m["fingerprint"], machine=m["machine"], created=m["created"])


def claim_chapters() -> list[str]:
    """The number prefixes of the chapters that test a pre-registered claim."""
    return sorted({r.chapter[:2] for r in plan().claims})


def _collect(results: Path, dst: Path) -> None:
    """Copy every chapter's ``claims.json`` and ``evidence/`` from ``results`` into ``dst``, replacing it whole."""
    tmp = dst.with_name(f".tmp-{dst.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    for cj in sorted(results.glob("*/claims.json")):
        (tmp / cj.parent.name).mkdir(parents=True)
        shutil.copy2(cj, tmp / cj.parent.name / "claims.json")
        shutil.copytree(cj.parent / "evidence", tmp / cj.parent.name / "evidence")
    if not tmp.is_dir():
        raise ValueError(f"{results}: no chapter recorded a claim")
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def run(replicates: list[int] | None = None, force: bool = False, params: dict | None = None,
        root: Path | None = None, seed: int | None = None, profile: str | None = None) -> ResultSet:
    """Execute the confirmatory plan (or the given ``replicates`` of it) and write the result set under ``root``.
    Refuses to start when the benchmark is not the registered one, or when ``root`` holds a set that other code or
    another seed or profile made (move it away first: nothing committed is overwritten silently). ``seed`` and
    ``profile`` default to the plan's; a dry run of the machinery on a development seed passes them with another
    ``root``."""
    from .book import run_notebooks

    p = plan()
    seed = p.confirmatory_seed if seed is None else int(seed)
    profile = profile or p.confirmatory_profile
    root = Path(root) if root is not None else default_root()
    if seed in p.confirmatory_seeds and root == default_root():
        changes = benchmark_changes(p.benchmark)
        if changes or profile != p.benchmark.profile:
            raise ValueError("the benchmark is not the registered one (" + "; ".join(
                changes or [f"profile {profile}, registered {p.benchmark.profile}"]) + "): register it in "
                "mammossl_core/preregistration.toml before a confirmatory run")
    old = load(root)
    if old is not None and (not old.current or old.seed != seed or old.profile != profile):
        raise ValueError(f"{root} holds a set made by other code or for another seed or profile ({old.describe()}, "
                         f"source digest {old.source_digest}, today {source_digest()}); move it away first")
    done = set(old.replicates) if old else set()
    fp = fingerprint()
    work = cache_root() / "confirmatory" / f"{profile}-seed_{seed}"
    for r in replicates if replicates is not None else range(p.replicates):
        print(f"[confirm] replicate {r}: chapters {', '.join(claim_chapters())} (profile {profile}, seed {seed})",
              flush=True)
        run_notebooks(profile, {**(params or {}), "seed": seed, "replicate": r}, claim_chapters(), force,
                      out_dir=work / f"rep_{r}")
        _collect(work / f"rep_{r}" / "results", root / f"rep_{r}")
        done.add(r)
        write_json(root / MANIFEST, {
            "profile": profile, "seed": seed, "replicates": sorted(done), "source_digest": source_digest(),
            "benchmark_digest": benchmark_digest(profile), "fingerprint": fp["fingerprint"],
            "machine": f"{fp['cpu']}, {fp['threads']} threads", "created": time.strftime("%Y-%m-%d"),
            "command": "mammossl book confirm"})
    return load(root)


def tolerance(replicate_diffs: list[float]) -> float:
    """Half-width of the 99% prediction interval of one more replicate's difference, ``t(0.995, R-1) sd
    sqrt(1 + 1/R)``, at least :data:`MIN_TOLERANCE` (and exactly it with fewer than two replicates)."""
    d = np.asarray(replicate_diffs, dtype=float)
    if len(d) < 2:
        return MIN_TOLERANCE
    return max(MIN_TOLERANCE, float(stats.t.ppf(0.995, len(d) - 1) * d.std(ddof=1) * np.sqrt(1 + 1 / len(d))))


@dataclass(frozen=True)
class Comparison:
    """A re-executed replicate's difference beside the committed set's."""

    key: str
    rerun: float
    committed: float
    pooled: float
    tolerance: float
    same_machine: bool

    @property
    def ok(self) -> bool:
        if self.same_machine:
            return abs(self.rerun - self.committed) <= SAME_MACHINE_TOLERANCE
        return abs(self.rerun - self.pooled) <= self.tolerance


def compare(rerun: list[claims.Claim], s: ResultSet, same_machine: bool) -> list[Comparison]:
    """Each re-executed claim of replicate 0 against the committed set (the rule of the module docstring)."""
    committed = claims.by_claim(*[claims.load(r) for r in s.results()])
    out = []
    for c in rerun:
        reps = committed.get(c.key)
        if not reps:
            raise ValueError(f"claim {c.key!r} is not in the committed set {s.root}")
        diffs = [claims.difference(x) for x in reps]
        out.append(Comparison(c.key, claims.difference(c), diffs[0], float(np.mean(diffs)), tolerance(diffs),
                              same_machine))
    return out


def check(root: Path | None = None, work: Path | None = None) -> list[Comparison]:
    """Re-execute replicate 0 of the primary claim's chapter at the set's profile and seed and compare it with the
    committed set (``ValueError`` naming what failed). No committed set: nothing to check (an empty list)."""
    from .book import run_notebooks

    s = load(root)
    if s is None:
        print("[confirm] no confirmatory result set committed: nothing to check", flush=True)
        return []
    if not s.current:
        raise ValueError(f"{s.root} was made by other code (source digest {s.source_digest}, today "
                         f"{source_digest()}): run `mammossl book confirm` again and commit the set")
    chapter = plan().rule(plan().primary).chapter
    work = Path(work) if work is not None else cache_root() / "confirmatory" / "check"
    run_notebooks(s.profile, {"seed": s.seed, "replicate": 0}, [chapter[:2]], force=True, out_dir=work)
    out = compare(claims.load(work / "results", chapter), s, fingerprint()["fingerprint"] == s.fingerprint)
    for c in out:
        rule = (f"committed {c.committed:+.6f}" if c.same_machine else
                f"pooled {c.pooled:+.3f} +- {c.tolerance:.3f}")
        print(f"[confirm] {c.key}: re-executed {c.rerun:+.6f}, {rule}: {'ok' if c.ok else 'FAILED'}", flush=True)
    bad = [c.key for c in out if not c.ok]
    if bad:
        raise ValueError(f"replicate 0 re-executed does not agree with the committed set for {bad}")
    return out
