"""The package has no unused imports, undefined names or shadowed definitions (pyflakes)."""
from pathlib import Path

from pyflakes.api import checkRecursive
from pyflakes.reporter import Reporter


class _Collect:
    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.append(text)


def test_package_is_pyflakes_clean():
    out, err = _Collect(), _Collect()
    root = Path(__file__).resolve().parents[1]
    checkRecursive([str(root / "mammossl_core"), str(root / "tests"), str(root / "benchmarks")], Reporter(out, err))
    assert not out.lines and not err.lines, "".join(out.lines + err.lines)
