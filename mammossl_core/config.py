"""Every size and hyperparameter of the project, named once.

Two profiles exist:

* ``paper``: the sizes and hyperparameters of Miller et al. (sections III-VI).
* ``tiny``: the same pipeline scaled down so that the whole book runs on 2 CPU cores in minutes.

Notebooks and the command line read values from here and may override them with
:func:`get_profile` (``get_profile("tiny", pretrain={"epochs": 3})``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataConfig:
    """Image sizes and patch sets (paper section III)."""

    #: whole-image size (height, width) per domain; paper III.A (1152x896) and III.B (1147x957)
    image_size: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"ddsm": (1152, 896), "cmmd": (1147, 957)}
    )
    #: tiled patch sizes tried in Table 2; the paper keeps 96
    tile_sizes: tuple[int, ...] = (64, 96, 128, 256)
    tile_size: int = 96
    #: overlap between neighbouring tiles (III.C)
    tile_overlap: float = 0.5
    #: tiles with more background than this are dropped (III.C)
    max_background: float = 0.2
    #: annotated patch side (III.A)
    annotated_patch: int = 224
    #: default split ratios: CBIS-DDSM 7:1:2 (III.A), CMMD 3:1:1 (III.B)
    split_ratios: dict[str, tuple[int, int, int]] = field(
        default_factory=lambda: {"ddsm": (7, 1, 2), "cmmd": (3, 1, 1)}
    )
    #: CMMD cross-validation folds (VI)
    cv_folds: int = 5


@dataclass(frozen=True)
class SynthConfig:
    """Defaults of the synthetic mammogram generator (the embedded dataset)."""

    patients: int = 400
    #: share of breasts carrying a malignant / a benign lesion (the rest are normal)
    malignant_fraction: float = 0.4
    benign_fraction: float = 0.35
    #: patients of the unlabelled pool (split "unlabeled"): screening exams without labels that pretraining reads
    #: beside the labelled training split; evaluation never does
    unlabeled_patients: int = 1200
    #: difficulty: median lesion contrast against the surrounding tissue (fraction of the breast signal); each
    #: lesion draws its own, log-uniformly within a factor ``lesion_contrast_spread`` of it, the same for both
    #: pathologies, so that a faint lesion in dense tissue is as dim as the tissue and a bright one stands out
    lesion_contrast: float = 0.27
    lesion_contrast_spread: float = 2.0
    #: calcifications' median contrast, times ``lesion_contrast`` (calcium attenuates more than soft tissue)
    calc_contrast: float = 2.0
    #: difficulty: lesion size multiplier (1.0 = masses of 18-40 px radius at 1152 rows)
    lesion_size: float = 2.0
    #: power-law exponent of the fibroglandular texture spectrum (1/f^beta, measured ~3 in real films)
    texture_beta: float = 3.0
    #: share of malignant lesions drawn as an architectural distortion (spicules and pulled-in tissue, no mass)
    distortion_share: float = 0.1
    #: mimics: findings of normal tissue that a brightness detector flags, drawn in every breast whatever its
    #: pathology, each kind with this probability per breast (summation density: overlapping tissue seen in one view;
    #: focal asymmetry; vascular calcifications along a vessel; skin calcifications with lucent centres)
    summation_rate: float = 0.6
    asymmetry_rate: float = 0.25
    vascular_rate: float = 0.6
    skin_calc_rate: float = 0.6


#: texture and intensity of real films, the realism targets of the synthetic generator: 8 CBIS-DDSM full mammograms
#: averaged down by 4 (about 1152x896), measured with ``shared/realfmt/texture_stats.py`` (its README): per-image
#: median spectral slope 2.97-3.29 (the range asked of the generator: 2.9-3.3), breast 18-35% of the film, breast
#: intensity percentiles about 0.11 / 0.43 / 0.70 of the 16-bit range ("about": +-0.05 is accepted)
REAL_FILMS = {
    "ranges": {"beta": (2.9, 3.3), "breast_fraction": (0.18, 0.35), "p5": (0.11, 0.11), "p50": (0.43, 0.43),
               "p95": (0.70, 0.70)},
    "tolerance": {"beta": 0.0, "breast_fraction": 0.0, "p5": 0.05, "p50": 0.05, "p95": 0.05},
}


@dataclass(frozen=True)
class SimCLRConfig:
    """SimCLR (V.B)."""

    #: NT-Xent temperature
    temperature: float = 0.5


@dataclass(frozen=True)
class BYOLConfig:
    """BYOL (V.B)."""

    #: EMA decay of the target network at the start (cosine schedule to 1)
    momentum: float = 0.99


@dataclass(frozen=True)
class SwAVConfig:
    """SwAV (V.B; IV.B on the annotated patch set)."""

    temperature: float = 0.1
    sinkhorn_epsilon: float = 0.05
    prototypes: int = 20
    queue_length: int = 3000
    #: the queue joins Sinkhorn after this share of the run: the reference starts it at epoch 15 of 200 (batch 256),
    #: once the projections it stores have stopped moving fast
    queue_start_fraction: float = 0.075
    #: the prototypes stay fixed for this share of the warm-up steps (at least one step): the reference's 313 of
    #: 3,130 at batch 4096. A share of the schedule, so that a run of any length unfreezes them early
    freeze_share_of_warmup: float = 0.1
    #: on the annotated patch set (IV.B): 50 prototypes, queue of 300
    prototypes_annotated: int = 50
    queue_length_annotated: int = 300


@dataclass(frozen=True)
class MAEConfig:
    """ViT-MAE on whole images (V.B): AdamW, its own batch, the ViT and decoder sizes."""

    lr: float = 0.0024
    weight_decay: float = 0.05
    batch_size: int = 32
    mask_ratio: float = 0.75
    patch: int = 16
    #: whole images are resized to this square for the ViT (a fixed token grid); not stated in the paper
    image_size: int = 512
    #: ViT encoder and MAE decoder sizes (ViT-B/16 and He et al.'s light decoder at the paper profile)
    layers: int = 12
    heads: int = 12
    hidden: int = 768
    mlp: int = 3072
    decoder_layers: int = 1
    decoder_dim: int = 512
    decoder_heads: int = 16


@dataclass(frozen=True)
class PretrainConfig:
    """SSL pretraining (sections IV.A, V.A-B)."""

    encoder: str = "resnet50"
    epochs: int = 200
    batch_size: int = 4096
    #: LARS learning rate at the reference batch size, scaled linearly (V.A: 4.8 at 4096)
    lr: float = 4.8
    lr_reference_batch: int = 4096
    weight_decay: float = 1.5e-6
    #: share of the steps spent in the linear warm-up before the cosine decay (10 of 200 epochs)
    warmup_fraction: float = 0.05
    #: augmentation pipeline (IV.A: crop, gamma and contrast)
    augment: str = "crop+gamma+contrast"
    #: what to pretrain on: "tiles" (tiled patches, V) or "annotated" (the annotated patch set, IV)
    source: str = "tiles"
    #: the split column whose "train" (and "unlabeled") images are pretrained on: "split", or a fold of folds.csv
    #: ("fold0"...) so that a cross-validation fold's test images are never seen in pretraining
    split: str = "split"
    #: LARS momentum
    momentum: float = 0.9
    checkpoint_every: int = 500
    #: also keep a checkpoint of every epoch (for validation loss vs AUC, Supp. Fig. 2)
    keep_epoch_checkpoints: bool = False
    #: losses are checked and logged every this many steps (one device sync each time)
    log_every: int = 10
    #: stop after this many steps (the schedule still spans ``epochs``); None = run all epochs
    max_steps: int | None = None
    #: validation pretraining loss on at most this many batches per epoch (model selection, Supp. Fig. 2)
    val_batches: int = 20
    num_workers: int = 4
    seed: int = 0
    #: ``torch.compile`` mode of the encoders: "auto" (compile on CUDA with the default mode, eager on CPU where
    #: compiling does not pay for the tiny trunk), "off", or a torch.compile mode ("default",
    #: "reduce-overhead", "max-autotune-no-cudagraphs")
    compile: str = "auto"
    #: projection (and BYOL prediction) head sizes of SimCLR, BYOL and SwAV
    projection_dim: int = 128
    hidden_dim: int = 2048
    #: each method's own settings (V.B), one section per method of :data:`mammossl_core.ssl.METHODS`
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig)
    byol: BYOLConfig = field(default_factory=BYOLConfig)
    swav: SwAVConfig = field(default_factory=SwAVConfig)
    mae: MAEConfig = field(default_factory=MAEConfig)
    #: pretraining on the annotated patch set (IV.A-B, Table 1 and Fig. 3): epochs, batch and LARS learning rate
    #: (IV.A: BYOL at batch 2048, base learning rate 0.4)
    annotated_epochs: int = 200
    annotated_batch_size: int = 2048
    annotated_lr: float = 0.4
    #: a global batch per tile size where the default does not fit (256 px tiles: 2048, lr scaled to 2.4)
    batch_size_by_tile: dict[int, int] = field(default_factory=lambda: {256: 2048})
    #: the largest batch per GPU by the card's memory (GiB -> images): ResNet-50 on 96 px tiles in bf16 took 64-67 GiB
    #: at 4096, so about 16 MiB an image. A run whose global batch does not fit its GPUs shrinks the global batch to
    #: what fits, and the learning rate follows by the linear rule (``lr * batch / lr_reference_batch``); {} = no cap
    batch_per_gpu_by_memory: dict[int, int] = field(default_factory=lambda: {80: 4096, 40: 2048, 24: 1024, 16: 512})


@dataclass(frozen=True)
class EvalConfig:
    """Linear evaluation, finetuning and the supervised baseline (IV.B, V.B-C)."""

    batch_size: int = 32
    linear_epochs: int = 100
    linear_lr: float = 1e-4
    linear_weight_decay: float = 1e-3
    patch_linear_lr: float = 1e-3
    patch_linear_weight_decay: float = 0.01
    finetune_epochs: int = 50
    finetune_lr: float = 1e-5
    finetune_weight_decay: float = 0.01
    supervised_epochs: int = 200
    supervised_lr: float = 1e-4
    label_fractions: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90, 1.0)
    mip_hidden: int = 512
    bootstrap: int = 2000
    #: tiled patches that set a random encoder's batch-norm statistics (the "BatchNorm re-estimated" baseline)
    bn_tiles: int = 8192
    #: GAP's linear layer as an L2 logistic regression fitted to convergence (L-BFGS) on the pooled frozen features,
    #: its inverse regularisation from ``linear_head_cs`` by patient-grouped cross-validation (``linear_head_folds``
    #: folds, AUC) inside the training split; MIP starts from that solution with uniform attention (exactly GAP) and
    #: its Adam epochs keep it unless validation prefers one. Off: the paper's Adam epochs from random weights
    converged_linear_head: bool = False
    linear_head_cs: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    linear_head_folds: int = 3
    #: with the converged linear layer: MIP's attention fitted from this many random starts of its gates (``V``,
    #: ``U``; each from the same GAP solution), the members' logits averaged (a mean over restarts instead of one
    #: draw of the attention's starting point)
    mip_restarts: int = 1


@dataclass(frozen=True)
class BookConfig:
    """What the chapters run at a profile: grids, encoder lists and sample sizes that the CPU budget of the tiny
    profile shrinks (each chapter states its reduction)."""

    #: chapter 1: transforms of the pairwise grid (Fig. 3A)
    transforms: tuple[str, ...] = ("crop", "brightness", "contrast", "gamma", "blur", "equalize", "sharpen",
                                   "highpass")
    #: chapter 2: the paper's patch side that each of ``DataConfig.tile_sizes`` stands for (Table 2)
    paper_tile_sizes: tuple[int, ...] = (64, 96, 128, 256)
    #: chapters 4 and 5: the poolings whose rows run (at the tiny profile one self-attention layer over the 32x24
    #: grid costs more than the rest of chapter 4, so SA is left out)
    poolings: tuple[str, ...] = ("gap", "mip", "sa")
    #: chapter 4: MIP trained end to end from random initialisation (the supervised baseline with MIP pooling) as a
    #: reference row of the localisation table; no claim reads it
    supervised_mip_reference: bool = True
    #: chapter 5: the (method, pooling) rows of Table 3 that are finetuned, of :attr:`poolings` (SwAV GAP, which the
    #: chapter's claims read, is run at every profile)
    finetune_table3: tuple[tuple[str, str], ...] = (("byol", "gap"), ("byol", "mip"), ("byol", "sa"),
                                                    ("swav", "gap"), ("swav", "mip"))
    #: chapter 6: the larger encoders (Table 4) and whether they are finetuned too
    larger_encoders: tuple[str, ...] = ("resnet50x2", "resnet152")
    finetune_larger_encoders: bool = True
    #: a cap on the larger encoders' pretraining steps (None: the whole schedule)
    larger_encoder_max_steps: int | None = None
    #: chapter 7: tiled patches embedded for the UMAP (Fig. 6: 50,000)
    umap_tiles: int = 50000
    #: chapter 8: how many of the dataset's ``DataConfig.cv_folds`` folds run (each with its own CMMD pretraining
    #: on that fold's training images)
    cv_folds_run: int = 5
    #: chapter 8: the (pretraining set, pooling) rows of Table 5 cross-validated with linear evaluation, and those
    #: also finetuned (the claims read DDSM and CMMD GAP linear, DDSM GAP finetuned)
    cv_linear: tuple[tuple[str, str], ...] = (("DDSM", "gap"), ("DDSM", "mip"), ("CMMD", "gap"), ("CMMD", "mip"))
    cv_finetune: tuple[tuple[str, str], ...] = (("DDSM", "gap"), ("DDSM", "mip"), ("CMMD", "gap"), ("CMMD", "mip"))
    #: the chapters that ``mammossl book seeds`` re-executes at other dataset seeds, and those seeds (the book's own
    #: seed is the chapters' ``seed`` parameter, 0)
    seed_chapters: tuple[str, ...] = ("04", "05")
    other_seeds: tuple[int, ...] = (1, 2)
    #: chapter 9: patients of the book's dataset written as DICOM files (2 patients: 8 films), and the pretraining
    #: steps on them
    own_patients: int = 2
    own_pretrain_steps: int = 20
    #: chapter 0: synthetic patients per domain rendered at the paper size for the texture comparison with real films
    #: (the median over six patients' images moves by +-0.05 with the draw, as wide as the real range's tolerance)
    texture_patients: int = 12
    #: chapter 0's difficulty card: patients of the oracle's own synthetic training set (lesion-centred crops, 20% of
    #: them held out to pick its epoch; 0: no oracle, as at the paper profile, whose data are real films), and its
    #: training epochs
    oracle_patients: int = 0
    oracle_epochs: int = 30


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataConfig
    synth: SynthConfig
    pretrain: PretrainConfig
    eval: EvalConfig
    book: BookConfig = field(default_factory=BookConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _paper() -> Profile:
    return Profile("paper", DataConfig(), SynthConfig(), PretrainConfig(), EvalConfig(), BookConfig())


def _tiny() -> Profile:
    return Profile(
        "tiny",
        DataConfig(
            image_size={"ddsm": (256, 192), "cmmd": (256, 208)},
            tile_sizes=(16, 32, 48),
            tile_size=32,
            annotated_patch=48,
            # more test patients than 7:1:2 gives (a tiny-profile choice): ~100 test patients for +-0.06 intervals
            split_ratios={"ddsm": (2, 1, 2), "cmmd": (3, 1, 1)},
        ),
        # 40% malignant / 20% benign / 40% normal breasts: a lesion detector blind to pathology stays well below 1;
        # an unlabelled pool of 3x the 100 labelled training patients
        SynthConfig(patients=250, benign_fraction=0.2, unlabeled_patients=300),
        PretrainConfig(
            encoder="tiny",
            epochs=1,
            batch_size=64,
            # LARS at batch 64: the linear rule's 4.8 x 64 / 4096 = 0.075 barely moves the tiny encoder's filters
            # in one epoch (1-2%); 2.4 moves them by about a fifth. The criterion, least spread of the SSL-minus-
            # random difference per CPU-second over training seeds (0.6 and 2.4 at 1 and 3 epochs, development seed
            # 100; reproducibility page), could not tell the four apart (sd 0.043-0.072, each +-50%): the cheapest
            # of them, 2.4 for 1 epoch, stays
            lr=2.4,
            lr_reference_batch=64,
            warmup_fraction=0.1,
            checkpoint_every=50,
            log_every=1,
            num_workers=0,
            projection_dim=64,
            hidden_dim=128,
            swav=SwAVConfig(prototypes=20, queue_length=256, queue_length_annotated=64),
            mae=MAEConfig(batch_size=8, patch=16, image_size=64, layers=2, heads=2, hidden=64, mlp=128, decoder_dim=64,
                          decoder_heads=2),
            # the annotated patch set is small (8 steps an epoch): 6 epochs at the tiles' learning rate
            annotated_epochs=6,
            annotated_batch_size=64,
            annotated_lr=2.4,
        ),
        # fewer epochs than the paper (30 instead of 100 for the linear layer), so larger steps; GAP's linear layer
        # is fitted to convergence instead (30 Adam epochs left its training loss near ln 2).
        # Finetuning and the supervised baseline get the same budget (10 epochs, best on validation) with the
        # paper's 10:1 ratio of their learning rates (1e-4 vs 1e-5 there, 1e-3 vs 1e-4 here)
        EvalConfig(linear_epochs=30, linear_lr=1e-3, finetune_epochs=10, finetune_lr=1e-4, supervised_epochs=10,
                   supervised_lr=1e-3, mip_hidden=64, label_fractions=(0.25, 1.0), bn_tiles=4096, bootstrap=500,
                   converged_linear_head=True, mip_restarts=3),
        # rows that no claim reads are left out where they cost most: chapter 5's BYOL and SwAV MIP finetunes,
        # chapter 8's MIP cross-validations and its finetuning of the CMMD-pretrained encoders, chapter 4's
        # end-to-end MIP reference; the tables say "not run at this profile"
        BookConfig(transforms=("crop", "gamma", "contrast"), paper_tile_sizes=(64, 96, 128), poolings=("gap", "mip"),
                   supervised_mip_reference=False,
                   finetune_table3=(("swav", "gap"),),
                   larger_encoders=("tiny", "resnet18"), finetune_larger_encoders=False, larger_encoder_max_steps=60,
                   umap_tiles=2000, oracle_patients=400,
                   cv_folds_run=2, cv_linear=(("DDSM", "gap"), ("CMMD", "gap")), cv_finetune=(("DDSM", "gap"),)),
    )


def _confirm() -> Profile:
    """The tiny profile with the confirmatory runs' test split: 300 test patients (a minimum detectable AUC
    difference about half the tiny book's) beside the same 100 labelled training and 50 validation patients, so that
    what the models learn from is the tiny profile's and only the evidence grows. Too slow for ``make book``; the
    book renders its committed result set (``mammossl book confirm``)."""
    tiny = _tiny()
    return dataclasses.replace(
        tiny, name="confirm", synth=dataclasses.replace(tiny.synth, patients=450),
        data=dataclasses.replace(tiny.data, split_ratios={"ddsm": (2, 1, 6), "cmmd": (3, 1, 1)}))


PROFILES = {"paper": _paper, "tiny": _tiny, "confirm": _confirm}
#: the profile of every command and notebook that is given none and reads no checkpoint
DEFAULT_PROFILE = "tiny"
SECTIONS = ("data", "synth", "pretrain", "eval", "book")


def get_profile(name: str = DEFAULT_PROFILE, **overrides: dict[str, Any]) -> Profile:
    """Return profile ``name`` with section overrides, e.g. ``get_profile("tiny", pretrain={"epochs": 1})``.

    Unknown profiles, sections or fields raise ``ValueError`` naming the bad key.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return resolve(PROFILES[name](), **overrides)


