"""mammossl: self-supervised learning on screening mammograms (a reproduction of Miller et al.)."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mammossl")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
