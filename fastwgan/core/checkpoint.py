"""Checkpoints as plain files: safetensors for every tensor, JSON for everything else, written atomically.

A trainer's ``state_dict()`` is a nested dict of tensors, numbers, strings and lists. ``save`` splits it into
``NAME.safetensors`` (the tensors, keyed by their path in the dict) and ``NAME.json`` (the rest, with each
tensor replaced by ``{"__tensor__": key}``), each written to a temporary file and renamed into place, then
moves ``latest.json`` to point at them: a crash at any moment leaves the previous checkpoint loadable.
No pickles: loading never runs code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

LATEST = "latest.json"
_TENSOR = "__tensor__"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not match what loads it."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_tensors(
    tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` as a safetensors file at ``path`` so that readers see either the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


def split_state(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Replace every tensor in a nested structure by a reference; return (json_part, tensors)."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(o, path):
        if isinstance(o, torch.Tensor):
            tensors[path] = o.detach().cpu().contiguous()
            return {_TENSOR: path}
        if isinstance(o, dict):
            return {str(k): walk(v, f"{path}.{k}" if path else str(k)) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(o)]
        if isinstance(o, float) and o != o:  # NaN is not JSON
            return None
        return o

    return walk(obj, prefix), tensors


def join_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of ``split_state``."""
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            key = obj[_TENSOR]
            if key not in tensors:
                raise CheckpointError(f"checkpoint: tensor {key!r} is referenced but missing from the weights file")
            return tensors[key]
        return {k: join_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [join_state(v, tensors) for v in obj]
    return obj


def save(state: dict, directory: str | os.PathLike, step: int, keep: int = 3) -> Path:
    """Write ``state`` as checkpoint ``step_NNNNNN`` in ``directory`` atomically; keep the newest ``keep``.

    Returns:
        The path of the JSON half of the checkpoint.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    meta, tensors = split_state(state)
    atomic_save_tensors(tensors, directory / f"{name}.safetensors")
    atomic_write_json(directory / f"{name}.json", {"step": step, "weights": f"{name}.safetensors", "state": meta})
    atomic_write_json(directory / LATEST, {"step": step, "checkpoint": f"{name}.json"})
    if keep > 0:
        for old in sorted(directory.glob("step_*.json"))[:-keep]:
            old.unlink(missing_ok=True)
            old.with_suffix(".safetensors").unlink(missing_ok=True)
    return directory / f"{name}.json"


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint's JSON file from a run folder, a checkpoints folder, or the file itself."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint: {p} does not exist")
    if p.is_dir():
        for d in (p / "checkpoints", p):
            if (d / LATEST).is_file():
                try:
                    latest = json.loads((d / LATEST).read_text())
                    return d / latest["checkpoint"]
                except (ValueError, KeyError) as e:
                    raise CheckpointError(f"checkpoint: {d / LATEST} is corrupt ({e})") from None
        raise CheckpointError(f"checkpoint: no {LATEST} in {p} or {p / 'checkpoints'}: not a run folder")
    return p


def load(path: str | os.PathLike) -> dict:
    """Load the state written by ``save`` (``path``: run folder, checkpoints folder, or a step_N.json)."""
    js = resolve(path)
    try:
        meta = json.loads(js.read_text())
        weights = js.parent / meta["weights"]
        tensors = load_file(str(weights))
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint: {js}: missing file {e.filename}") from None
    except (ValueError, KeyError, SafetensorError, OSError) as e:
        raise CheckpointError(f"checkpoint: {js} or its weights file is corrupt ({type(e).__name__}: {e})") from None
    return join_state(meta["state"], tensors)
