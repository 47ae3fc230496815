"""The paper's reported figures, shown beside ours and never a target."""

from __future__ import annotations

#: Table 2 of the paper ("Performance comparison across models (mean values)"); percent, AUC as
#: a fraction. Reported numbers, not ours.
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "resnet50": {"accuracy": 92.18, "precision": 91.44, "recall": 90.37, "specificity": 93.12,
                 "f1": 90.88, "roc_auc": 0.942},
    "efficientnet_b3": {"accuracy": 94.72, "precision": 94.01, "recall": 93.87,
                        "specificity": 95.21, "f1": 93.92, "roc_auc": 0.958},
    "aecnn": {"accuracy": 97.63, "precision": 97.21, "recall": 96.89, "specificity": 98.11,
              "f1": 97.02, "roc_auc": 0.986},
}
#: AECNN in the paper's abstract (on CRIC); percent, AUC as a fraction. Reported, not ours.
PAPER_ABSTRACT: dict[str, float] = {"accuracy": 93.87, "sensitivity": 92.14,
                                    "specificity": 94.63, "roc_auc": 0.958}
