"""GPU benchmark of SSL pretraining: every figure of the pretraining-speed issue in one run of under 8 minutes.

Per method (BYOL, SwAV, SimCLR: ResNet-50 on 96 px tiles; ViT-MAE: ViT-B/16 on 512 px whole images), bf16
autocast, channels-last, the encoders ``torch.compile``-d, through the real trainer (tile store -> DataLoader
workers -> fp32 augmentation on the GPU -> step):

* trainer img/s in the steady state (the second epoch, without its first step: every epoch restarts the loader
  workers) and over the whole second epoch with its validation and checkpoint;
* compute-only img/s: the same step (augmentation, forward, backward, optimiser, EMA) on a batch already on the GPU;
* the share of wall time the GPU was busy (nvidia-smi utilisation, sampled every 100 ms, over the timed window);
* peak GPU memory; the first step's seconds (compilation included), apart from the steady state;
* the projected time of the paper's 200 epochs over CBIS-DDSM's tiles;

then SwAV's stability at the paper's learning rate (several hundred steps past the prototypes' unfreeze: loss and
largest |prototype score| per epoch), ViT-MAE's FLOPs per image and the img/s bound they set at ``--peak-tflops``,
BYOL in eager mode on the same card (what compilation buys), the peak memory of finetuning at 1152x896 and batch 32,
``mammossl predict`` on paper-size images (img/s), a memory table (method x tile size x batch, one eager step each),
``pytest -m gpu`` and the paper-profile smoke test of two chapters on CUDA. Sections run in order of importance and
are skipped once ``--budget`` seconds have passed, so a lease always returns the most important figures.

    python benchmarks/gpu_pretrain.py [--workdir DIR] [--patients 160] [--batch 2048] [--budget 420]
    python benchmarks/gpu_pretrain.py --cpu-smoke   # the code paths on CPU with the tiny profile (no figures)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mammossl_core.augment import MammoAugment  # noqa: E402
from mammossl_core.config import get_profile, resolve  # noqa: E402
from mammossl_core.pretrain import compile_mode, pretrain  # noqa: E402
from mammossl_core.ssl import Schedule  # noqa: E402
from mammossl_core.ssl import build_method  # noqa: E402

#: CBIS-DDSM training images (the paper's 2111) for the projected 200-epoch time
PAPER_TRAIN_IMAGES = 2111


class GpuSampler:
    """Samples nvidia-smi's utilization.gpu every 100 ms between start() and stop()."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self.t = None

    def _run(self):
        try:
            proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                     "-lms", "100"], stdout=subprocess.PIPE, text=True)
        except OSError:
            return
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
        if self.t is not None:
            self.t.join(timeout=5)
        return sum(self.samples) / len(self.samples) if self.samples else float("nan")


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def trainer_run(method: str, data: Path, work: Path, profile: str, batch: int, compile_: str, workers: int,
                steps_per_epoch: int, lr: float | None = None) -> dict:
    """Two epochs and one step through the trainer; times the second epoch (see the module docstring)."""
    stamps: dict[int, float] = {}
    sampler = GpuSampler()
    a, b = steps_per_epoch + 1, 2 * steps_per_epoch  # second epoch without its first step: steps a+1..b

    def on_step(step):
        if step in (a, b, steps_per_epoch, 2 * steps_per_epoch + 1):
            _sync()
            stamps[step] = time.perf_counter()
            if step == a:
                sampler.start()
            if step == b:
                stamps["busy"] = sampler.stop()

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    s = pretrain(method, data, work / f"run_{method}_{compile_}", profile, progress=False, batch_size=batch,
                 max_steps=2 * steps_per_epoch + 1, epochs=100, checkpoint_every=10**9, num_workers=workers,
                 swav={"queue_start_fraction": 0.0}, compile=compile_, val_batches=2, on_step=on_step,
                 **({"lr": lr} if lr is not None else {}))
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    steady = (b - a) * batch / (stamps[b] - stamps[a])
    whole = steps_per_epoch * batch / (stamps[2 * steps_per_epoch + 1] - stamps[steps_per_epoch])
    return {"trainer_img_s": steady, "epoch_img_s": whole, "gpu_busy_pct": stamps.get("busy", float("nan")),
            "peak_gib": peak, "first_step_s": s["first_step_s"], "compile": compile_}


