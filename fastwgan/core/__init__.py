"""The machinery every trainer shares: the one training engine (``engine``, ``fitting``), the run folder and its
progress (``run``, ``plots``), atomic checkpoints (``checkpoint``), the seeded streams (``rng``), the NaN and
signal guards (``guards``), the CPU thread policy (``threads``), the one place that calls torch.compile
(``compile``), flat parameter buffers and the fused optimizer over them (``flat``, ``optimizers``), the training
config (``config``) and the one image normalisation (``images``). Imports only ``fastwgan.ops`` below it.
"""