def resolve(profile: "str | Profile | None", **overrides: dict[str, Any]) -> Profile:
    """The one place where a profile name, a :class:`Profile` or ``None`` (:data:`DEFAULT_PROFILE`) becomes a
    :class:`Profile`, with section overrides applied (``resolve("tiny", eval={"linear_epochs": 5})``)."""
    if profile is None or isinstance(profile, str):
        return get_profile(profile or DEFAULT_PROFILE, **overrides)
    prof = profile
    changes = {}
    for section, values in overrides.items():
        if not values:
            continue
        if section not in SECTIONS:
            raise ValueError(f"unknown configuration section {section!r}; use one of {', '.join(SECTIONS)}")
        changes[section] = replace(getattr(prof, section), values, section)
    return dataclasses.replace(prof, **changes) if changes else prof


def replace(obj, values: dict[str, Any], where: str = "config"):
    """``dataclasses.replace`` that reaches into nested sections: ``values`` for a field that is itself a section (a
    method's settings) may be a dict of its fields, ``{"swav": {"queue_length": 64}}``. Unknown names raise
    ``ValueError`` naming them."""
    names = {f.name for f in dataclasses.fields(obj)}
    bad = set(values) - names
    if bad:
        raise ValueError(f"unknown {where} setting(s) {sorted(bad)}; known: {sorted(names)}")
    nested = {k: replace(getattr(obj, k), v, f"{where}.{k}") for k, v in values.items()
              if isinstance(v, dict) and dataclasses.is_dataclass(getattr(obj, k))}
    return dataclasses.replace(obj, **{**values, **nested})


