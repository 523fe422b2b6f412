"""The ``mammossl`` command line. Each subcommand is a thin wrapper over a package function."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from . import __version__
from .config import DEFAULT_PROFILE, PROFILES, resolve

#: every command and its one line of help: ``mammossl --help`` lists them without importing torch or lightly
COMMANDS = {
    "synth": "generate the synthetic mammogram dataset",
    "tiles": "build the 16-bit tile store and a tile index (paper III.C)",
    "prepare": "convert a TCIA download (CBIS-DDSM or CMMD) or any DICOM folder into a prepared dataset",
    "pretrain": "SSL pretraining (SimCLR, BYOL, SwAV, ViT-MAE); same as torchrun -m mammossl_core.pretrain",
    "evaluate": "linear evaluation, finetuning, supervised baseline, annotated patches",
    "analyse": "attention heatmaps and localisation, SwAV prototypes, loss vs AUC",
    "predict": "score your own mammograms with a trained classifier; attention overlays",
    "book": "execute the chapter notebooks and build the book (mammossl book run|build|all|seeds|replicates|confirm|confirm-check|nbval-record)",
}
DESCRIPTION = "Self-supervised learning on screening mammograms (a reproduction of Miller et al.)."


def _add_profile(p: argparse.ArgumentParser, reads_checkpoint: bool = False) -> None:
    default = "the checkpoint's profile" if reads_checkpoint else DEFAULT_PROFILE
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help=f"size/hyperparameter profile (default: {default})")


def _add_prepare_common(q: argparse.ArgumentParser) -> None:
    """Options shared by both converters."""
    q.add_argument("--out", required=True, help="output prepared-dataset directory (re-runs resume)")
    q.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    q.add_argument("--seed", type=int, default=0, help="split seed")
    q.add_argument("--profile", choices=sorted(PROFILES), default="paper",
                   help="image size of the converted dataset (default: paper, the sizes of section III; "
                   "every later command reads the size from the prepared images)")
    q.set_defaults(func=cmd_prepare)


def cmd_synth(a: argparse.Namespace) -> int:
    from .data.synthetic import synthesize

    overrides = {k: v for k, v in (("lesion_contrast", a.lesion_contrast), ("lesion_size", a.lesion_size),
                                   ("unlabeled_patients", a.unlabeled)) if v is not None}
    if a.format == "dicom":  # the prepared dataset goes beside the tree, the DICOM files under --out
        import tempfile
        from pathlib import Path

        from .data.dicom_export import write_dicom_tree

        with tempfile.TemporaryDirectory(dir=Path(a.out).parent if Path(a.out).parent.exists() else None) as tmp:
            prepared = synthesize(Path(tmp) / "prepared", patients=a.patients, seed=a.seed, profile=a.profile,
                                  domain=a.domain, workers=a.workers, **overrides)
            counts = json.loads((prepared / "dataset.json").read_text())["counts"]
            root = write_dicom_tree(prepared, a.out)
        print(json.dumps(counts, indent=2))
        print(f"DICOM files under {root}, breast labels in {root / 'labels.csv'}; next: mammossl prepare folder "
              f"--dicom-root {root} --labels {root / 'labels.csv'} --out DIR")
        return 0
    out = synthesize(a.out, patients=a.patients, seed=a.seed, profile=a.profile, domain=a.domain,
                     workers=a.workers, **overrides)
    print(json.dumps(json.loads((out / "dataset.json").read_text())["counts"], indent=2))
    return 0


def cmd_tiles(a: argparse.Namespace) -> int:
    """The one builder of a dataset's data products: image store, tile indexes, annotated patches."""
    from .data.patches import build_annotated_patches
    from .data.products import build_products
    from .data.tiles import ImageStore

    prof = resolve(a.profile)
    failures = build_products(a.data, prof)
    for f in failures:
        print(f"FAILED {f['path']}: {f['error']}", file=sys.stderr)
    patch = a.patch or prof.data.tile_size
    overlap = prof.data.tile_overlap if a.overlap is None else a.overlap
    max_bg = prof.data.max_background if a.max_background is None else a.max_background
    store, _ = ImageStore.build(a.data, tilings=((patch, overlap, max_bg),))
    idx = store.index(patch, overlap, max_bg)
    print(f"{len(store.image_ids)} images stored, {len(failures)} failed; "
          f"{len(idx)} tiles of {patch}px (overlap {overlap}, background <= {max_bg})")
    if a.annotated:
        d = build_annotated_patches(a.data, a.annotated_size or prof.data.annotated_patch, seed=prof.pretrain.seed)
        print(f"annotated patches in {d}")
    return 1 if failures else 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cmd_prepare(a: argparse.Namespace) -> int:
    from .data.convert import converters

    s = converters()[a.dataset].run(a)
    print(json.dumps({k: s[k] for k in ("counts", "paper_counts", "written", "skipped", "failed") if k in s},
                     indent=2))
    if s["failed"]:
        print(f"mammossl prepare: {s['failed']} file(s) failed; see {a.out}/report.csv", file=sys.stderr)
        return 1
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from .predict import predict

    s = predict(a.model, a.input, a.out, device=a.device, batch_size=a.batch_size, raw=a.raw)
    print(json.dumps(s, indent=2))
    if s["failed"]:
        print(f"mammossl predict: {s['failed']} file(s) could not be scored; see {a.out}/report.csv", file=sys.stderr)
        return 1
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from . import evaluate as E
    from .loading import checkpoint_path, profile_of
    from .patch_eval import patch_linear_eval

    epochs_key = {"linear": "linear_epochs", "finetune": "finetune_epochs", "supervised": "supervised_epochs",
                  "patches": "linear_epochs"}[a.protocol]
    overrides = {epochs_key: a.epochs} if a.epochs else {}
    ck = None if a.checkpoint is None else checkpoint_path(a.checkpoint)
    profile = a.profile or profile_of(ck)
    if a.protocol == "patches":
        res = patch_linear_eval(a.data, ck, profile, a.out, seed=a.seed, device=a.device, **overrides)
    else:
        fn = {"linear": E.linear_eval, "finetune": E.finetune, "supervised": E.supervised}[a.protocol]
        kw = dict(pooling=a.pooling, profile=profile, label_fraction=a.label_fraction, seed=a.seed,
                  device=a.device, **overrides)
        if a.protocol == "supervised":
            kw["encoder"] = a.encoder
        else:
            kw["checkpoint"] = ck
            if a.protocol == "linear":
                kw["encoder"] = a.encoder
        if a.cv:
            res = E.cross_validate(fn, a.data, a.cv, out=a.out, **kw)
        else:
            res = fn(a.data, out=a.out, split=a.split, **kw)
    print(json.dumps(dataclasses.asdict(res), indent=2, default=str))
    return 0


