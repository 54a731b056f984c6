"""Triton kernels of fastwgan (installed as ``fastwgan.kernels``)."""
