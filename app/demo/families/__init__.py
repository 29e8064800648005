"""The experiment families as data: specs, parameter models and claims (no torch)."""
