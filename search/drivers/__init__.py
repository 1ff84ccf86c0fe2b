"""Drivers propose candidates and record results; the gate and the trainer do the rest."""
