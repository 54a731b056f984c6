"""The fused optimizer over one flat parameter buffer: what every fastwgan training step updates its networks with
(the GAN's critic and generator, the f-AnoGAN encoder).

All parameters of a network are views of one flat fp32 buffer (``fastwgan.core.flat``); the optimizer's state is flat
buffers of the same layout. ``update`` is pure tensor code plus fastwgan's registered ops, so it traces into a
compiled step; the state converts to and from torch.optim's ``state_dict`` format, so checkpoints interchange with
the reference trainers (torch.optim) and torch.optim users.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable

import torch

from .. import ops
from ..ops import twins


def concat(tensors) -> torch.Tensor:
    """Tensors of any shapes as one flat (N,) tensor, in order (the flat-buffer layout)."""
    return torch.cat([t.reshape(-1) for t in tensors])


@dataclass(frozen=True)
class FlatOptimizer:
    """RMSprop (no momentum, PyTorch's) or Adam over a flat buffer, optionally clamping after the step.

    Args:
        optimizer: "rmsprop" or "adam".
        betas, alpha, eps: Adam's betas, RMSprop's alpha, the epsilon of either.
        clip_value: the clamp of weight clipping (applied when ``update(clip=True)``).
        impl: "auto" | "triton" | "torch" (``fastwgan.ops``): the fused kernels or the plain-PyTorch twins.
        all_reduce: the mean of a flat gradient over processes (identity for one process).
    """

    optimizer: str = "adam"
    betas: tuple[float, float] = (0.0, 0.9)
    alpha: float = 0.99
    eps: float = 1e-8
    clip_value: float = 0.01
    impl: str = "auto"
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    distributed: bool = False

    def new_state(self, flat) -> dict[str, torch.Tensor]:
        z = lambda: torch.zeros_like(flat.data)  # noqa: E731
        step = torch.zeros((), device=flat.data.device)
        if self.optimizer == "rmsprop":
            return {"step": step, "square_avg": z()}
        return {"step": step, "exp_avg": z(), "exp_avg_sq": z()}

    def update(
        self, flat, buf: torch.Tensor, grads: list[torch.Tensor], state: dict, lr: torch.Tensor, clip: bool = False
    ) -> None:
        """One fused optimizer step over a flat buffer (in place), from per-parameter gradients.

        With the Triton kernels the gradients are concatenated into one flat tensor and the update is one launch
        over the whole buffer (DESIGN fact 8). With the twins each parameter's update is computed out of place
        from its own gradient (inductor fuses the two) and the new values are concatenated into the buffers; a
        flat gradient would be assembled from the parameters' slices, which inductor lowers to one kernel that
        tests every element against every slice (measured: 3 ms of a 16 ms toy critic step on CPU), and in-place
        updates of the views became a slice_scatter chain of the same kind (10 ms).
        """
        state["step"].add_(1)
        impl = self.impl
        if ops.resolves_to_triton(impl, buf) or self.distributed:
            g = concat(grads)
            if self.all_reduce is not None:
                g = self.all_reduce(g)
            if self.optimizer == "rmsprop":
                ops.rmsprop_clip_(
                    buf, g, state["square_avg"], lr, self.alpha, self.eps, self.clip_value if clip else None, impl=impl
                )
            else:
                ops.adam_(
                    buf,
                    g,
                    state["exp_avg"],
                    state["exp_avg_sq"],
                    state["step"],
                    lr,
                    self.betas[0],
                    self.betas[1],
                    self.eps,
                    impl=impl,
                )
                if clip:  # Adam with weight clipping (not a preset, but a valid config): one clamp launch
                    ops.clip_(buf, self.clip_value, impl=impl)
            return
        # The twins, out of place per parameter, then one concatenation per buffer (inductor writes each piece
        # straight into its slice).
        keys = ("square_avg",) if self.optimizer == "rmsprop" else ("exp_avg", "exp_avg_sq")
        views = [flat.views(state[k]) for k in keys]
        new = []
        for i, (p, g) in enumerate(zip(flat.views(buf), grads)):
            st = [v[i] for v in views]
            if self.optimizer == "rmsprop":
                new.append(twins.rmsprop_clip(p, g, *st, lr, self.alpha, self.eps, self.clip_value if clip else None))
            else:
                p, *st = twins.adam(p, g, *st, state["step"], lr, self.betas[0], self.betas[1], self.eps)
                new.append((p.clamp(-self.clip_value, self.clip_value) if clip else p, *st))
        with torch.no_grad():
            for target, pieces in zip((buf, *(state[k] for k in keys)), zip(*new)):
                target.copy_(concat(pieces))

    # ------------------------------------------------------------------ torch.optim's state_dict format
    def param_group(self, lr: float, n: int) -> dict:
        """torch.optim's param_group entry for these settings (checkpoints read like torch.optim's)."""
        dummy = [torch.zeros(1, requires_grad=True) for _ in range(n)]
        opt = (
            torch.optim.RMSprop(dummy, lr=lr, alpha=self.alpha, eps=self.eps, foreach=False)
            if self.optimizer == "rmsprop"
            else torch.optim.Adam(dummy, lr=lr, betas=self.betas, eps=self.eps, foreach=False)
        )
        return opt.state_dict()["param_groups"][0]

    @staticmethod
    def state_dict(flat, state: dict, param_group: dict) -> dict:
        """The flat state as torch.optim's ``state_dict()`` (per-parameter tensors, one param group)."""
        views = {key: flat.views(buf) for key, buf in state.items() if key != "step"}  # each buffer sliced once
        per = {
            i: {
                "step": state["step"].detach().clone().cpu(),
                **{key: v[i].detach().clone() for key, v in views.items()},
            }
            for i in range(len(flat.params))
        }
        return {"state": per, "param_groups": [copy.deepcopy(param_group)]}

    @staticmethod
    def load_state_dict(flat, state: dict, saved_dict: dict, what: str) -> None:
        """Load torch.optim's ``state_dict()`` format into the flat state (``what`` names the network)."""
        saved = {int(k): v for k, v in saved_dict["state"].items()}
        with torch.no_grad():
            if not saved:  # an optimizer that has not stepped yet
                for buf in state.values():
                    buf.zero_()
                return
            if set(saved) != set(range(len(flat.params))):
                raise ValueError(
                    f"load_state_dict: {what} optimizer state covers {len(saved)} parameters, "
                    f"this model has {len(flat.params)}"
                )
            state["step"].copy_(torch.as_tensor(saved[0]["step"]).reshape(()))
            for key, buf in state.items():
                if key == "step":
                    continue
                for i, view in enumerate(flat.views(buf)):
                    if key not in saved[i]:
                        raise ValueError(
                            f"load_state_dict: {what} optimizer state has no {key!r} (saved with another optimizer?)"
                        )
                    view.copy_(saved[i][key].reshape(view.shape))


