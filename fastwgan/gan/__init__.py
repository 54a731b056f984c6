"""The Wasserstein GAN: models (``models``, ``conditioning``), the critic objective written once (``objectives``),
the two trainers on the engine, fast (``trainer``) and the eager Algorithm-1 oracle (``reference``), what they share
(``base``, ``checks``), and rebuilding a trainer from a run folder (``restore``).
"""
