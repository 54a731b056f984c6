"""The plain-PyTorch twins of every fastwgan op, under the ops' own names: their one public home for callers.

Each twin is written next to its op, in the op's file (fastwgan/ops/<op>.py, as ``twin_<name>``, with the
definitions its kernel shares: the hash draws, the DiffAugment policy); this module only names them. A twin has
its op's signature (less `impl`) and definition. They are the `impl="torch"` path, the oracle the kernels are
tested against, and what benchmarks compare with. They stay in plain tensor ops (no `.item()`, no Python RNG)
so that they trace under `torch.func` and `torch.compile`, where inductor fuses them itself (DESIGN fact 7).
"""

from .augment import AUGMENT_POLICIES, AUGMENT_SLOTS, augment_params_from_seed, augment_sizes, parse_augment_policy
from .augment import twin_diff_augment as diff_augment
from .augment import twin_diff_augment_adjoint as diff_augment_adjoint
from .augment import twin_diff_augment_adjoint_flags as diff_augment_adjoint_flags
from .augment import twin_diff_augment_flags as diff_augment_flags
from .optimizer import twin_adam as adam
from .optimizer import twin_adam_ as adam_
from .optimizer import twin_clip_ as clip_
from .optimizer import twin_rmsprop_clip as rmsprop_clip
from .optimizer import twin_rmsprop_clip_ as rmsprop_clip_
from .penalty import GOLDEN, MASK32, MUL1, MUL2, gp_eps_from_seed, hash32
from .penalty import twin_gp_interpolate as gp_interpolate
from .penalty import twin_gp_interpolate_rand as gp_interpolate_rand
from .penalty import twin_gradient_penalty as gradient_penalty
from .penalty import twin_gradient_penalty_backward as gradient_penalty_backward

__all__ = [
    # optimizer
    "clip_",
    "rmsprop_clip",
    "rmsprop_clip_",
    "adam",
    "adam_",
    # penalty
    "gp_interpolate",
    "gp_interpolate_rand",
    "gp_eps_from_seed",
    "gradient_penalty",
    "gradient_penalty_backward",
    "hash32",
    "MASK32",
    "MUL1",
    "MUL2",
    "GOLDEN",
    # augment
    "diff_augment",
    "diff_augment_flags",
    "diff_augment_adjoint",
    "diff_augment_adjoint_flags",
    "parse_augment_policy",
    "augment_params_from_seed",
    "augment_sizes",
    "AUGMENT_SLOTS",
    "AUGMENT_POLICIES",
]
