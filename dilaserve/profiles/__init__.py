"""Profiles of a model on some hardware: step cost and decoding quality. Pure data, no torch."""
