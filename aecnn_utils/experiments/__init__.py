"""Grids of runs: the shared experiment grid (nested choices, slide intervals, paired tests),
Table 2's model grid, the study, the ablations, the label-efficiency curve, the nucleus-feature
reference, explanations and feature embeddings."""
