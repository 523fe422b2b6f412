"""Pretraining on every GPU of the machine from Python (notebooks, the artefact cache): one ``torchrun`` process
per GPU running :mod:`mammossl_core.pretrain`, with the caller's resolved profile passed as a file, so that the
run is the one that a call of :func:`~mammossl_core.pretrain.pretrain` would make, on the global batch over all
processes (the learning rate follows it by the linear rule when it has to shrink: see
:func:`~mammossl_core.pretrain.fitting_batch`).

>>> processes(None, "cuda")  # doctest: +SKIP
4
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from .config import Profile
from .io import write_json


def processes(gpus: int | None, device: str | None) -> int:
    """How many processes a run uses: ``gpus`` if given, else every visible GPU (1 on a CPU)."""
    if gpus is not None:
        if gpus < 1:
            raise ValueError(f"gpus={gpus}: use 1 or more (or None for every visible GPU)")
        return gpus
    cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    return max(torch.cuda.device_count(), 1) if cuda else 1


def torchrun(method: str, data, out, prof: Profile, overrides: dict, nproc: int, device: str | None = None) -> dict:
    """Run ``pretrain(method, data, out, prof, resume=True, **overrides)`` in ``nproc`` processes on this machine
    (``torchrun --standalone``; NCCL on GPUs, gloo on CPU) and return its summary. An interrupted run resumes from
    its ``last.pt``; a failed one raises with the end of its output."""
    out = Path(out)
    spec = out / "launch.json"
    write_json(spec, {"profile": prof.to_dict(), "overrides": overrides})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "mammossl_core.pretrain", "--method", method, "--data", str(data), "--out", str(out),
           "--profile-file", str(spec), "--resume"]
    if device:
        cmd += ["--device", str(device)]
    env = dict(os.environ)
    if not (device is None or str(device).startswith("cuda")):
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{method} pretraining on {nproc} processes failed (exit {done.returncode}); "
                           f"run directory {out}, command: {' '.join(cmd)}\n{done.stderr[-4000:]}")
    return json.loads((out / "summary.json").read_text())
