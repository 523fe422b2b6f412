"""Run by tests/test_distributed.py under torchrun (gloo, CPU): one step of a method on a slice of a fixed batch.

SwAV first fills its queue with one forward pass of the same batch, so the measured step uses the queue (each process
holds ``swav.queue_length / W`` rows). ViT-MAE's random token masks are drawn for the global batch from a fixed seed
and sliced per process (a real run draws each process's masks independently; the test compares the model and the
gradient reduction, not the random draws).
"""
import sys

import torch

from mammossl_core import distributed as D
from mammossl_core.config import get_profile, replace
from mammossl_core.ssl import build_method


def _global_masks(rank: int, world: int):
    from lightly.models import utils

    draw = utils.random_token_mask

    def sliced(size, mask_ratio=0.6, device=None, **kw):
        b, n = size
        state = torch.get_rng_state()
        torch.manual_seed(123)
        keep, mask = draw(size=(b * world, n), mask_ratio=mask_ratio, device=device, **kw)
        torch.set_rng_state(state)
        return keep[rank * b:(rank + 1) * b], mask[rank * b:(rank + 1) * b]

    utils.random_token_mask = sliced


def fixed_views(n=16, size=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g)]


def run(method: str, out: str) -> None:
    dev = D.setup("cpu")
    cfg = replace(get_profile("tiny").pretrain, {"swav": {"queue_length": 16, "queue_start_fraction": 0.0}})
    torch.manual_seed(0)
    model = D.convert_sync_batchnorm(build_method(method, cfg), dev)
    ddp = D.wrap_ddp(model, dev) if D.is_dist() else model
    views = fixed_views(size=cfg.mae.image_size if method == "mae" else 32)
    n, w, r = len(views[0]), D.world_size(), D.rank()
    local = [v[r * n // w:(r + 1) * n // w] for v in views]
    if method == "mae":
        _global_masks(r, w)
        local = local[:1]
    if method == "swav":
        with torch.no_grad():
            model(local, 0)  # fills the queue with this batch's projections
        assert model.queue_is_full()
    loss = ddp(local, 1).mean()
    loss.backward()
    result = {"loss": D.all_reduce_mean(loss.detach()),
              "grads": {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}}
    if D.is_main():
        torch.save(result, out)
    D.cleanup()


def run_sinkhorn(out: str) -> None:
    from lightly.loss.swav_loss import sinkhorn

    D.setup("cpu")
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(16, 20, generator=g)
    n, w, r = 16, D.world_size(), D.rank()
    q = sinkhorn(scores[r * n // w:(r + 1) * n // w], gather_distributed=True)
    gathered = [torch.zeros_like(q) for _ in range(w)]
    if D.is_dist():
        torch.distributed.all_gather(gathered, q)
    else:
        gathered = [q]
    if D.is_main():
        torch.save({"q": torch.cat(gathered)}, out)
    D.cleanup()


if __name__ == "__main__":
    if sys.argv[1] == "sinkhorn":
        run_sinkhorn(sys.argv[2])
    else:
        run(sys.argv[1], sys.argv[2])