class FlatGroups:
    """The parameter groups a fast trainer updates, set up once for every trainer: per group (name -> (module,
    lr)) one flat fp32 buffer the module's parameters are views of (``fastwgan.core.flat``), the fused optimizer's flat
    state, the learning rate as a 0-d tensor (a new value is written in place: never a recompile) and torch.optim's
    param_group entry (checkpoints interchange with the eager twins' torch.optim state).

    Attributes:
        optim: the ``FlatOptimizer``; flat, state, lr, param_groups: dicts by group name.
    """

    def __init__(self, optim: FlatOptimizer, device: torch.device, groups: dict):
        from .flat import flatten_parameters

        self.optim = optim
        self.flat = {k: flatten_parameters(m, grad=False) for k, (m, _) in groups.items()}
        self.state = {k: optim.new_state(f) for k, f in self.flat.items()}
        self.lr = {k: torch.tensor(lr, device=device) for k, (_, lr) in groups.items()}
        self.param_groups = {k: optim.param_group(lr, len(self.flat[k].params)) for k, (_, lr) in groups.items()}

    @classmethod
    def for_trainer(cls, trainer, groups: dict) -> FlatGroups:
        """A fast trainer's groups: the optimizer of its ``config`` with its ``impl["optimizer"]`` kernels; under
        torchrun every gradient is averaged over the ranks inside the update (``Engine.all_reduce_mean``)."""
        all_reduce = trainer.all_reduce_mean if trainer.world_size > 1 else None
        return cls(cls.optimizer_of(trainer.config, trainer.impl["optimizer"], all_reduce), trainer.device, groups)

    @staticmethod
    def optimizer_of(config, impl: str, all_reduce=None) -> FlatOptimizer:
        """The ``FlatOptimizer`` of a ``TrainConfig`` (``all_reduce``: the gradient mean over torchrun ranks)."""
        return FlatOptimizer(
            config.optimizer,
            config.betas,
            config.rmsprop_alpha,
            config.opt_eps,
            config.clip_value,
            impl,
            all_reduce,
            all_reduce is not None,
        )

    def state_dict(self) -> dict:
        """Every group's state in torch.optim's ``state_dict`` format."""
        return {k: FlatOptimizer.state_dict(f, self.state[k], self.param_groups[k]) for k, f in self.flat.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, f in self.flat.items():
            FlatOptimizer.load_state_dict(f, self.state[k], state[k], k)


# ---------------------------------------------------------------------------------------------------------------
# The eager twins' torch.optim optimizers (the format the flat state converts to and from)
# ---------------------------------------------------------------------------------------------------------------
def torch_optimizer(config, params, lr: float) -> torch.optim.Optimizer:
    """The torch.optim optimizer of a ``TrainConfig`` (RMSprop or Adam, no foreach) for the eager twins."""
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=config.rmsprop_alpha, eps=config.opt_eps, foreach=False)
    return torch.optim.Adam(params, lr=lr, betas=config.betas, eps=config.opt_eps, foreach=False)


