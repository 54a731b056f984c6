"""Flat parameter buffers: every parameter of a module becomes a view into one contiguous buffer.

Why (DESIGN fact 8): clipping is then one kernel over one buffer, and the optimizer update and the clamp fuse
into one pass over (param, grad, state) buffers. The parameters keep their identity (the same `nn.Parameter`
objects, so optimizers and `state_dict` keys are unchanged); only their storage moves into the buffer.

What keeps the views: in-place updates (torch.optim steps, fastwgan.ops), `load_state_dict` (it copies in place),
`torch.compile` of code that uses the module or mutates the buffer, `module.to()` to the same device and dtype.
What breaks them (then `FlatParams.attach()` re-points them, copying the current values in):
`load_state_dict(..., assign=True)`, `module.to()` to another device or dtype, and, for the gradient buffer,
`optimizer.zero_grad()` with its default `set_to_none=True` (use `FlatParams.zero_grad()` or
`set_to_none=False`).

Under torch.compile, use the buffer functionally: differentiate w.r.t. the buffer through
`torch.func.functional_call(module, flat.unflatten(buf), ...)` and update `buf` with the fused ops in the same
graph (tested). One graph that both mutates the buffer and reads the module's own aliased parameters fails in
AOTAutograd on torch 2.13 ("non-differentiable view input mutations"; kept as an xfail test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(eq=False)
class FlatParams:
    """Parameters of a module as views into one buffer.

    Attributes:
        data: (N,) contiguous buffer holding every parameter, in `named_parameters()` order.
        grad: (N,) gradient buffer whose slices are the parameters' `.grad`, or None.
        names: parameter names (shared parameters appear once, under their first name).
        params: the `nn.Parameter` objects, in the same order.
        shapes, offsets: each parameter's shape and first element in the buffer.
        module: the flattened module; `attach()` and `is_attached()` look its parameters up by name, so that
            parameters replaced by new objects (`load_state_dict(assign=True)`) are noticed and re-pointed.
    """

    data: torch.Tensor
    grad: torch.Tensor | None
    names: list[str]
    params: list[nn.Parameter]
    shapes: list[torch.Size]
    offsets: list[int] = field(default_factory=list)
    module: nn.Module | None = None

    def _current_params(self) -> list[nn.Parameter]:
        if self.module is None:
            return self.params
        params = [self.module.get_parameter(n) for n in self.names]
        for n, p, s in zip(self.names, params, self.shapes):
            if p.shape != s:
                raise ValueError(f"parameter {n} changed shape from {tuple(s)} to {tuple(p.shape)}; flatten again")
        return params

    @property
    def numel(self) -> int:
        """Total number of elements N."""
        return self.data.numel()

    def views(self, buf: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Views of `buf` (default: `data`) shaped like each parameter.

        Args:
            buf: any (N,) tensor, e.g. the flat gradient or an optimizer state buffer.
        Returns:
            list of views, one per parameter, in order.
        """
        buf = self.data if buf is None else buf
        if buf.shape != (self.numel,):
            raise ValueError(f"expected a ({self.numel},) buffer, got {tuple(buf.shape)}")
        return [buf[o : o + s.numel()].view(s) for o, s in zip(self.offsets, self.shapes)]

    def unflatten(self, buf: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`{name: view}` of `buf` for `torch.func.functional_call`.

        Differentiating a loss of `functional_call(module, flat.unflatten(buf), x)` w.r.t. `buf` (e.g. with
        `torch.func.grad`) yields the gradient as one flat (N,) tensor, ready for the fused optimizer ops.

        Args:
            buf: any (N,) tensor (default: `data`).
        Returns:
            dict from parameter name to view.
        """
        return dict(zip(self.names, self.views(buf)))

    def is_attached(self) -> bool:
        """True while every parameter (and its .grad, when a grad buffer exists) still views the buffers."""
        size = self.data.element_size()
        current = self._current_params()
        if any(p is not q for p, q in zip(current, self.params)):
            return False
        for p, o, s in zip(self.params, self.offsets, self.shapes):
            if p.data_ptr() != self.data.data_ptr() + o * size or p.shape != s or p.dtype != self.data.dtype:
                return False
            if self.grad is not None and (p.grad is None or p.grad.data_ptr() != self.grad.data_ptr() + o * size):
                return False
        return True

    def attach(self) -> None:
        """Point every parameter (and .grad) back at the buffers, copying current values in.

        A parameter whose .grad is None gets a zero gradient slice.
        """
        self.params = self._current_params()
        with torch.no_grad():
            for p, v in zip(self.params, self.views(self.data)):
                if p.data_ptr() != v.data_ptr():
                    v.copy_(p.detach().reshape(v.shape))
                    p.data = v
            if self.grad is not None:
                for p, g in zip(self.params, self.views(self.grad)):
                    if p.grad is None:
                        g.zero_()
                    elif p.grad.data_ptr() != g.data_ptr():
                        g.copy_(p.grad.reshape(g.shape))
                    p.grad = g

    def zero_grad(self) -> None:
        """Zero the gradient buffer in place (one fill), keeping every .grad a view of it."""
        if self.grad is not None:
            self.grad.zero_()
            self.attach()


def flatten_parameters(module: nn.Module, dtype: torch.dtype = torch.float32, grad: bool = True) -> FlatParams:
    """Move every parameter of `module` into one contiguous buffer (in place; the Parameter objects are kept).

    Call it after moving the module to its device, and before building an optimizer on it (an optimizer built
    earlier also works: it holds the same Parameter objects, but any state it already has is not flattened).

    Args:
        module: the module (e.g. the critic). All parameters must be floating point and on one device.
        dtype: the buffer's dtype; parameters are converted to it (fp32 by default: the master weights).
        grad: also make a zero (N,) gradient buffer and set each parameter's `.grad` to its slice (existing
            gradients are copied in).
    Returns:
        FlatParams with `.data`, `.grad`, `.numel`, `.views()`, `.unflatten()`.
    """
    names, params = [], []
    for name, p in module.named_parameters():  # shared parameters are listed once
        if not p.is_floating_point():
            raise TypeError(f"parameter {name} is {p.dtype}; only floating-point parameters can be flattened")
        names.append(name)
        params.append(p)
    devices = {p.device for p in params}
    if len(devices) > 1:
        raise ValueError(f"parameters are on several devices {sorted(map(str, devices))}; move the module first")
    device = devices.pop() if devices else torch.device("cpu")
    shapes = [p.shape for p in params]
    offsets, n = [], 0
    for p in params:
        offsets.append(n)
        n += p.numel()
    flat = FlatParams(
        data=torch.empty(n, dtype=dtype, device=device),
        grad=torch.zeros(n, dtype=dtype, device=device) if grad else None,
        names=names,
        params=params,
        shapes=shapes,
        offsets=offsets,
        module=module,
    )
    flat.attach()
    return flat