def _section(cls, values: dict[str, Any]):
    """A section from its saved dict: nested sections rebuilt, unknown keys ignored, JSON lists as tuples."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for k, v in values.items():
        if k not in fields:
            continue
        default = fields[k].default_factory() if fields[k].default_factory is not dataclasses.MISSING else None
        out[k] = _section(type(default), v) if dataclasses.is_dataclass(default) and isinstance(v, dict) else _tuples(v)
    return cls(**out)


def from_dict(d: dict[str, Any]) -> Profile:
    """A :class:`Profile` from :meth:`Profile.to_dict` (JSON lists become tuples again)."""
    return Profile(d["name"], _section(DataConfig, d["data"]), _section(SynthConfig, d["synth"]),
                   pretrain_config(d["pretrain"]), _section(EvalConfig, d["eval"]),
                   _section(BookConfig, d.get("book", {})))


#: the prefixes of the flat method settings that checkpoints of mammossl < 0.5 saved (``swav_prototypes``)
_FLAT_PREFIXES = ("simclr_", "byol_", "swav_", "mae_")


def pretrain_config(d: dict[str, Any]) -> PretrainConfig:
    """A :class:`PretrainConfig` from its saved dict (a checkpoint's ``config``); unknown keys are ignored, and the
    flat method settings of older checkpoints (``swav_prototypes``) go to their section (``swav.prototypes``)."""
    d = dict(d)
    for k in [k for k in d if k.startswith(_FLAT_PREFIXES)]:
        method, name = k.split("_", 1)
        section = dict(d.get(method) or {})
        section.setdefault(name, d.pop(k))
        d[method] = section
    return _section(PretrainConfig, d)


def _tuples(v):
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):  # JSON made integer keys (tile sizes) strings
        return {(int(k) if isinstance(k, str) and k.isdigit() else k): _tuples(x) for k, x in v.items()}
    return v


def image_size(profile: Profile, domain: str) -> tuple[int, int]:
    """(height, width) of whole images of ``domain`` (``ddsm`` or ``cmmd``) at ``profile``."""
    try:
        return tuple(profile.data.image_size[domain])  # type: ignore[return-value]
    except KeyError:
        raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(profile.data.image_size)}") from None
