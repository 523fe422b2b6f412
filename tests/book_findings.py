"""The book's findings and their expected values per machine (used by ``test_book_regression.py``).

The tiny profile gives the same numbers twice on one machine, but not on a machine whose CPU picks other
floating-point kernels (:mod:`mammossl_core.numerics`). ``tests/expected/book_tiny.json`` therefore keeps one record
of findings per machine, each with the numerics fingerprint it was recorded under (``None`` where it was recorded
before fingerprints existed). :func:`judge` decides:

* the findings match a record within ``TOL`` with the same verdicts: pass;
* else, a record carries this machine's fingerprint: fail (a change moved the findings on a recorded machine);
* else (numerics never recorded): compare with the closest record within ``LOOSE_TOL``, verdicts at most one step
  apart (holds / not shown / contradicted): pass with a warning that asks for this machine's record, or fail.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mammossl_core import claims
from mammossl_core.chapter import LABEL_FRACTIONS, LINEAR_EVALUATION, result_path

#: same numerics: the findings' rounding and other BLAS builds of the same kernels
TOL = 0.02
#: numerics never recorded: between two CPU types (AVX2 and AVX-512 machines), the tree unchanged, AUCs and differences
#: moved by up to 0.098 and two of twelve verdicts by one step
LOOSE_TOL = 0.15


def findings(results: Path) -> dict:
    """Verdicts and rounded numbers of every recorded claim, and the AUCs of the chapters' saved tables."""
    out: dict = {"claims": {}, "tables": {}}
    for c in claims.load(results):
        e = claims.evidence([c], n_boot=500)
        out["claims"][f"{c.chapter}: {c.statement}"] = {
            "verdict": e.verdict, "a": round(e.metric_a, 3), "b": round(e.metric_b, 3),
            "diff": round(e.difference.diff, 3), "low": round(e.difference.low, 3), "high": round(e.difference.high, 3),
            "se": round(e.difference.se, 4)}
    lin = result_path(results, *LINEAR_EVALUATION)
    if lin.is_file():
        out["tables"]["04 linear evaluation"] = {r.model: round(r.auc, 3) for r in pd.read_csv(lin).itertuples()}
    frac = result_path(results, *LABEL_FRACTIONS)
    if frac.is_file():
        out["tables"]["05 label fractions"] = {f"{r['model']} {r['training labels (%)']:.0f}%": round(r["auc"], 3)
                                               for _, r in pd.read_csv(frac).iterrows()}
    return out


def differences(got: dict, expected: dict, tol: float, verdict_steps: int = 0) -> list[str]:
    """What in ``got`` differs from ``expected``: another set of claims or table rows, a verdict more than
    ``verdict_steps`` apart, a number more than ``tol`` away."""
    out = []
    if sorted(got["claims"]) != sorted(expected["claims"]):
        out.append(f"the set of claims changed: {sorted(set(got['claims']) ^ set(expected['claims']))}")
    for name, exp in expected["claims"].items():
        g = got["claims"].get(name)
        if g is None:
            continue
        step = abs(claims.VERDICTS.index(g["verdict"]) - claims.VERDICTS.index(exp["verdict"]))
        if step > verdict_steps:
            out.append(f"{name}: verdict {g['verdict']!r}, expected {exp['verdict']!r}")
        out += [f"{name}: {k} {g[k]:.3f}, expected {exp[k]:.3f}" for k in ("a", "b", "diff")
                if abs(g[k] - exp[k]) > tol]
    for table, rows in expected["tables"].items():
        mine = got["tables"].get(table, {})
        if set(mine) != set(rows):
            out.append(f"{table}: rows {sorted(mine)}, expected {sorted(rows)}")
        out += [f"{table}, {row}: {mine[row]:.3f}, expected {auc:.3f}" for row, auc in rows.items()
                if row in mine and abs(mine[row] - auc) > tol]
    return out


def judge(got: dict, records: list[dict], fp: dict) -> tuple[bool, str]:
    """(passed, message) under the rule of the module docstring; a passing message that starts with "warning"
    should be shown."""
    strict = [(r, differences(got, r["findings"], TOL)) for r in records]
    for r, diff in strict:
        if not diff:
            name = f"record {r['machine']!r}"
            if r.get("fingerprint") not in (None, fp["fingerprint"]):
                return True, (f"warning: the findings match {name} (fingerprint {r['fingerprint']}), not this "
                              f"machine's fingerprint {fp['fingerprint']}")
            return True, f"the findings match {name}"
    mine = [(r, diff) for r, diff in strict if r.get("fingerprint") == fp["fingerprint"]]
    if mine:
        r, diff = mine[0]
        return False, (f"the findings moved on a recorded machine ({r['machine']!r}, fingerprint "
                       f"{fp['fingerprint']}):\n  " + "\n  ".join(diff))
    if not records:
        return False, "no expected findings recorded"
    r, diff = min(strict, key=lambda rd: len(rd[1]))
    loose = differences(got, r["findings"], LOOSE_TOL, verdict_steps=1)
    if loose:
        return False, (f"this machine's numerics (fingerprint {fp['fingerprint']}, {fp['cpu']}) were never recorded, "
                       f"and the findings are further from the closest record ({r['machine']!r}) than machines "
                       f"differ ({LOOSE_TOL}, one verdict step):\n  " + "\n  ".join(loose))
    return True, (f"warning: this machine's numerics (fingerprint {fp['fingerprint']}, {fp['cpu']}) were never "
                  f"recorded; the findings are within {LOOSE_TOL} of record {r['machine']!r} with verdicts at most "
                  f"one step apart ({len(diff)} differences beyond {TOL}). Record them on an unchanged tree with "
                  "MAMMOSSL_UPDATE_EXPECTED=add")


def update(records: list[dict], got: dict, fp: dict, mode: str, machine: str, date: str) -> list[dict]:
    """Records after recording ``got`` for this machine. ``mode="add"`` (the tree's findings did not change; a
    machine is added, or a record without fingerprint that matches gets this one) keeps the other machines' records;
    ``mode="replace"`` (the findings changed on purpose) keeps this machine's record only."""
    if mode not in ("add", "replace"):
        raise ValueError(f"MAMMOSSL_UPDATE_EXPECTED={mode!r}: use 'add' or 'replace'")
    rec = {"machine": machine, "fingerprint": fp["fingerprint"], "cpu": fp["cpu"], "threads": fp["threads"],
           "versions": fp["versions"], "recorded": date, "findings": got}
    if mode == "replace":
        return [rec]
    kept = [r for r in records if r.get("fingerprint") != fp["fingerprint"]
            and not (r.get("fingerprint") is None and not differences(got, r["findings"], TOL))]
    return kept + [rec]


def load_records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["machines"] if path.is_file() else []


def write_records(path: Path, records: list[dict]) -> None:
    path.write_text(json.dumps({"machines": records}, indent=1, sort_keys=True) + "\n")
