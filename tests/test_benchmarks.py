"""Every CPU benchmark runs at its smallest size, so that a move or a change of the code it measures cannot break
it silently (the figures themselves live in benchmarks/README.md)."""
import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu.py"
spec = importlib.util.spec_from_file_location("cpu_bench", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

#: the smallest arguments of each benchmark
SMALLEST = {"tiles": dict(n=64), "augment": dict(batch=8, size=32), "trainer": dict(steps=2, batch=16, repeats=1,
            compiled=False), "whole-image": dict(encoder="tiny", patch=32), "predict": dict(sizes=("tiny",), repeats=1),
            "synth": dict(patients={"tiny": 1, "paper": 1}, repeats=1), "bootstrap": dict(patients=20, n_boot=20, repeats=1),
            "kernel": dict(chapters=1, repeats=1)}


def test_every_benchmark_has_a_smallest_size():
    assert set(SMALLEST) == set(bench.BENCHES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_benchmark_runs(name, synth_dir, store, tmp_path):
    bench.BENCHES[name](str(synth_dir), tmp_path, **SMALLEST[name])


@pytest.mark.slow
def test_the_supervised_budget_measurement_runs_and_refuses_a_confirmatory_seed(capsys):
    spec = importlib.util.spec_from_file_location("budget", SCRIPT.with_name("supervised_budget.py"))
    budget = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(budget)
    with pytest.raises(SystemExit):
        budget.main(["--seed", "7301"])
    assert "confirmatory seed" in capsys.readouterr().err
    assert budget.main(["--seed", "100", "--patients", "40", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "controls on test" in out and "supervised 1 epochs: test AUC" in out


def test_the_confirmatory_robustness_measurement_runs_on_the_committed_set(capsys):
    spec = importlib.util.spec_from_file_location("robust", SCRIPT.with_name("confirmatory_robustness.py"))
    robust = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(robust)
    root = SCRIPT.parents[1] / "book" / "confirmatory"
    if not (root / "manifest.json").is_file():
        pytest.skip("no confirmatory result set committed")
    with pytest.raises(SystemExit):
        robust.main(["--halves", "0,1/1,2", "--n-boot", "20"])
    assert "two disjoint lists" in capsys.readouterr().err
    assert robust.main(["--halves", "0,1/2,3,4", "--other", str(root), "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    # the same set against itself: every verdict equal, whatever the bootstrap count
    assert "halves:" in out and re.search(r"machines: (\d+) of \1 verdicts equal", out)
