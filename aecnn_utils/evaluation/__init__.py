"""Numbers from outputs and labels: metrics (cross-checked against scikit-learn) and calibration.
Imports nothing above ``data``."""
