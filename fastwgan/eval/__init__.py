"""Measuring what a run made: metrics (``metrics``: FID/KID, the toys' mode coverage, ...), the feature extractors
they read (``features``, ``classifier``: the bundled digit classifier) and the evaluation of a run (``evaluate``).
"""
