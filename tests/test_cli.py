"""The command line's front door: --version and --help list every command without importing torch."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["-q", "--help"]])
def test_help_and_version_do_not_import_torch(args):
    code = ("import sys\nfrom mammossl_core.cli import main\ntry:\n    main(%r)\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\nheavy = [m for m in ('torch', 'lightly', 'tensorboard') if m in sys.modules]\n"
            "assert not heavy, heavy\n" % args)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if "--version" in args:
        from mammossl_core import __version__

        assert done.stdout.strip() == f"mammossl {__version__}"


def test_every_command_is_listed_and_has_its_parser(capsys):
    from mammossl_core.cli import COMMANDS, build_parser, main

    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    assert all(name in shown for name in COMMANDS) and "book" in shown
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) | {"book"} == set(COMMANDS)


def test_an_unknown_command_is_an_error(capsys):
    from mammossl_core.cli import main

    with pytest.raises(SystemExit) as e:
        main(["nonsense"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_logging_stays_at_its_default_unless_asked(monkeypatch):
    """Without -v/-q the libraries' INFO logs (papermill's, every cell) stay hidden, as Python has them."""
    import logging

    from mammossl_core.cli import _verbosity

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    level = root.level
    assert _verbosity(["book", "run"]) == ["book", "run"] and root.level == level and not root.handlers
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert _verbosity(["-q", "book"]) == ["book"] and root.level == logging.ERROR
    import os

    assert os.environ["TQDM_DISABLE"] == "1"
    root.setLevel(level)
