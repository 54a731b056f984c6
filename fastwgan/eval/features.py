"""Feature extractors for FID / KID: the standard Inception-v3 network, or any network the user supplies.

fastwgan does not re-implement Inception-v3 (no torchvision here). It loads the **TorchScript** export of the
TF-FID Inception-v3 ("inception-2015-12-05") that NVlabs publish for StyleGAN2-ADA / StyleGAN3 metrics, whose
2048-d pool features reproduce the original TensorFlow FID:

    INCEPTION_URL = https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt

`inception(path)` loads it from a local file (offline machines: download it once elsewhere and copy it), or, with
no path, downloads it into the torch hub cache when online (`torch.hub.download_url_to_file`, then cached).

Any other extractor works the same way: save a TorchScript module (`torch.jit.script(m).save("f.pt")` or
`torch.jit.trace`) that takes a uint8-valued (N, 3, H, W) tensor in 0..255 and returns (N, D) features (or a
full nn.Module pickled with `torch.save`, loaded only with ``trusted=True``). Grayscale images are repeated to
3 channels before the call. The NVlabs network resizes to 299 px internally and is called with
``return_features=True``; extractors whose forward has that argument get it too.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

__all__ = ["INCEPTION_URL", "FeatureExtractor", "load_feature_extractor", "inception"]

INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


def _takes_return_features(module) -> bool:
    try:
        if isinstance(module, torch.jit.ScriptModule):
            return any(a.name == "return_features" for a in module.forward.schema.arguments)
        import inspect

        return "return_features" in inspect.signature(module.forward).parameters
    except (AttributeError, RuntimeError, ValueError, TypeError):
        return False


class FeatureExtractor:
    """Wraps a network as ``images -> (N, D) float64 CPU features``.

    Images: uint8 (N, C, H, W) in 0..255 or float in [-1, 1] (fastwgan's training range, converted with
    `fastwgan.data.to_uint8`); C = 1 is repeated to 3 channels. The network receives a uint8 tensor
    (NVlabs convention) unless ``float_input=True`` (then float32 in 0..255).
    """

    def __init__(
        self,
        module,
        name: str = "extractor",
        device: str | torch.device = "cpu",
        float_input: bool = False,
        repeat_gray: bool = True,
    ):
        self.module = module.to(device) if hasattr(module, "to") else module
        if hasattr(self.module, "eval"):
            self.module.eval()
        self.name = name
        self.device = torch.device(device)
        self.float_input = float_input
        self.repeat_gray = repeat_gray
        self._kw = {"return_features": True} if _takes_return_features(module) else {}

    @torch.no_grad()
    def __call__(self, images, batch_size: int = 64) -> torch.Tensor:
        from ..data import to_uint8

        x = torch.as_tensor(images).detach().cpu()
        if x.dim() != 4:
            raise ValueError(f"{self.name}: expected images (N, C, H, W), got shape {tuple(x.shape)}")
        out = []
        for i in range(0, x.shape[0], batch_size):
            b = to_uint8(x[i : i + batch_size])  # float [-1, 1] -> uint8; uint8 unchanged
            if b.shape[1] == 1 and self.repeat_gray:
                b = b.expand(-1, 3, -1, -1)
            b = b.to(self.device)
            f = self.module(b.float() if self.float_input else b, **self._kw)
            out.append(f.reshape(f.shape[0], -1).double().cpu())
        if not out:
            raise ValueError(f"{self.name}: no images")
        return torch.cat(out)


def load_feature_extractor(
    path: str | os.PathLike, device: str | torch.device = "cpu", trusted: bool = False, float_input: bool = False
) -> FeatureExtractor:
    """Load a feature extractor saved as TorchScript (``torch.jit.save``), or, with ``trusted=True``, a whole
    nn.Module saved with ``torch.save`` (unpickling runs code: only for files you made yourself).

    Args:
        path: the file. device: where it runs. float_input: pass float32 0..255 instead of uint8.
    Returns:
        a FeatureExtractor.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature extractor: no such file: {path}")
    try:
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; the NVlabs network is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as e:
        if not trusted:
            raise ValueError(
                f"{path}: not a TorchScript file ({str(e).splitlines()[0]}); save the extractor with "
                "torch.jit.script(m).save(path), or pass trusted=True for a torch.save'd module"
            ) from None
        module = torch.load(str(path), map_location=device, weights_only=False)
        if not isinstance(module, nn.Module):
            raise ValueError(f"{path}: holds a {type(module).__name__}, not an nn.Module") from None
    return FeatureExtractor(module, name=path.name, device=device, float_input=float_input)


def inception(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FeatureExtractor:
    """The standard FID Inception-v3 (2048-d pool features), from ``path`` or downloaded from INCEPTION_URL into
    ``$TORCH_HOME/hub/checkpoints`` when no path is given (needs internet once; then cached)."""
    if path is None:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(INCEPTION_URL).name
        if not cache.is_file():
            cache.parent.mkdir(parents=True, exist_ok=True)
            try:
                torch.hub.download_url_to_file(INCEPTION_URL, str(cache), progress=True)
            except OSError as e:
                raise ValueError(
                    f"could not download the Inception network ({e}); download {INCEPTION_URL} "
                    "elsewhere and pass its path (--inception PATH)"
                ) from None
        path = cache
    return load_feature_extractor(path, device=device)