def compute_only(method: str, profile: str, batch: int, size: int, compile_: str, steps: int = 20) -> float:
    """Images/s of the trainer's step on one batch resident on the device (no data loading)."""
    prof = resolve(profile, pretrain={"batch_size": batch})
    cfg = prof.pretrain
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_method(method, cfg).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    mode = compile_mode(dataclasses.replace(cfg, compile=compile_), dev)
    if mode:
        model.compile_encoders(mode)
    model.configure(Schedule(10**6, 10**6, 10**6))
    opt, _ = model.build_optimizer(batch)
    aug = MammoAugment(cfg.augment, size=size)
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(batch, 1, size, size, device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    warm = 3
    for k in range(steps + warm):
        if k == warm:
            _sync()
            t = time.perf_counter()
        views = [aug(x, g), aug(x, g)] if model.uses_views else [x.expand(-1, 3, -1, -1)]
        if dev.type == "cuda":
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        with amp:
            loss = model(views, 1000 + k).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.before_optimizer_step(1000 + k)
        opt.step()
        model.after_step(k, 10**6)
    _sync()
    return steps * batch / (time.perf_counter() - t)


def swav_stability(profile: str, batch: int, size: int, steps: int, epoch: int) -> list[dict]:
    """SwAV with the trainer's optimiser and schedule at the profile's learning rate (LARS 4.8 at 4096, scaled to
    ``batch``), on random tiles resident on the device, ``steps`` steps in epochs of ``epoch``: per epoch the mean
    loss, the largest |prototype score| and whether every loss was finite. The prototypes unfreeze after a tenth of
    the warm-up, the queue joins after 7.5% of the steps (the profile's settings)."""
    from lightly.utils.scheduler import cosine_warmup_schedule

    prof = resolve(profile, pretrain={"batch_size": batch})
    cfg = prof.pretrain
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = build_method("swav", cfg).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    warmup = int(round(cfg.warmup_fraction * steps))
    model.configure(Schedule(epoch, steps, warmup))
    opt, peak = model.build_optimizer(batch)
    aug = MammoAugment(cfg.augment, size=size)
    g = torch.Generator(device=dev).manual_seed(0)
    pool = torch.rand(4 * batch, 1, size, size, device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    rows, losses, top = [], [], 0.0
    for k in range(steps):
        for group in opt.param_groups:
            group["lr"] = peak * cosine_warmup_schedule(k, steps, 1.0, 0.0, warmup, 0.0)
        x = pool[torch.randint(0, len(pool), (batch,), device=dev, generator=g)]
        views = [aug(x, g), aug(x, g)]
        with amp:
            loss = model(views, k).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.before_optimizer_step(k)
        opt.step()
        with torch.no_grad():
            z = torch.nn.functional.normalize(model.projection(model.backbone(views[0][:256])).float(), dim=1)
            top = max(top, float(model.prototypes(z).abs().max()))
        losses.append(float(loss.detach()))
        if (k + 1) % epoch == 0 or k + 1 == steps:
            finite = all(math.isfinite(v) for v in losses)
            rows.append({"epoch": len(rows), "last_step": k + 1, "lr": opt.param_groups[0]["lr"],
                         "mean_loss": sum(losses) / len(losses), "max_abs_score": top, "finite": finite})
            print(f"[swav] {rows[-1]}", flush=True)
            losses, top = [], 0.0
            if not finite:
                break
    rows.append({"frozen_steps": model.frozen_steps, "queue_start": model.queue_start, "peak_lr": peak})
    return rows


def mae_flops(profile: str, batch: int) -> float:
    """FLOPs of one ViT-MAE training step per image (forward and backward, counted by torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = resolve(profile).pretrain
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_method("mae", cfg).to(dev)
    x = torch.rand(batch, 3, cfg.mae.image_size, cfg.mae.image_size, device=dev)
    counter = FlopCounterMode(display=False)
    with counter:
        model([x], 0).backward()
    return counter.get_total_flops() / batch


def finetune_memory(profile: str, batch: int, size: tuple[int, int]) -> float:
    """Peak GPU memory (GiB) of one finetuning step of the ResNet-50 whole-image classifier (GAP), bf16."""
    from mammossl_core.encoders import build_trunk
    from mammossl_core.whole_image import WholeImageClassifier

    trunk, m = build_trunk(resolve(profile).pretrain.encoder)
    model = WholeImageClassifier(trunk, m, "gap").cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    x = torch.rand(batch, 1, *size, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, _ = model(x)
    torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), torch.ones_like(logits.float())).backward()
    opt.step()
    _sync()
    return torch.cuda.max_memory_allocated() / 2**30


def predict_speed(work: Path, profile: str, patients: int, device: str) -> dict:
    """``mammossl predict`` of paper-size synthetic images with a MIP classifier (a 2-step SwAV encoder and a
    1-epoch linear head: speed, not accuracy), images/s over the whole call (reading, scoring, overlays)."""
    from mammossl_core.data.products import build_products
    from mammossl_core.data.synthetic import synthesize
    from mammossl_core.evaluate import linear_eval
    from mammossl_core.predict import predict

    prof = resolve(profile)
    d = synthesize(work / "predict_data", patients=patients, seed=1, profile=profile, progress=False, workers=None,
                   unlabeled_patients=0)
    build_products(d, prof, progress=False)
    run = work / "predict_swav"
    pretrain("swav", d, run, profile, device=device, progress=False, max_steps=2, batch_size=64, val_batches=1,
             compile="off")
    linear_eval(d, run / "best.pt", "mip", profile, work / "predict_model", device=device, linear_epochs=1)
    _sync()
    t = time.perf_counter()
    r = predict(work / "predict_model", d / "images.csv", work / "predict_out", device=device, batch_size=16,
                progress=False)
    _sync()
    dt = time.perf_counter() - t
    return {"images": r["scored"], "size": r["image_size"], "seconds": dt, "img_s": r["scored"] / dt}


def pytest_on_gpu(budget_s: float) -> dict:
    """``pytest -m gpu`` and the paper-profile smoke test of chapters 4 and 7 with ``device=cuda``."""
    out = {}
    for name, args, env in [("gpu tests", ["-m", "gpu", "tests"], {}),
                            ("paper smoke 04+07 on cuda", ["-m", "paper", "tests/test_paper_profile.py", "-k",
                                                           "04_whole_image or 07_prototypes"],
                             {"MAMMOSSL_SMOKE_DEVICE": "cuda"})]:
        t = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=REPO,
                                  env={**__import__("os").environ, **env}, capture_output=True, text=True,
                                  timeout=max(30, budget_s))
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
            out[name] = {"rc": done.returncode, "summary": tail[0] if tail else "", "s": time.perf_counter() - t}
        except subprocess.TimeoutExpired:
            out[name] = {"rc": None, "summary": "timed out", "s": time.perf_counter() - t}
        print(f"[pytest] {name}: {out[name]}", flush=True)
    return out


def memory_table(profile: str, cells: list[tuple[str, int, int]]) -> list[dict]:
    """Peak GPU memory of one eager training step per (method, tile size, batch); 'OOM' where it does not fit."""
    rows = []
    for method, size, batch in cells:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            compute_only(method, profile, batch, size, "off", steps=1)
            rows.append({"method": method, "tile": size, "batch": batch,
                         "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)})
        except torch.cuda.OutOfMemoryError:
            rows.append({"method": method, "tile": size, "batch": batch, "peak_gib": "OOM"})
        print(f"[memory] {rows[-1]}", flush=True)
    torch.cuda.empty_cache()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--patients", type=int, default=160)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which remaining sections are skipped")
    ap.add_argument("--methods", default="byol,swav,simclr,mae")
    ap.add_argument("--lr", type=float, default=None,
                    help="LARS learning rate at the reference batch (default: the profile's, 4.8)")
    ap.add_argument("--swav-steps", type=int, default=400, help="steps of the SwAV stability run")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="the card's dense bf16 peak, for ViT-MAE's FLOP bound (H100/H200 SXM: 989)")
    ap.add_argument("--compute-steps", type=int, default=20, help="timed steps of the compute-only measurement")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory table")
    ap.add_argument("--json", default=None, help="also write every figure to this file")
    ap.add_argument("--cpu-smoke", action="store_true", help="run the code paths on CPU at the tiny profile")
    a = ap.parse_args()
    t_start = time.perf_counter()
    smoke = a.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU (or --cpu-smoke)")
        return 1
    profile = "tiny" if smoke else "paper"
    prof = get_profile(profile)
    size = prof.data.tile_size
    batch = 32 if smoke else a.batch
    compiled = "off" if smoke else "default"
    if not smoke:
        torch.backends.cudnn.benchmark = True
    from mammossl_core.data.products import build_products
    from mammossl_core.data.synthetic import synthesize
    from mammossl_core.data.tiles import ImageStore, TileDataset

    work = Path(a.workdir or tempfile.mkdtemp())
    results: dict = {"card": torch.cuda.get_device_name() if not smoke else "cpu", "torch": torch.__version__,
                     "batch": batch, "tile": size, "methods": {}}
    t = time.perf_counter()
    d = synthesize(work / "synth", patients=12 if smoke else a.patients, seed=0, profile=profile, progress=False,
                   workers=None, unlabeled_patients=0)
    build_products(d, prof, progress=False)
    store = ImageStore(d)
    n_tiles = len(TileDataset(store, size, prof.data.tile_overlap, prof.data.max_background))
    print(f"[gpu] {results['card']}, torch {torch.__version__}: synthetic {profile}-size data, "
          f"{len(store.image_ids)} images, {n_tiles} tiles of {size} px, prepared in {time.perf_counter() - t:.0f} s",
          flush=True)
    epoch_tiles = PAPER_TRAIN_IMAGES * n_tiles / len(store.image_ids)

    def left() -> float:
        return a.budget - (time.perf_counter() - t_start)

    def section(name, fn):
        if left() <= 0:
            print(f"[gpu] {name}: skipped (budget of {a.budget:.0f} s spent)", flush=True)
            return None
        try:
            return fn()
        except Exception as e:  # one failing section must not cost the others' figures
            print(f"[gpu] {name}: FAILED {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            return None

    def steps_per_epoch(method: str, b: int) -> int:
        from mammossl_core.pretrain import method_config
        from mammossl_core.pretrain_data import build_dataset

        from mammossl_core.ssl import METHODS

        cfg = method_config(method, resolve(profile, pretrain={"batch_size": b}), {"batch_size": b})
        return len(build_dataset(prof, cfg, d, METHODS[method], "train")) // b

    def one_method(method: str, b: int, mode: str):
        spe = steps_per_epoch(method, b)
        r = trainer_run(method, d, work, profile, b, mode, a.workers, spe, a.lr)
        in_size = prof.pretrain.mae.image_size if method == "mae" else size
        r["compute_only_img_s"] = compute_only(method, profile, b, in_size, mode, steps=a.compute_steps)
        r["batch"], r["steps_per_epoch"] = b, spe
        if method != "mae":
            r["hours_200_epochs"] = 200 * epoch_tiles / r["trainer_img_s"] / 3600
        else:
            r["hours_200_epochs"] = 200 * PAPER_TRAIN_IMAGES / r["trainer_img_s"] / 3600
        results["methods"][f"{method}/{mode}"] = r
        print(f"[gpu] {method} ({mode}), batch {b}: trainer {r['trainer_img_s']:.0f} img/s steady, "
              f"{r['epoch_img_s']:.0f} img/s over the epoch with validation and checkpoint; compute-only "
              f"{r['compute_only_img_s']:.0f} img/s (trainer reaches {r['trainer_img_s'] / r['compute_only_img_s']:.0%}); "
              f"GPU busy {r['gpu_busy_pct']:.0f}%; peak {r['peak_gib']:.1f} GiB; first step {r['first_step_s']:.1f} s; "
              f"200 paper epochs {r['hours_200_epochs']:.2f} h", flush=True)
        return r

    methods = a.methods.split(",")
    for method in [m for m in ("byol", "swav") if m in methods]:
        section(f"{method} compiled", lambda m=method: one_method(m, batch, compiled))
    results["swav_stability"] = section("swav stability", lambda: swav_stability(
        profile, batch, size, 24 if smoke else a.swav_steps, 8 if smoke else 50))
    for method in [m for m in ("simclr", "mae") if m in methods]:
        b = prof.pretrain.mae.batch_size if method == "mae" else batch
        section(f"{method} compiled", lambda m=method, b=b: one_method(m, b, compiled))
    if "mae/" + compiled in results["methods"]:
        def bound():
            f = mae_flops(profile, 2 if smoke else prof.pretrain.mae.batch_size)
            r = {"gflop_per_image": f / 1e9, "bound_img_s": a.peak_tflops * 1e12 / f,
                 "trainer_share_of_bound": results["methods"]["mae/" + compiled]["trainer_img_s"] * f
                 / (a.peak_tflops * 1e12)}
            print(f"[mae] {r}", flush=True)
            return r
        results["mae_flop_bound"] = section("mae flop bound", bound)
    if not smoke:
        section("byol eager", lambda: one_method("byol", batch, "off"))
        results["finetune_peak_gib_1152x896_b32"] = section(
            "finetune memory", lambda: finetune_memory(profile, 32, tuple(prof.data.image_size["ddsm"])))
        print(f"[gpu] finetuning peak at 1152x896, batch 32: {results['finetune_peak_gib_1152x896_b32']} GiB",
              flush=True)
    results["predict"] = section("predict", lambda: predict_speed(work, profile, 10 if smoke else 24,
                                                                  "cpu" if smoke else "cuda"))
    print(f"[gpu] predict: {results['predict']}", flush=True)
    if not smoke and not a.no_memory:
        cells = [(m, 96, b) for m in ("byol", "swav", "simclr") for b in (1024, 2048, 4096)] + \
                [("byol", 256, 512), ("byol", 256, 1024)]
        results["memory"] = section("memory table", lambda: memory_table(profile, cells))
    if not smoke:
        results["pytest"] = section("pytest on cuda", lambda: pytest_on_gpu(left()))
    results["wall_s"] = time.perf_counter() - t_start
    print("\n| method | mode | batch | trainer img/s | epoch img/s | compute-only img/s | GPU busy % | peak GiB | "
          "first step s | 200 epochs h |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, r in results["methods"].items():
        m, mode = key.split("/")
        print(f"| {m} | {mode} | {r['batch']} | {r['trainer_img_s']:.0f} | {r['epoch_img_s']:.0f} | "
              f"{r['compute_only_img_s']:.0f} | {r['gpu_busy_pct']:.0f} | {r['peak_gib']:.1f} | "
              f"{r['first_step_s']:.1f} | {r['hours_200_epochs']:.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=lambda o: None if isinstance(o, float)
                                           and math.isnan(o) else str(o)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
