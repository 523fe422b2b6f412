"""How large a labelled set and how many epochs the supervised baseline needs on the synthetic benchmark before it
rises above the brightness-only controls: one of the measurements that fixed the benchmark (the generator version
registered in ``mammossl_core/preregistration.toml``).

``python benchmarks/supervised_budget.py --seed 100 --patients 250,750 --epochs 10,30``

For each dataset size it generates the tiny profile's dataset (no unlabelled pool) at a *development* seed, scores the
brightness controls of chapter 0's difficulty card on the test split, and trains the supervised baseline (GAP, the
tiny profile's learning rate) for each number of epochs, best epoch on validation. It prints test AUC with its
patient-bootstrap interval, validation AUC and seconds. Confirmatory seeds are refused: the benchmark is chosen
before they are read.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=100, help="a development dataset seed (preregistration.toml)")
    ap.add_argument("--patients", default="250,750", help="dataset sizes, comma-separated (2:1:2 split)")
    ap.add_argument("--epochs", default="10,30", help="supervised epochs, comma-separated")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    import torch
    from sklearn.metrics import roc_auc_score

    from mammossl_core.config import get_profile
    from mammossl_core.controls import brightness_controls
    from mammossl_core.data.products import build_products
    from mammossl_core.data.synthetic import synthesize
    from mammossl_core.evaluate import supervised
    from mammossl_core.preregistration import plan

    if a.seed in plan().confirmatory_seeds:
        ap.error(f"--seed {a.seed} is a confirmatory seed; design measurements use development seeds "
                 f"{list(plan().development_seeds)}")
    torch.set_num_threads(a.threads)
    for n in (int(x) for x in a.patients.split(",")):
        with tempfile.TemporaryDirectory() as d:
            synthesize(d, patients=n, seed=a.seed, profile="tiny", workers=1, progress=False, unlabeled_patients=0)
            build_products(d, get_profile("tiny"), progress=False)
            s = brightness_controls(d, "test")
            controls = {c: roc_auc_score(s.label, s[c]) for c in s.columns[3:]}
            print(f"seed {a.seed}, {n} patients: controls on test " +
                  ", ".join(f"{c} {v:.3f}" for c, v in controls.items()), flush=True)
            for ep in (int(x) for x in a.epochs.split(",")):
                t = time.perf_counter()
                r = supervised(d, profile="tiny", seed=a.seed, supervised_epochs=ep)
                print(f"seed {a.seed}, {n} patients ({r.n_test_patients} test), supervised {ep} epochs: test AUC "
                      f"{r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}], val {r.val_auc:.3f}, "
                      f"{time.perf_counter() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
