"""The ``mammossl`` command line. Each subcommand is a thin wrapper over a package function."""
from __future__ import annotations

import argparse
import json
import sys

from .config import PROFILES, get_profile


def _add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=sorted(PROFILES), default="tiny", help="size/hyperparameter profile")


def cmd_synth(a: argparse.Namespace) -> int:
    from .data.synthetic import synthesize

    overrides = {k: v for k, v in (("lesion_contrast", a.lesion_contrast), ("lesion_size", a.lesion_size)) if v is not None}
    out = synthesize(a.out, patients=a.patients, seed=a.seed, profile=a.profile, domain=a.domain,
                     workers=a.workers, **overrides)
    print(json.dumps(json.loads((out / "dataset.json").read_text())["counts"], indent=2))
    return 0


def cmd_tiles(a: argparse.Namespace) -> int:
    from .data.tiles import TileStore

    prof = get_profile(a.profile)
    store, failures = TileStore.build(a.data)
    for f in failures:
        print(f"FAILED {f['path']}: {f['error']}", file=sys.stderr)
    patch = a.patch or prof.data.tile_size
    overlap = prof.data.tile_overlap if a.overlap is None else a.overlap
    max_bg = prof.data.max_background if a.max_background is None else a.max_background
    idx = store.index(patch, overlap, max_bg)
    print(f"{len(store.image_ids)} images stored, {len(failures)} failed; "
          f"{len(idx)} tiles of {patch}px (overlap {overlap}, background <= {max_bg})")
    if a.annotated:
        from .data.patches import build_annotated_patches

        d = build_annotated_patches(a.data, a.annotated_size or prof.data.annotated_patch, seed=a.seed)
        print(f"annotated patches in {d}")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mammossl", description="Self-supervised learning on screening mammograms "
                                 "(a reproduction of Miller et al.).")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate the synthetic mammogram dataset")
    p.add_argument("--out", required=True, help="output directory (prepared-dataset layout)")
    p.add_argument("--patients", type=int, default=None, help="number of patients (profile default)")
    p.add_argument("--seed", type=int, default=0)
    _add_profile(p)
    p.add_argument("--domain", choices=["ddsm", "cmmd"], default="ddsm", help="film (ddsm) or digital (cmmd)")
    p.add_argument("--lesion-contrast", type=float, default=None, help="difficulty: lesion contrast")
    p.add_argument("--lesion-size", type=float, default=None, help="difficulty: lesion size multiplier")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("tiles", help="build the 16-bit tile store and a tile index (paper III.C)")
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--patch", type=int, default=None, help="tile side in pixels (profile default)")
    p.add_argument("--overlap", type=float, default=None, help="overlap between tiles (default 0.5)")
    p.add_argument("--max-background", type=float, default=None, help="drop tiles with more background (0.2)")
    p.add_argument("--annotated", action="store_true", help="also build the annotated patch set (paper III.A)")
    p.add_argument("--annotated-size", type=int, default=None, help="annotated patch side (profile default)")
    p.add_argument("--seed", type=int, default=0)
    _add_profile(p)
    p.set_defaults(func=cmd_tiles)

    from .pretrain import add_arguments, run_from_args

    p = sub.add_parser("pretrain", help="SSL pretraining (SimCLR, BYOL, SwAV, ViT-MAE); same as torchrun -m mammossl_core.pretrain")
    add_arguments(p)
    p.set_defaults(func=lambda a: print(json.dumps(run_from_args(a), indent=2)))
    return ap


def main(argv: list[str] | None = None) -> int:
    from .data.layout import DataError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, ValueError, FileNotFoundError) as e:
        print(f"mammossl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
