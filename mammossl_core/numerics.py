"""The numerics fingerprint: which floating-point results this machine and its libraries give.

The tiny profile is deterministic on one machine, but not across machines: the CPU's instruction set (AVX-512 or
AVX2, Intel or AMD) selects different kernels in oneDNN, MKL, ATen and NumPy, whose roundings differ in the last
bits (a new release of one of the libraries can do the same), and a thousand steps of training turn those bits into
different models. :func:`fingerprint` runs a small fixed probe through those kernels (a convolution's forward and
backward with batch norm, a matrix product, torch's and NumPy's transcendental functions, an FFT) with the process's
thread count, and hashes the resulting bits together with the versions of the libraries that compute the book. Two
builds with the same fingerprint are expected to give the same numbers; different fingerprints may give different
ones (equal fingerprints do not prove it: the probe covers the kernels, not every path through them).

Example::

    >>> from mammossl_core.numerics import fingerprint
    >>> fingerprint()["fingerprint"]  # doctest: +SKIP
    'a41c0e9b2f7d'
"""
from __future__ import annotations

import hashlib
import platform
from importlib import metadata

import numpy as np
import torch

#: the libraries whose versions are part of the fingerprint (those that compute the book's numbers)
LIBRARIES = ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "scikit-image", "lightly")


def _probe() -> list[np.ndarray]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=g, requires_grad=True)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    bn = torch.nn.BatchNorm2d(8)
    lin = torch.nn.Linear(8, 4)
    with torch.no_grad():
        for p in (*conv.parameters(), *lin.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    h = torch.nn.functional.max_pool2d(torch.relu(bn(conv(x))), 2)
    y = lin(h.mean((2, 3)))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(y, torch.sigmoid(y.detach() * 0.5))
    loss.backward()
    a, b = torch.randn(96, 96, generator=g), torch.randn(96, 96, generator=g)
    v = torch.linspace(-4, 4, 4099)
    t = [y, loss, x.grad, conv.weight.grad, a @ b, torch.exp(v), torch.tanh(v), torch.sigmoid(v),
         torch.nn.functional.gelu(v), torch.log1p(v.abs())]
    r = np.random.default_rng(0)
    u64, u32 = r.standard_normal(4099) * 4, (r.standard_normal(4099) * 4).astype(np.float32)
    n = [f(u) for u in (u64, u32) for f in (np.exp, np.sin, np.cos, np.tanh)]
    n += [np.log1p(np.abs(u)) for u in (u64, u32)]
    n.append(np.fft.rfft2(r.standard_normal((64, 64))))
    return [z.detach().numpy() for z in t] + [np.asarray(z) for z in n]


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fingerprint() -> dict:
    """``{"fingerprint": 12 hex digits, "cpu": model name, "threads": torch's threads, "versions": {...}}``."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    h = hashlib.sha256()
    with torch.random.fork_rng(devices=[]):  # the modules' own initialisation draws from the global generator
        arrays = _probe()
    for arr in arrays:
        h.update(np.ascontiguousarray(arr).tobytes())
    threads = torch.get_num_threads()
    h.update(repr((sorted(versions.items()), threads)).encode())
    return {"fingerprint": h.hexdigest()[:12], "cpu": _cpu(), "threads": threads, "versions": versions}
