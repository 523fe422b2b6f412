"""Analyses of trained models: MIP attention heatmaps and localisation, SwAV prototypes, loss vs AUC."""
