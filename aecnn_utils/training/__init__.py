"""A run: its config and profiles, the losses (Eq. 5-6), the data a config prepares, the training
loop, fine-tuning, how a run is scored on selection halves, and run folders."""
