"""The kit's ground floor: atomic file writes, device choice, the config error. Imports nothing of
the kit."""
