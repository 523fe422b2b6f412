"""The rule that compares a book's findings with the records of expected findings per machine (book_findings.py),
and the numerics fingerprint it keys them by."""
import copy
import json

import pytest
import torch

from book_findings import LOOSE_TOL, TOL, differences, judge, update
from mammossl_core.numerics import fingerprint


def _findings(shift: float = 0.0, verdict: str = "not shown at this size") -> dict:
    return {"claims": {"04: MIP beats GAP": {"verdict": verdict, "a": 0.70 + shift, "b": 0.65, "diff": 0.05 + shift,
                                             "low": -0.01, "high": 0.12}},
            "tables": {"04 linear evaluation": {"byol (MIP)": 0.70 + shift, "byol (GAP)": 0.65}}}


def _fp(h: str) -> dict:
    return {"fingerprint": h, "cpu": "test CPU", "threads": 2, "versions": {}}


def _record(machine: str, h: str | None, f: dict) -> dict:
    return {"machine": machine, "fingerprint": h, "findings": f}


def test_a_record_matched_within_the_tolerance_passes_and_another_set_of_claims_does_not():
    ok, msg = judge(_findings(TOL / 2), [_record("A", "aaa", _findings())], _fp("aaa"))
    assert ok and not msg.startswith("warning")
    extra = _findings()
    extra["claims"]["05: new claim"] = extra["claims"]["04: MIP beats GAP"]
    assert differences(extra, _findings(), TOL) == [
        "the set of claims changed: ['05: new claim']"]


def test_a_recorded_machine_fails_on_a_moved_finding_or_verdict():
    records = [_record("A", "aaa", _findings()), _record("B", "bbb", _findings(0.08))]
    ok, msg = judge(_findings(0.04), records, _fp("aaa"))
    assert not ok and "recorded machine ('A'" in msg and "byol (MIP)" in msg
    ok, msg = judge(_findings(verdict="holds"), records, _fp("aaa"))
    assert not ok and "verdict 'holds'" in msg
    # the other machine's record matches exactly: passes, with a warning that the fingerprints disagree
    ok, msg = judge(_findings(0.08), records, _fp("aaa"))
    assert ok and msg.startswith("warning") and "bbb" in msg


def test_an_unrecorded_machine_is_held_to_the_spread_between_machines():
    records = [_record("A", None, _findings())]
    ok, msg = judge(_findings(0.09, verdict="holds"), records, _fp("ccc"))
    assert ok and msg.startswith("warning") and "never recorded" in msg
    ok, msg = judge(_findings(LOOSE_TOL + 0.01), records, _fp("ccc"))
    assert not ok and "further from the closest record" in msg
    ok, msg = judge(_findings(verdict="contradicted"), [_record("A", None, _findings(verdict="holds"))], _fp("ccc"))
    assert not ok and "verdict 'contradicted'" in msg
    assert not judge(_findings(), [], _fp("ccc"))[0]


def test_update_adds_a_machine_or_replaces_every_record():
    old = [_record("A", None, _findings()), _record("B", "bbb", _findings(0.08))]
    # an unchanged tree on A's machine: A's record (no fingerprint, same findings) gets this fingerprint
    added = update(copy.deepcopy(old), _findings(), _fp("aaa"), "add", "A again", "2026-11-27")
    assert [(r["machine"], r["fingerprint"]) for r in added] == [("B", "bbb"), ("A again", "aaa")]
    # a new machine with other numbers: kept beside the others
    added = update(copy.deepcopy(old), _findings(0.05), _fp("ccc"), "add", "C", "2026-11-27")
    assert [r["fingerprint"] for r in added] == [None, "bbb", "ccc"]
    replaced = update(copy.deepcopy(old), _findings(0.2), _fp("bbb"), "replace", "B", "2026-11-27")
    assert [r["fingerprint"] for r in replaced] == ["bbb"] and json.dumps(replaced)
    with pytest.raises(ValueError, match="MAMMOSSL_UPDATE_EXPECTED"):
        update(old, _findings(), _fp("aaa"), "1", "A", "2026-11-27")


def test_the_fingerprint_is_stable_leaves_the_random_state_alone_and_sees_the_thread_count():
    state = torch.random.get_rng_state().clone()
    a, b = fingerprint(), fingerprint()
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == b and len(a["fingerprint"]) == 12 and a["versions"]["torch"] == torch.__version__.split("+")[0]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        assert fingerprint()["fingerprint"] != a["fingerprint"]
    finally:
        torch.set_num_threads(threads)
