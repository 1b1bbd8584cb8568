"""The inspect layer: using a trained checkpoint.

``evaluate`` reports its metrics, ``predict`` scores new rows and ``explain``
reads the crosses it learnt.

Imports data, model and train, never commands.
"""
