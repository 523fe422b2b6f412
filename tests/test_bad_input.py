import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mammossl_core.cli import main
from mammossl_core.data.layout import DataError, atomic_path, read_png16, write_png16
from mammossl_core.data.tiles import ImageStore


def test_corrupt_truncated_depth_black_missing(tmp_path):
    good = tmp_path / "good.png"
    write_png16(good, (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7))
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    eight = tmp_path / "eight.png"
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(eight)
    black = tmp_path / "black.png"
    write_png16(black, np.zeros((8, 8), np.uint16))
    for path, msg in [(trunc, "corrupt or truncated"), (corrupt, "corrupt or truncated"), (eight, "16-bit"),
                      (black, "all black"), (tmp_path / "nope.png", "not found")]:
        with pytest.raises(DataError, match=msg) as e:
            read_png16(path)
        assert str(path) in str(e.value)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.png"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        write_png16(target, np.zeros((4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_bulk_store_reports_bad_files_and_goes_on(synth_dir, tmp_path, capsys):
    d = tmp_path / "broken"
    shutil.copytree(synth_dir, d, ignore=shutil.ignore_patterns("store", "annotated_*"))
    images = pd.read_csv(d / "images.csv")
    victim = d / images.path[1]
    victim.write_bytes(victim.read_bytes()[:100])
    (d / images.path[2]).unlink()
    store, failures = ImageStore.build(d, progress=False)
    assert len(failures) == 2 and len(store.image_ids) == len(images) - 2
    assert any(str(victim) in f["error"] for f in failures)
    # the command line reports per file and exits non-zero
    shutil.rmtree(d / "store")
    assert main(["tiles", "--data", str(d)]) == 1
    err = capsys.readouterr().err
    assert str(victim) in err and images.path[2] in err


def test_missing_dataset_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["tiles", "--data", str(tmp_path / "none")]) == 2
    assert "prepared dataset directory not found" in capsys.readouterr().err
