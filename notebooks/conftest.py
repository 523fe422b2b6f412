"""pytest's set-up for ``pytest --nbval-lax notebooks/``: nbval's kernels start with tqdm's own switch off, as the
book runner's kernel does, so no progress bar is written to a checked cell's stderr."""
import os

os.environ.setdefault("TQDM_DISABLE", "1")
