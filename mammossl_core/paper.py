"""The paper's reported numbers (Miller et al., Tables 1-5 and section III), named once, and helpers that set
them beside this run's numbers. Synthetic-data results are labelled as such and never presented as the paper's."""
from __future__ import annotations

#: section III: dataset sizes
COUNTS = {"CBIS-DDSM": {"images": 3119, "patients": 1566, "cancer": 761, "split_images": (2111, 367, 641)},
          "CMMD": {"images": 3728, "patients": 1775, "split_images": (2237, 745, 746)}}
#: Table 1: annotated-patch linear evaluation, test accuracy
TABLE1 = {"simclr": 0.653, "swav": 0.741, "byol": 0.763, "mae": 0.550}
#: Table 2: BYOL + GAP, whole-image test AUC by patch size
TABLE2 = {64: 0.598, 96: 0.687, 128: 0.642, 256: 0.682}
#: Table 3: whole-image test AUC, (linear evaluation, finetuning)
TABLE3 = {("simclr", "gap"): (0.674, None), ("mae", "gap"): (0.600, None), ("byol", "gap"): (0.687, 0.763),
          ("byol", "mip"): (0.722, 0.783), ("byol", "sa"): (0.691, 0.744), ("swav", "gap"): (0.709, 0.803),
          ("swav", "mip"): (0.757, 0.815), ("supervised", "gap"): (None, 0.710)}
#: Table 4: SwAV with larger encoders, (linear evaluation, finetuning)
TABLE4 = {("resnet50x2", "gap"): (0.703, 0.803), ("resnet152", "gap"): (0.703, 0.797),
          ("resnet50x2", "mip"): (0.751, 0.782), ("resnet152", "mip"): (0.755, 0.807)}
#: Table 5: CMMD 5-fold CV, mean (SE) of (linear evaluation, finetuning)
TABLE5 = {("DDSM", "gap"): ((0.702, 0.005), (0.734, 0.006)), ("DDSM", "mip"): ((0.714, 0.007), (0.730, 0.007)),
          ("CMMD", "gap"): ((0.703, 0.006), (0.732, 0.006)), ("CMMD", "mip"): ((0.712, 0.007), (0.730, 0.007)),
          ("Supervised", "gap"): ((0.706, 0.013), None)}
#: section V.E and Supp. Fig. 4: SwAV's prototypes on CBIS-DDSM, and those assigned nearly only background patches
PROTOTYPES = {"prototypes": 20, "background_only": (3, 10, 12, 16, 17)}
