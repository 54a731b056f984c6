"""Small data files the tests write (IDX, ...), shared by the test modules."""

import numpy as np


def idx_bytes(a: np.ndarray) -> bytes:
    """``a`` (uint8) in the IDX format of MNIST: magic (0, 0, 8 = ubyte, ndim), the dims (big-endian), the data."""
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return header + a.tobytes()