def torch_step(opt: torch.optim.Optimizer, loss: torch.Tensor, clamp=None, clip_value: float = 0.01) -> None:
    """The eager twins' update: gradients of ``loss`` into ``.grad``, one optimizer step, then (weight clipping)
    every parameter of ``clamp`` (an iterable of parameters, or None) clamped to [-clip_value, clip_value]."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if clamp is not None:
        with torch.no_grad():
            for p in clamp:
                p.clamp_(-clip_value, clip_value)


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """The eager twins' other phase: ``module``'s parameters need no gradient for the block (e.g. the critics while
    the generators update), and need one again after it."""
    module.requires_grad_(False)
    try:
        yield module
    finally:
        module.requires_grad_(True)


class TorchGroups:
    """The eager twins' counterpart of ``FlatGroups``: their torch.optim optimizers by group name, whose state the
    checkpoints hold in the same format (``{name: optimizer.state_dict()}``), so the twins' checkpoints interchange."""

    def __init__(self, optimizers: dict):
        self.optimizers = dict(optimizers)

    def state_dict(self) -> dict:
        return {k: opt.state_dict() for k, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, opt in self.optimizers.items():
            load_torch_optimizer(opt, state[k], k)


def load_torch_optimizer(opt: torch.optim.Optimizer, state: dict, what: str) -> None:
    """``opt.load_state_dict(state)`` for a state read back from a checkpoint (JSON turned the per-parameter keys
    into strings), with a clear error naming ``what`` on a mismatch."""
    st = dict(state)
    st["state"] = {int(k): v for k, v in state["state"].items()}
    try:
        opt.load_state_dict(st)
    except (KeyError, ValueError) as e:
        raise ValueError(f"load_state_dict: the {what} optimizer state does not match ({e})") from None
