"""mammossl: self-supervised learning on screening mammograms (a reproduction of Miller et al.)."""
import functools
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mammossl")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"


@functools.lru_cache(maxsize=None)
def source_digest() -> str:
    """A digest of the package's own source files: part of every artefact key and chapter digest, so that a change
    of code, with or without a version bump, never reuses results computed by other code."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha1(__version__.encode())
    root = Path(__file__).parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]
