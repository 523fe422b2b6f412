"""Multi-process training is equivalent to one process on the same global batch (gloo on CPU, paper V.B)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mammossl_core.ssl import METHODS

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(tmp_path, what, nproc):
    out = tmp_path / f"{what}_{nproc}.pt"
    path = os.pathsep.join(p for p in (str(WORKER.parent.parent), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(WORKER), what, str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out, weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_two_processes_equal_one(tmp_path, method):
    """Batch 16 in one process vs 8 in each of two: the same loss (1e-5) and gradients (1e-3 of each layer's
    largest gradient). SimCLR's negatives, SwAV's Sinkhorn and queue and the batch norms span the global batch."""
    one, two = _run(tmp_path, method, 1), _run(tmp_path, method, 2)
    assert torch.allclose(one["loss"], two["loss"], rtol=1e-5, atol=1e-6), (one["loss"], two["loss"])
    assert one["grads"].keys() == two["grads"].keys() and len(one["grads"]) > 10
    for k in one["grads"]:
        a, b = one["grads"][k], two["grads"][k]
        # relative to the layer's gradient scale, with a floor for layers whose gradient is ~0 (e.g. a bias
        # followed by normalisation)
        scale = max(float(a.abs().max()), 1e-3)
        assert float((a - b).abs().max()) / scale < 1e-3, (k, float((a - b).abs().max()), scale)
    # and the gradients are not trivially equal (a zero or missing gradient would pass the loop)
    assert sum(float(g.abs().sum()) for g in one["grads"].values()) > 0


@pytest.mark.slow
def test_swav_sinkhorn_sees_the_global_batch(tmp_path):
    from lightly.loss.swav_loss import sinkhorn

    two = _run(tmp_path, "sinkhorn", 2)["q"]
    g = torch.Generator().manual_seed(2)
    full = sinkhorn(torch.randn(16, 20, generator=g))
    local_only = torch.cat([sinkhorn(torch.randn(16, 20, generator=torch.Generator().manual_seed(2))[:8]),
                            sinkhorn(torch.randn(16, 20, generator=torch.Generator().manual_seed(2))[8:])])
    assert torch.allclose(two, full, atol=1e-6)
    assert not torch.allclose(two, local_only, atol=1e-4)  # the test can tell local from global
