"""GPU benchmark of SSL pretraining (issue: SSL pretraining, benchmark 3). Runs in under 5 minutes on one GPU.

BYOL and SwAV, ResNet-50, 96 px tiled patches, batch 512, bf16 autocast, channels-last, through the real trainer
(tile store -> DataLoader workers -> on-GPU augmentation -> DDP-ready step). Prints images per second, the share
of wall time the GPU was busy (nvidia-smi utilisation sampled every 100 ms), the speed of the same step on a batch
already on the GPU (no data loading: the pipeline's ceiling), and the projected time of the paper's 200 epochs.

    python benchmarks/gpu_pretrain.py [--workdir DIR] [--steps 60] [--patients 120]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch


class GpuSampler:
    """Samples nvidia-smi's utilisation.gpu every 100 ms between start() and stop()."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()

    def _run(self):
        proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                 "-lms", "100"], stdout=subprocess.PIPE, text=True)
        while not self._stop.is_set():
            line = proc.stdout.readline()
            if line.strip():
                self.samples.append(float(line.split()[0]))
        proc.terminate()

    def start(self):
        self.samples.clear()
        self._stop.clear()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def stop(self) -> float:
        self._stop.set()
        self.t.join(timeout=5)
        return sum(self.samples) / max(len(self.samples), 1)


def compute_only(method: str, batch: int, steps: int = 30) -> float:
    """Images/s of the same model step (augmentation included) on one batch resident on the GPU."""
    from mammossl_core.augment import MammoAugment
    from mammossl_core.config import get_profile
    from mammossl_core.pretrain import build_optimizer
    from mammossl_core.ssl import build_method

    cfg = get_profile("paper").pretrain
    dev = torch.device("cuda")
    model = build_method(method, cfg).to(dev).to(memory_format=torch.channels_last)
    opt, _ = build_optimizer(model, method, cfg, batch)
    aug = MammoAugment(cfg.augment, size=96)
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(batch, 1, 96, 96, device=dev)
    for k in range(steps + 5):
        if k == 5:
            torch.cuda.synchronize()
            t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            views = [aug(x, g).contiguous(memory_format=torch.channels_last) for _ in range(2)]
            loss = model(views, 1000 + k).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_step(k, 10**6)
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--patients", type=int, default=120)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--workers", type=int, default=8)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU")
        return 1
    torch.backends.cudnn.benchmark = True
    from mammossl_core.data.synthetic import synthesize
    from mammossl_core.data.tiles import TileDataset, ImageStore
    from mammossl_core.pretrain import pretrain

    work = Path(a.workdir or tempfile.mkdtemp())
    t = time.perf_counter()
    d = synthesize(work / "synth_paper", patients=a.patients, seed=0, profile="paper", progress=False)
    store, _ = ImageStore.build(d, progress=False)
    n_tiles = len(TileDataset(store, 96))
    print(f"[gpu] {torch.cuda.get_device_name()}: synthetic paper-size data, {len(store.image_ids)} images, "
          f"{n_tiles} tiles of 96 px, prepared in {time.perf_counter() - t:.0f} s", flush=True)
    steps_per_epoch = int(0.7 * n_tiles) // a.batch
    if a.steps >= steps_per_epoch:
        print(f"[gpu] warning: {a.steps} steps cross an epoch end (~{steps_per_epoch} steps/epoch): the timing then "
              f"includes validation and checkpointing; use more --patients or fewer --steps")
    results = {}
    for method in ("byol", "swav"):
        stamps: list[float] = []
        sampler = GpuSampler()
        warm = 10

        def on_step(step):
            torch.cuda.synchronize()
            stamps.append(time.perf_counter())
            if step == warm:
                sampler.start()

        pretrain(method, d, work / f"run_{method}", "paper", progress=False, batch_size=a.batch,
                 max_steps=a.steps, epochs=100, checkpoint_every=10**9, num_workers=a.workers,
                 swav_queue_start_step=0, on_step=on_step)
        busy = sampler.stop()
        ips = (len(stamps) - warm) * a.batch / (stamps[-1] - stamps[warm - 1])
        ceiling = compute_only(method, a.batch)
        epoch_imgs = 2111 * n_tiles / len(store.image_ids)  # paper: 2111 CBIS-DDSM training images
        hours = 200 * epoch_imgs / ips / 3600
        results[method] = (ips, busy, ceiling)
        print(f"[gpu] {method}: trainer {ips:.0f} img/s, GPU busy {busy:.0f}% of wall time, same step on a "
              f"GPU-resident batch {ceiling:.0f} img/s (trainer reaches {ips / ceiling:.0%} of it); "
              f"200 epochs of ~{epoch_imgs:.0f} tiles (2111 images) would take {hours:.1f} h", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