def cmd_analyse(a: argparse.Namespace) -> int:
    if a.analysis == "attention":
        from .analysis.attention import report

        res = report(a.data, a.linear_out, a.out, a.split, a.show, a.device)
    elif a.analysis == "prototypes":
        from .analysis.prototypes import report
        from .loading import checkpoint_path

        res = report(checkpoint_path(a.checkpoint), a.data, a.out, a.profile, a.tiles, seed=a.seed, device=a.device)
    else:
        from .analysis.selection import report

        overrides = {"linear_epochs": a.epochs} if a.epochs else {}
        res = report(a.run, a.data, a.out, a.pooling, a.profile, device=a.device, **overrides)
    print(json.dumps(res, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .pooling import POOLINGS

    ap = argparse.ArgumentParser(prog="mammossl", description=DESCRIPTION)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help=COMMANDS["synth"])
    p.add_argument("--out", required=True, help="output directory (prepared-dataset layout)")
    p.add_argument("--patients", type=int, default=None, help="number of patients (profile default)")
    p.add_argument("--seed", type=int, default=0)
    _add_profile(p)
    p.add_argument("--domain", choices=["ddsm", "cmmd"], default="ddsm", help="film (ddsm) or digital (cmmd)")
    p.add_argument("--unlabeled", type=int, default=None, metavar="N",
                   help="patients of the unlabelled pool (split 'unlabeled', read by pretraining; default: the profile's)")
    p.add_argument("--lesion-contrast", type=float, default=None, help="difficulty: median lesion contrast")
    p.add_argument("--lesion-size", type=float, default=None, help="difficulty: lesion size multiplier")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--format", choices=["png", "dicom"], default="png",
                   help="png: a prepared dataset at --out; dicom: mammography DICOM files in a TCIA-like tree at "
                        "--out (for `mammossl prepare folder` and `mammossl predict`)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("tiles", help=COMMANDS["tiles"])
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--patch", type=int, default=None, help="tile side in pixels (profile default)")
    p.add_argument("--overlap", type=float, default=None, help="overlap between tiles (default 0.5)")
    p.add_argument("--max-background", type=float, default=None, help="drop tiles with more background (0.2)")
    p.add_argument("--annotated", action="store_true", help="also build the annotated patch set (paper III.A)")
    p.add_argument("--annotated-size", type=int, default=None, help="annotated patch side (profile default)")
    _add_profile(p)
    p.set_defaults(func=cmd_tiles)

    from .data.convert import converters

    p = sub.add_parser("prepare", help=COMMANDS["prepare"])
    psub = p.add_subparsers(dest="dataset", required=True)
    for c in converters().values():
        q = psub.add_parser(c.name, help=c.help, description=c.description)
        c.add_arguments(q)
        _add_prepare_common(q)

    p = sub.add_parser("predict", help=COMMANDS["predict"],
                       description="Score DICOM files, 16-bit PNGs or a prepared dataset's images.csv with a trained "
                       "whole-image classifier (the --out of `mammossl evaluate linear|finetune|supervised`). "
                       "Writes predictions.csv (per image), breasts.csv (per breast), overlays/ (MIP and SA) and "
                       "index.html; files that cannot be read are listed in report.csv and the exit code is 1.")
    p.add_argument("--model", required=True, help="evaluation output directory (result.json + head.pt/model.pt)")
    p.add_argument("--input", required=True, help="a DICOM or PNG file, a folder of them, or a dataset's images.csv")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--raw", action="store_true", help="DICOM: keep the stored values (no modality/VOI LUT)")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help=COMMANDS["evaluate"])
    p.add_argument("protocol", choices=["linear", "finetune", "supervised", "patches"])
    p.add_argument("--data", required=True, help="prepared dataset directory (may differ from the pretraining one)")
    p.add_argument("--checkpoint", default=None, help="pretraining run directory or .pt (none: random encoder)")
    p.add_argument("--pooling", choices=sorted(POOLINGS), default="gap")
    p.add_argument("--out", required=True, help="output directory (result.json, predictions.csv)")
    p.add_argument("--encoder", default=None, help="encoder for random/supervised models (profile default)")
    p.add_argument("--split", default="split", help="split column: split, or fold0..fold4 of folds.csv")
    p.add_argument("--cv", type=int, default=None, help="k-fold cross-validation over folds.csv (mean, SE)")
    p.add_argument("--label-fraction", type=float, default=1.0, help="share of training patients (Fig. 5)")
    p.add_argument("--epochs", type=int, default=None, help="override the protocol's number of epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    _add_profile(p, reads_checkpoint=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("analyse", help=COMMANDS["analyse"])
    asub = p.add_subparsers(dest="analysis", required=True)
    q = asub.add_parser("attention", help="MIP/SA heatmaps (Fig. 4) and the localisation score on lesion masks",
                        description="Loads a MIP or SA linear evaluation (its --out of `mammossl evaluate linear`) "
                        "and writes heatmaps.png, localisation.csv and localisation.json.")
    q.add_argument("--linear-out", required=True, help="output directory of a MIP/SA evaluation (any protocol)")
    q.add_argument("--split", default="test", help="images to score (default test)")
    q.add_argument("--show", type=int, default=6, help="malignant images in the heatmap figure")
    q = asub.add_parser("prototypes", help="SwAV prototypes: UMAP, nearest patches, class enrichment (Fig. 6)")
    q.add_argument("--checkpoint", required=True, help="SwAV pretraining run directory or .pt")
    q.add_argument("--tiles", type=int, default=2000, help="tiles sampled for the UMAP")
    q.add_argument("--seed", type=int, default=0)
    q = asub.add_parser("selection", help="validation pretraining loss vs linear-evaluation AUC (Supp. Fig. 2)")
    q.add_argument("--run", required=True, help="pretraining run directory with epoch_*.pt checkpoints")
    q.add_argument("--pooling", choices=sorted(POOLINGS), default="gap")
    q.add_argument("--epochs", type=int, default=None, help="linear-evaluation epochs (profile default)")
    for q in asub.choices.values():
        q.add_argument("--data", required=True, help="prepared dataset directory")
        q.add_argument("--out", required=True, help="output directory for figures and tables")
        q.add_argument("--device", default="cuda" if _cuda() else "cpu")
        _add_profile(q, reads_checkpoint=True)
        q.set_defaults(func=cmd_analyse)

    from .pretrain import add_arguments, run_from_args

    p = sub.add_parser("pretrain", help=COMMANDS["pretrain"])
    add_arguments(p)
    p.set_defaults(func=lambda a: print(json.dumps(run_from_args(a), indent=2)))
    return ap


def overview_parser() -> argparse.ArgumentParser:
    """``mammossl --help`` and ``--version``: the commands and the global options, built without importing torch
    (a command's own options come with ``mammossl COMMAND --help``)."""
    ap = argparse.ArgumentParser(prog="mammossl", description=DESCRIPTION,
                                 epilog="`mammossl COMMAND --help` lists a command's options.")
    ap.add_argument("--version", action="version", version=f"mammossl {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging, library warnings shown")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars, errors only")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text)
    return ap


def _verbosity(argv: list[str]) -> list[str]:
    """Apply the global ``-v``/``-q`` options in front of the command (before anything imports tqdm) and return
    the rest of the command line."""
    import logging
    import os

    level = None  # Python's default: warnings and errors of the libraries' loggers
    while argv and argv[0] in ("-v", "--verbose", "-q", "--quiet"):
        if argv[0] in ("-q", "--quiet"):
            level = logging.ERROR
            os.environ["TQDM_DISABLE"] = "1"  # tqdm reads its switch when it is imported
        else:
            level = logging.DEBUG
            import warnings

            warnings.simplefilter("default")
        argv = argv[1:]
    if level is not None:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = _verbosity(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help", "--version") or argv[0] not in COMMANDS:
        overview_parser().parse_args(argv or ["--help"])  # prints the overview (or the error) and exits
    from .data.layout import DataError

    if argv[0] == "book":  # `mammossl book run|build|all ...`
        from .book import main as book_main

        return book_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, ValueError, FileNotFoundError) as e:
        print(f"mammossl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
