"""Two robustness targets of the pre-registered plan, measured on confirmatory result sets: do two disjoint halves of
the replicates reach the same verdict, and does executing the plan on another machine type change a verdict that the
book does not already mark fragile?

``python benchmarks/confirmatory_robustness.py [--other DIR [--pool-machines]] [--halves 0,1/2,3,4] [--n-boot N]``

It reads the committed set (``book/confirmatory``, or ``--set DIR``) and pools it exactly as the claims page does
(:func:`mammossl_core.claims.table`: the plan's bootstrap count, Holm across secondary claims). ``--halves`` pools each
half of its replicates on its own and prints, per claim, both halves' verdicts beside the full set's. ``--other``
pools a second set of the same plan (``mammossl_core.confirmatory.run(root=DIR)`` executed on another machine) and
prints both sets' estimates, intervals and verdicts (``--pool-machines``: and both sets' replicates pooled as one,
descriptive only). Either comparison ends with the claims whose verdicts differ and whether each is marked fragile in
the committed set. Nothing is written.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout


def _pooled(folders: list[Path], seed: int, n_boot: int | None):
    """The claims page's table of these replicates' results folders (bootstrapped with the dataset seed, as there)."""
    from mammossl_core import claims

    return claims.table(claims.by_claim(*[claims.load(f) for f in folders]), n_boot=n_boot, seed=seed).set_index("key")


def _row(df, key: str) -> str:
    r = df.loc[key]
    # the Holm-adjusted p-value decides a secondary claim's "holds" together with its interval
    return (f"{r['diff']:+.3f} [{r.low:+.3f}, {r.high:+.3f}] p(Holm) {r['p (Holm)']:.3f} "
            f"{r.verdict}{' (fragile)' if r.fragile else ''}")


def _summary(a, b, committed, label: str) -> None:
    """How many verdicts ``a`` and ``b`` share; each change with the committed set's fragility mark."""
    changed = [k for k in committed.index if a.loc[k, "verdict"] != b.loc[k, "verdict"]]
    print(f"{label}: {len(committed) - len(changed)} of {len(committed)} verdicts equal", flush=True)
    for k in changed:
        print(f"  {k}: {a.loc[k, 'verdict']} -> {b.loc[k, 'verdict']}; marked fragile in the committed set: "
              f"{'yes' if committed.loc[k, 'fragile'] else 'NO'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, default=REPO / "book" / "confirmatory", help="the committed result set")
    ap.add_argument("--other", type=Path, help="a second result set of the same plan, made on another machine")
    ap.add_argument("--pool-machines", action="store_true",
                    help="with --other: also pool both sets' replicates as one (descriptive)")
    ap.add_argument("--halves", default="", help="two disjoint replicate lists, e.g. 0,1/2,3,4 (empty: no halves)")
    ap.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples (default: the plan's)")
    a = ap.parse_args(argv)

    from mammossl_core import confirmatory

    s = confirmatory.load(a.set)
    if s is None:
        ap.error(f"{a.set}: no result set (no {confirmatory.MANIFEST})")
    t = time.perf_counter()
    full = _pooled(s.results(), s.seed, a.n_boot)
    print(f"set {s.root}: {s.describe()}; {'current' if s.current else 'made by other code'}", flush=True)

    if a.halves:
        halves = [[int(x) for x in h.split(",")] for h in a.halves.split("/")]
        if len(halves) != 2 or set(halves[0]) & set(halves[1]) or not set(halves[0] + halves[1]) <= set(s.replicates):
            ap.error(f"--halves {a.halves}: two disjoint lists of the set's replicates {list(s.replicates)}")
        h0, h1 = (_pooled([s.root / f"rep_{r}" for r in h], s.seed, a.n_boot) for h in halves)
        print(f"\nhalves {halves[0]} and {halves[1]} against all {list(s.replicates)}:", flush=True)
        for k in full.index:
            print(f"  {k:34s} all {_row(full, k)} | {_row(h0, k)} | {_row(h1, k)}", flush=True)
        _summary(h0, h1, full, "halves")

    if a.other:
        o = confirmatory.load(a.other)
        if o is None:
            ap.error(f"{a.other}: no result set (no {confirmatory.MANIFEST})")
        if (o.seed, o.profile, o.replicates) != (s.seed, s.profile, s.replicates):
            ap.error(f"{a.other} ({o.describe()}) is not the same plan as {s.root} ({s.describe()})")
        other = _pooled(o.results(), o.seed, a.n_boot)
        print(f"\nother set {o.root}: {o.describe()}; {'current' if o.current else 'made by other code'}",
              flush=True)
        for k in full.index:
            print(f"  {k:34s} {s.fingerprint} {_row(full, k)} | {o.fingerprint} {_row(other, k)}", flush=True)
        _summary(full, other, full, "machines")
        if a.pool_machines:
            both = _pooled(s.results() + o.results(), s.seed, a.n_boot)
            print(f"\nboth sets' {2 * len(s.replicates)} replicates pooled (descriptive: the plan's verdicts read the "
                  "committed set alone):", flush=True)
            for k in full.index:
                print(f"  {k:34s} {_row(both, k)}", flush=True)
    print(f"\n{time.perf_counter() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
