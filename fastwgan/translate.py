"""Unpaired image-to-image translation with Wasserstein critics: CycleGAN (Zhu, Park, Isola & Efros 2017,
"Unpaired image-to-image translation using cycle-consistent adversarial networks", ICCV) with each adversarial
loss a WGAN critic's (weight clipping, or the gradient penalty of Gulrajani et al. 2017; ``TrainConfig.loss``).

Domains S and T (uint8 image sets of one size, unpaired; the channels may differ), generators G_st: S -> T and
G_ts: T -> S, critics D_s on S and D_t on T. One step:

    n_critic times:   x_s ~ S, x_t ~ T (B each), eps_s, eps_t ~ U[0, 1]^B
        L_D = L_W(D_t; real x_t, fake G_st(x_s), eps_t) + L_W(D_s; real x_s, fake G_ts(x_t), eps_s)
        one optimizer step over D_s and D_t (each critic's gradient is its own term's); clip: clamp both
    once:             x_s ~ S, x_t ~ T
        L_G = -mean D_t(G_st(x_s)) - mean D_s(G_ts(x_t))                                          adversarial
              + lambda_cyc (|G_ts(G_st(x_s)) - x_s|_1 + |G_st(G_ts(x_t)) - x_t|_1)                cycle
              + lambda_id (|G_st(x_t) - x_t|_1 + |G_ts(x_s) - x_s|_1)                             identity
        one optimizer step over G_st and G_ts (CycleGAN's one Adam over both generators)

L_W is the critic objective of ``fastwgan.objectives`` (-W, plus lambda times the per-sample penalty at
x_hat = eps x_real + (1 - eps) x_fake); |.|_1 is the mean absolute difference over all elements (nn.L1Loss).
lambda_cyc = 10 and lambda_id = 0.5 lambda_cyc are CycleGAN's defaults (its lambda_identity 0.5 scales
lambda_A). The identity term feeds a T image to G_st, so it needs both domains to have the same channels; when
they differ its default is 0. The critics' learning rate is ``lr_d``, the generators' ``lr_g``; both use
``TrainConfig.optimizer`` (the "wgan-gp" preset: Adam 1e-4, betas (0, 0.9), lambda 10, n_critic 5).

Optional, CyCADA's semantic consistency (Hoffman et al. 2018, "CyCADA: cycle-consistent adversarial domain
adaptation", ICML, eq. 4): with a frozen classifier f of source images (``semantic=``), L_G also gets
lambda_sem (CE(f(G_st(x_s)), argmax f(x_s)) + CE(f(G_ts(x_t)), argmax f(x_t))): a translation must keep the
class f reads in its input (CycleGAN alone may turn a 6 into a 7 and hide the 6 in faint texture, which the cycle
then reads back).

The random stream (one CPU generator seeded with ``config.seed``), per step, in this order:

    for k in range(n_critic):  idx_s[k] = randint(0, N_s, (B,)); idx_t[k] = randint(0, N_t, (B,))
                               eps_t[k] = rand(B); eps_s[k] = rand(B)           (gp / lp only)
    gen_s = randint(0, N_s, (B,)); gen_t = randint(0, N_t, (B,))               the generator update's batches

The losses are written once (``critic_losses``, ``generator_losses``) and shared by the eager oracle
``ReferenceTranslationTrainer`` (autograd, torch.optim) and the fast ``TranslationTrainer`` (the four networks'
parameters in two flat buffers, critics and generators, updated by the fused optimizer (``fastwgan.flatopt``);
the penalty through fastwgan's ops and an inner torch.func gradient; each update one compiled graph).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad_and_value

from . import checkpoint, objectives, rng
from .compile import compile_step
from .config import TrainConfig
from .domains import DomainTrainerBase, check_domain, functional, kept
from .flat import flatten_parameters
from .flatopt import FlatOptimizer, frozen, load_torch_optimizer, torch_optimizer, torch_step
from .images import as_float
from .loop import probe

__all__ = [
    "TranslationTrainer",
    "ReferenceTranslationTrainer",
    "critic_losses",
    "generator_losses",
    "l1",
    "DIRECTIONS",
    "load_translation",
]

DIRECTIONS = ("s2t", "t2s")
CYCLE_WEIGHT = 10.0  # CycleGAN's lambda_A = lambda_B
IDENTITY_RATIO = 0.5  # CycleGAN's lambda_identity: the identity weight relative to the cycle weight


# ---------------------------------------------------------------------------------------------------------------
# The losses, written once for both trainers. The networks are callables (modules, or functional calls).
# ---------------------------------------------------------------------------------------------------------------
def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The mean absolute difference over all elements (nn.L1Loss, CycleGAN's cycle and identity criterion)."""
    return (a - b).abs().mean()


def critic_losses(
    g_st,
    g_ts,
    d_s,
    d_t,
    x_s,
    x_t,
    eps_s,
    eps_t,
    loss: str,
    gp_weight: float,
    calculus: objectives.Calculus = objectives.EAGER,
):
    """L_D of both critics on one pair of batches (module docstring), a function of the critics' parameters.

    Args:
        g_st, g_ts: the generators (their fakes are taken without gradient).
        d_s, d_t: the critics, x -> (B,) scores.
        x_s, x_t: (B, C_s, H, W), (B, C_t, H, W) real batches in [-1, 1].
        eps_s, eps_t: (B,) interpolation weights, None for "clip".
    Returns:
        (L_D, {"critic_loss", "w_t", "w_s"[, "gp_t", "gp_s"]}: detached 0-d tensors)
    """
    with torch.no_grad():
        fake_t, fake_s = g_st(x_s), g_ts(x_t)  # (B, C_t, H, W), (B, C_s, H, W)
    l_t, a_t = objectives.critic_objective(d_t, x_t, fake_t, eps_t, loss, gp_weight, calculus)
    l_s, a_s = objectives.critic_objective(d_s, x_s, fake_s, eps_s, loss, gp_weight, calculus)
    total = l_t + l_s
    aux = {"critic_loss": total.detach(), "w_t": a_t["w_estimate"], "w_s": a_s["w_estimate"]}
    if "gp" in a_t:
        aux.update(gp_t=a_t["gp"], gp_s=a_s["gp"])
    return total, aux


def generator_losses(
    g_st,
    g_ts,
    d_s,
    d_t,
    x_s,
    x_t,
    cycle_weight: float,
    identity_weight: float,
    classify=None,
    semantic_weight: float = 0.0,
):
    """L_G of both generators on one pair of batches (module docstring), a function of their parameters.

    With ``classify`` (a frozen classifier f of source-channel images) and ``semantic_weight`` > 0, CyCADA's
    semantic consistency (Hoffman et al. 2018, eq. 4) is added: a translation keeps the class f reads in its
    input, CE(f(G_st(x_s)), argmax f(x_s)) + CE(f(G_ts(x_t)), argmax f(x_t)).

    Returns:
        (L_G, {"generator_loss", "adversarial", "cycle", "identity"[, "semantic"]}: detached 0-d tensors; the
        cycle, identity and semantic entries unweighted, identity 0 when its weight is 0)
    """
    fake_t, fake_s = g_st(x_s), g_ts(x_t)
    adversarial = -(d_t(fake_t).mean() + d_s(fake_s).mean())
    cycle = l1(g_ts(fake_t), x_s) + l1(g_st(fake_s), x_t)
    total = adversarial + cycle_weight * cycle
    identity = torch.zeros((), device=x_s.device)
    if identity_weight:
        identity = l1(g_st(x_t), x_t) + l1(g_ts(x_s), x_s)
        total = total + identity_weight * identity
    aux = {
        "generator_loss": None,
        "adversarial": adversarial.detach(),
        "cycle": cycle.detach(),
        "identity": identity.detach(),
    }
    if classify is not None:
        with torch.no_grad():
            p_s, p_t = classify(x_s).argmax(1), classify(x_t).argmax(1)  # (B,) the classes f reads in the inputs
        semantic = F.cross_entropy(classify(fake_t).float(), p_s) + F.cross_entropy(classify(fake_s).float(), p_t)
        total = total + semantic_weight * semantic
        aux["semantic"] = semantic.detach()
    aux["generator_loss"] = total.detach()
    return total, aux


def _scores(d):
    """A critic's output (B,) or (B, 1) as (B,) fp32."""
    return lambda x: d(x).reshape(-1).float()


# ---------------------------------------------------------------------------------------------------------------
# What both trainers share
# ---------------------------------------------------------------------------------------------------------------
class _TranslationBase(DomainTrainerBase):
    kind = "translation"
    plot_panels = (
        (
            "critics",
            (
                ("critic_loss", "critic loss (both critics)"),
                ("w_t", "W-estimate, target: E[D_t(t)] - E[D_t(G_st(s))]"),
                ("w_s", "W-estimate, source: E[D_s(s)] - E[D_s(G_ts(t))]"),
                ("gp_t", "penalty, target critic"),
                ("gp_s", "penalty, source critic"),
            ),
        ),
        (
            "translators",
            (
                ("generator_loss", "total"),
                ("adversarial", "adversarial"),
                ("cycle", "cycle L1"),
                ("identity", "identity L1"),
                ("semantic", "semantic cross-entropy"),
            ),
        ),
    )

    def __init__(
        self,
        g_st: nn.Module,
        g_ts: nn.Module,
        d_s: nn.Module,
        d_t: nn.Module,
        config: TrainConfig,
        cycle_weight: float = CYCLE_WEIGHT,
        identity_weight: float | None = None,
        *,
        semantic: nn.Module | None = None,
        semantic_weight: float = 1.0,
    ):
        super().__init__(config)
        for label, m in (("g_st", g_st), ("g_ts", g_ts), ("d_s", d_s), ("d_t", d_t)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{label} must be a torch.nn.Module, got {type(m).__name__}")
        from .models import has_batch_norm

        for label, m in (("d_s", d_s), ("d_t", d_t)):
            if config.uses_penalty and has_batch_norm(m):
                raise ValueError(
                    f"{label}: batch norm is not allowed with the {config.loss!r} loss (it breaks the "
                    "per-sample gradient penalty); use layer norm or none"
                )
        for name, v in (("cycle_weight", cycle_weight), ("identity_weight", identity_weight)):
            if v is None and name == "identity_weight":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
                raise ValueError(f"{name} must be a non-negative finite number, got {v!r}")
        if semantic is not None and not isinstance(semantic, nn.Module):
            raise TypeError(
                f"semantic must be a torch.nn.Module (a classifier of source images), got {type(semantic).__name__}"
            )
        if (
            isinstance(semantic_weight, bool)
            or not isinstance(semantic_weight, (int, float))
            or not 0 <= semantic_weight < float("inf")
        ):
            raise ValueError(f"semantic_weight must be a non-negative finite number, got {semantic_weight!r}")
        # CyCADA's semantic consistency: a frozen classifier, in eval mode, never trained here
        self.semantic = None if semantic is None else semantic.to(self.device).eval().requires_grad_(False)
        self.semantic_weight = float(semantic_weight)
        self.cycle_weight = float(cycle_weight)
        # None: 0.5 cycle_weight when the domains have the same channels, else 0; decided by the first fit, when
        # the domains are known (check_domains)
        self.identity_weight = None if identity_weight is None else float(identity_weight)
        dev = self.device
        self.generators = nn.ModuleDict({"g_st": g_st, "g_ts": g_ts}).to(dev)
        self.critics = nn.ModuleDict({"d_s": d_s, "d_t": d_t}).to(dev)
        self.metrics = (
            "critic_loss",
            "w_t",
            "w_s",
            *(("gp_t", "gp_s") if config.uses_penalty else ()),
            "generator_loss",
            "adversarial",
            "cycle",
            "identity",
            *(("semantic",) if semantic is not None else ()),
        )
        # (source sample shape, target sample shape) that `translate` checks inputs against: set by fit, or by
        # load_translation from the run's specs
        self.shapes: tuple | None = None

    g_st = property(lambda self: self.generators["g_st"])
    g_ts = property(lambda self: self.generators["g_ts"])
    d_s = property(lambda self: self.critics["d_s"])
    d_t = property(lambda self: self.critics["d_t"])

    def _networks(self) -> dict[str, nn.Module]:
        return {**self.generators, **self.critics}

    # ------------------------------------------------------------------ data
    def check_domains(self, source, target) -> tuple[torch.Tensor, torch.Tensor]:
        """Check a source and a target set against the networks before anything runs: both (N, C, H, W) with
        N >= 1, one image size, G_st(source) shaped like target images and G_ts(target) like source images, one
        score per sample from each critic. Returns both as tensors; one-line errors name the problem."""
        s, t = check_domain(source, "source"), check_domain(target, "target")
        if s.shape[2:] != t.shape[2:]:
            raise ValueError(
                f"source and target: images must have one size, got {s.shape[2]}x{s.shape[3]} (source) "
                f"and {t.shape[2]}x{t.shape[3]} (target)"
            )
        dev = self.device
        xs, xt = as_float(s[:2]).to(dev), as_float(t[:2]).to(dev)
        for label, net, x, want in (("g_st", self.g_st, xs, t.shape[1:]), ("g_ts", self.g_ts, xt, s.shape[1:])):
            out = probe(
                net,
                x,
                None,
                lambda e, label=label, x=x: f"{label}: calling it on images of shape {tuple(x.shape)} failed: {e}",
            )
            if tuple(out.shape[1:]) != tuple(want):
                raise ValueError(
                    f"{label}: maps {tuple(x.shape[1:])} images to {tuple(out.shape[1:])}, but the other "
                    f"domain's images are {tuple(want)}"
                )
        for label, net, x in (("d_s", self.d_s, xs), ("d_t", self.d_t, xt)):
            out = probe(
                net,
                x,
                None,
                lambda e, label=label, x=x: f"{label}: calling it on images of shape {tuple(x.shape)} failed: {e}",
            )
            if tuple(out.shape) not in ((len(x),), (len(x), 1)):
                raise ValueError(
                    f"{label}: returns shape {tuple(out.shape)} for a batch of {len(x)}; a critic "
                    f"returns one score per sample"
                )
        if self.semantic is not None and s.shape[1] != t.shape[1]:
            raise ValueError(
                f"semantic: the classifier reads source images and translations to the target alike, "
                f"but the source has {s.shape[1]} channels and the target {t.shape[1]}"
            )
        if self.identity_weight is None:
            self.identity_weight = IDENTITY_RATIO * self.cycle_weight if s.shape[1] == t.shape[1] else 0.0
        if self.identity_weight and s.shape[1] != t.shape[1]:
            raise ValueError(
                f"identity_weight: the identity loss feeds target images to G_st, but the source has "
                f"{s.shape[1]} channels and the target {t.shape[1]}; set identity_weight=0"
            )
        self.shapes = (tuple(s.shape[1:]), tuple(t.shape[1:]))
        return s, t

    def _draw(self, sizes):
        cfg, g = self.config, self._gen
        n_s, n_t = sizes
        b = cfg.batch_size
        idx_s, idx_t, eps_s, eps_t = [], [], [], []
        for _ in range(cfg.n_critic):
            idx_s.append(torch.randint(0, n_s, (b,), generator=g))
            idx_t.append(torch.randint(0, n_t, (b,), generator=g))
            if cfg.uses_penalty:
                eps_t.append(torch.rand(b, generator=g))
                eps_s.append(torch.rand(b, generator=g))
        draw = {
            "idx_s": torch.stack(idx_s),
            "idx_t": torch.stack(idx_t),
            "gen_s": torch.randint(0, n_s, (b,), generator=g),
            "gen_t": torch.randint(0, n_t, (b,), generator=g),
        }
        if cfg.uses_penalty:
            draw.update(eps_s=torch.stack(eps_s), eps_t=torch.stack(eps_t))
        return draw

    def _train_step(self, domains, draw):
        src_s, src_t = domains
        draw = {k: v.to(self.device) for k, v in draw.items()}
        eps_s, eps_t = draw.get("eps_s"), draw.get("eps_t")
        ms = [
            self._critic_update(
                src_s,
                draw["idx_s"][k],
                src_t,
                draw["idx_t"][k],
                None if eps_s is None else eps_s[k],
                None if eps_t is None else eps_t[k],
            )
            for k in range(self.config.n_critic)
        ]
        out = {key: torch.stack([m[key] for m in ms]).mean() for key in ms[0]}
        out.update(self._generator_update(src_s, draw["gen_s"], src_t, draw["gen_t"]))
        return out

    def _critic_update(self, src_s, idx_s, src_t, idx_t, eps_s, eps_t) -> dict:
        raise NotImplementedError

    def _generator_update(self, src_s, idx_s, src_t, idx_t) -> dict:
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def fit(
        self,
        source,
        target,
        steps: int | None = None,
        *,
        add_steps: int | None = None,
        out=None,
        overwrite: bool = False,
        log_every: int = 10,
        sample_every: int | None = None,
        checkpoint_every: int | None = None,
        keep_checkpoints: int = 3,
        progress: bool | None = None,
        run_config: dict | None = None,
        handle_signals: bool = True,
    ):
        """Train until ``steps`` steps in total (or ``add_steps`` more than now), each step n_critic updates of both
        critics and one of both generators (module docstring).

        Args:
            source, target: the two unpaired image sets, uint8 (N, C, H, W) (floats in [-1, 1] taken as they are),
                one H, W; the channels may differ.
            steps / add_steps: the run's total steps, or more from now (exactly one).
            out: a run folder (config.json, stats.jsonl, samples/ grids of source -> target -> source and target
                -> source -> target, plots/, checkpoints/); None writes nothing. ``fastwgan.run.check_out`` rules.
            overwrite, log_every, sample_every, checkpoint_every, keep_checkpoints, progress, run_config,
            handle_signals: as for ``fastwgan.Trainer.fit``.
        Returns:
            self.
        """
        s, t = self.check_domains(source, target)
        info = {
            "cycle_weight": self.cycle_weight,
            "identity_weight": self.identity_weight,
            "semantic_weight": self.semantic_weight if self.semantic is not None else None,
            "networks": {k: getattr(m, "spec", None) for k, m in self._networks().items()},
            **(run_config or {}),
        }
        return self._fit(
            (s.to(self.device), t.to(self.device)),
            steps,
            add_steps,
            out=out,
            overwrite=overwrite,
            log_every=log_every,
            sample_every=sample_every,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints,
            progress=progress,
            run_config=info,
            handle_signals=handle_signals,
        )

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def translate(self, x, direction: str = "s2t", batch_size: int = 1024) -> torch.Tensor:
        """Translate images: G_st(x) ("s2t", x from S) or G_ts(x) ("t2s", x from T), in eval mode.

        Args:
            x: (N, C, H, W) uint8 images or floats in [-1, 1].
        Returns:
            (N, C', H, W) float CPU tensor in [-1, 1] (``fastwgan.data.to_uint8`` converts).
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        net = self.g_st if direction == "s2t" else self.g_ts
        want = None if self.shapes is None else self.shapes[0 if direction == "s2t" else 1]
        x = check_domain(
            x,
            f"translate({direction!r})",
            channels=None if want is None else want[0],
            size=None if want is None else want[1:],
        )
        was = net.training
        net.eval()
        try:
            return torch.cat(
                [
                    net(as_float(x[i : i + batch_size]).to(self.device)).float().cpu()
                    for i in range(0, len(x), batch_size)
                ]
            )
        finally:
            net.train(was)

    def _preview(self, writer, step, domains):
        """samples/step_N.png: rows of 8 source images, G_st of them, G_ts(G_st(.)) (source -> target -> source),
        then the same for 8 target images (target -> source -> target); 1-channel rows shown in RGB."""
        src_s, src_t = domains
        g = rng.make_generator(self.config.seed + 2)  # the same images at every step
        pick_s = torch.randint(0, len(src_s), (8,), generator=g).to(src_s.device)
        pick_t = torch.randint(0, len(src_t), (8,), generator=g).to(src_t.device)
        xs, xt = src_s[pick_s].cpu(), src_t[pick_t].cpu()
        st, ts = self.translate(xs, "s2t"), self.translate(xt, "t2s")
        rows = [as_float(xs), st, self.translate(st, "t2s"), as_float(xt), ts, self.translate(ts, "s2t")]
        rgb = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows]
        writer.samples(step, torch.cat(rgb), nrow=8)


class ReferenceTranslationTrainer(_TranslationBase):
    """The eager oracle: the module docstring's step in plain autograd and torch.optim (one optimizer over both
    critics, one over both generators; clip: per-parameter clamp).

    Args:
        g_st, g_ts: the generators S -> T and T -> S (e.g. ``fastwgan.models.translator``).
        d_s, d_t: the critics on S and T (any critic: ``fastwgan.models.build(...)[1]``), no batch norm with a
            penalty.
        config: a ``TrainConfig`` (loss, optimizer, learning rates, n_critic, batch size, seed, device).
        cycle_weight: lambda_cyc (CycleGAN's 10).
        identity_weight: lambda_id; default 0.5 lambda_cyc when the domains' channels match, else 0.
        semantic: optional, CyCADA's semantic consistency (``generator_losses``): a classifier of source images
            (e.g. one trained on the labelled source), frozen; it needs both domains to have the same channels.
        semantic_weight: its weight (CyCADA's 1).
    """

    name = "reference"

    def __init__(
        self,
        g_st,
        g_ts,
        d_s,
        d_t,
        config: TrainConfig,
        cycle_weight: float = CYCLE_WEIGHT,
        identity_weight: float | None = None,
        *,
        semantic: nn.Module | None = None,
        semantic_weight: float = 1.0,
    ):
        if isinstance(config, TrainConfig) and config.dtype != "float32":
            raise ValueError(f"TrainConfig.dtype: the reference is the float32 oracle, got {config.dtype!r}")
        super().__init__(
            g_st,
            g_ts,
            d_s,
            d_t,
            config,
            cycle_weight,
            identity_weight,
            semantic=semantic,
            semantic_weight=semantic_weight,
        )
        self.opt_d = torch_optimizer(config, self.critics.parameters(), config.lr_d)
        self.opt_g = torch_optimizer(config, self.generators.parameters(), config.lr_g)

    def critic_gradient(self, x_s, x_t, eps_s, eps_t) -> tuple[torch.Tensor, dict]:
        """d L_D / d(critic parameters) as one flat tensor (D_s's, then D_t's), nothing updated (for tests)."""
        cfg = self.config
        loss, aux = critic_losses(
            self.g_st, self.g_ts, _scores(self.d_s), _scores(self.d_t), x_s, x_t, eps_s, eps_t, cfg.loss, cfg.gp_weight
        )
        params = list(self.critics.parameters())
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]), aux

    def _critic_update(self, src_s, idx_s, src_t, idx_t, eps_s, eps_t):
        cfg = self.config
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])  # (B, C_s, H, W), (B, C_t, H, W)
        loss, aux = critic_losses(
            self.g_st, self.g_ts, _scores(self.d_s), _scores(self.d_t), x_s, x_t, eps_s, eps_t, cfg.loss, cfg.gp_weight
        )
        torch_step(self.opt_d, loss, self.critics.parameters() if cfg.loss == "clip" else None, cfg.clip_value)
        return aux

    def _generator_update(self, src_s, idx_s, src_t, idx_t):
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])
        with frozen(self.critics):  # no critic gradients in the generator phase
            loss, aux = generator_losses(
                self.g_st,
                self.g_ts,
                _scores(self.d_s),
                _scores(self.d_t),
                x_s,
                x_t,
                self.cycle_weight,
                self.identity_weight,
                self.semantic,
                self.semantic_weight,
            )
            torch_step(self.opt_g, loss)
        return aux

    def _optimizer_state(self) -> dict:
        return {"critics": self.opt_d.state_dict(), "generators": self.opt_g.state_dict()}

    def _load_optimizer_state(self, state: dict) -> None:
        load_torch_optimizer(self.opt_d, state["critics"], "critics")
        load_torch_optimizer(self.opt_g, state["generators"], "generators")


class TranslationTrainer(_TranslationBase):
    """The fast trainer, a drop-in twin of ``ReferenceTranslationTrainer`` (same arguments, stream and results
    within fp32 tolerance): both critics' parameters are views of one flat buffer, both generators' of another;
    each update is one compiled graph (``fastwgan.compile``) that differentiates with torch.func and steps with
    the fused optimizer (``fastwgan.flatopt``; RMSprop + clamp in one pass for "clip"); the penalty goes through
    ``fastwgan.ops`` (``fastwgan.objectives.functional``); the domains live on the device and batches are
    gathered there.

    Args (beyond the reference's):
        compile: compile each update (fullgraph); False runs the same functional updates eagerly.
        impl: "auto" | "triton" | "torch" for every op, or a dict {"optimizer", "interpolate", "penalty"}
            (defaults: ``fastwgan.trainer.DEFAULT_IMPL``).
        compile_mode: torch.compile mode ("reduce-overhead": CUDA graphs on CUDA).
    """

    name = "fast"

    def __init__(
        self,
        g_st,
        g_ts,
        d_s,
        d_t,
        config: TrainConfig,
        cycle_weight: float = CYCLE_WEIGHT,
        identity_weight: float | None = None,
        *,
        semantic: nn.Module | None = None,
        semantic_weight: float = 1.0,
        compile: bool = True,
        impl: str | dict = "auto",
        compile_mode: str | None = None,
        threads: int | str | None = "auto",
    ):
        super().__init__(
            g_st,
            g_ts,
            d_s,
            d_t,
            config,
            cycle_weight,
            identity_weight,
            semantic=semantic,
            semantic_weight=semantic_weight,
        )
        from .threads import ThreadPolicy

        self.threads = ThreadPolicy(threads, self.device)  # CPU thread count (fastwgan.threads)
        from .trainer import resolve_impl

        self.impl = resolve_impl(impl, self.device)
        cfg, dev = config, self.device
        self.flat_d = flatten_parameters(self.critics, grad=False)
        self.flat_g = flatten_parameters(self.generators, grad=False)
        self.optim = FlatOptimizer(
            cfg.optimizer, cfg.betas, cfg.rmsprop_alpha, cfg.opt_eps, cfg.clip_value, self.impl["optimizer"]
        )
        self.opt_state = {"critics": self.optim.new_state(self.flat_d), "generators": self.optim.new_state(self.flat_g)}
        self.lr = {"critics": torch.tensor(cfg.lr_d, device=dev), "generators": torch.tensor(cfg.lr_g, device=dev)}
        self._param_groups = {
            "critics": self.optim.param_group(cfg.lr_d, len(self.flat_d.params)),
            "generators": self.optim.param_group(cfg.lr_g, len(self.flat_g.params)),
        }
        self.calculus = objectives.functional(self.impl["interpolate"], self.impl["penalty"])
        self.compiled = compile
        self._copy_outputs = compile and compile_mode == "reduce-overhead"
        self._critic_fn = compile_step(self._critic_step, compile_mode, dev) if compile else self._critic_step
        self._gen_fn = compile_step(self._generator_step, compile_mode, dev) if compile else self._generator_step

    # Functional views of the networks (domains.functional): parameters (views of the flat buffers), own buffers.
    def _nets(self, g_params: dict, d_params: dict):
        g, d = self.generators, self.critics
        return (
            functional(g["g_st"], g_params, "g_st"),
            functional(g["g_ts"], g_params, "g_ts"),
            _scores(functional(d["d_s"], d_params, "d_s")),
            _scores(functional(d["d_t"], d_params, "d_t")),
        )

    def _critic_grad(self, d_flat, g_flat, x_s, x_t, eps_s, eps_t):
        cfg = self.config
        g_params = self.flat_g.unflatten(g_flat)

        def loss_fn(d_params):
            return critic_losses(
                *self._nets(g_params, d_params), x_s, x_t, eps_s, eps_t, cfg.loss, cfg.gp_weight, self.calculus
            )

        return grad_and_value(loss_fn, has_aux=True)(self.flat_d.unflatten(d_flat))

    def critic_gradient(self, x_s, x_t, eps_s, eps_t) -> tuple[torch.Tensor, dict]:
        """d L_D / d(critic parameters) as one flat tensor (D_s's, then D_t's), nothing updated (for tests)."""
        grads, (_, aux) = self._critic_grad(self.flat_d.data, self.flat_g.data, x_s, x_t, eps_s, eps_t)
        return torch.cat([g.reshape(-1) for g in grads.values()]), aux

    def _critic_step(self, d_flat, g_flat, state, lr, src_s, idx_s, src_t, idx_t, eps_s, eps_t):
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])  # gathered + normalised on the device
        grads, (_, aux) = self._critic_grad(d_flat, g_flat, x_s, x_t, eps_s, eps_t)
        self.optim.update(self.flat_d, d_flat, list(grads.values()), state, lr, clip=self.config.loss == "clip")
        return aux

    def _generator_step(self, g_flat, d_flat, state, lr, src_s, idx_s, src_t, idx_t):
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])
        d_params = self.flat_d.unflatten(d_flat.detach())

        def loss_fn(g_params):
            return generator_losses(
                *self._nets(g_params, d_params),
                x_s,
                x_t,
                self.cycle_weight,
                self.identity_weight,
                self.semantic,
                self.semantic_weight,
            )

        grads, (_, aux) = grad_and_value(loss_fn, has_aux=True)(self.flat_g.unflatten(g_flat))
        self.optim.update(self.flat_g, g_flat, list(grads.values()), state, lr)
        return aux

    def _critic_update(self, src_s, idx_s, src_t, idx_t, eps_s, eps_t):
        return kept(
            self._critic_fn(
                self.flat_d.data,
                self.flat_g.data,
                self.opt_state["critics"],
                self.lr["critics"],
                src_s,
                idx_s,
                src_t,
                idx_t,
                eps_s,
                eps_t,
            ),
            self._copy_outputs,
        )

    def _generator_update(self, src_s, idx_s, src_t, idx_t):
        return kept(
            self._gen_fn(
                self.flat_g.data,
                self.flat_d.data,
                self.opt_state["generators"],
                self.lr["generators"],
                src_s,
                idx_s,
                src_t,
                idx_t,
            ),
            self._copy_outputs,
        )

    def _optimizer_state(self) -> dict:
        return {
            net: FlatOptimizer.state_dict(flat, self.opt_state[net], self._param_groups[net])
            for net, flat in (("critics", self.flat_d), ("generators", self.flat_g))
        }

    def _load_optimizer_state(self, state: dict) -> None:
        for net, flat in (("critics", self.flat_d), ("generators", self.flat_g)):
            FlatOptimizer.load_state_dict(flat, self.opt_state[net], state[net], net)


def load_translation(run, *, compile: bool = False, device: str | None = None, threads="auto") -> TranslationTrainer:
    """The translation trainer of a run folder written by ``fastwgan translate train`` (or any ``fit(out=...)``
    whose networks carry a ``spec``), at its latest checkpoint.

    Raises:
        FileNotFoundError / ValueError naming the folder when it is not a translation run.
    """
    from . import models
    from .run import read_config

    cfg_json = read_config(run)
    if cfg_json.get("kind") != "translation":
        raise ValueError(
            f"{run}: not a translation run (its config.json has kind {cfg_json.get('kind')!r}); "
            "train one with `fastwgan translate train`"
        )
    specs = cfg_json.get("networks") or {}
    if any(specs.get(k) is None for k in ("g_st", "g_ts", "d_s", "d_t")):
        raise ValueError(
            f"{run}: its networks have no spec to rebuild them from (user modules): load the "
            "checkpoint into your own trainer with load_state_dict"
        )
    config = TrainConfig.from_dict({**cfg_json["config"], **({"device": device} if device else {})})
    nets = {k: models.translator(**specs[k]) for k in ("g_st", "g_ts")}
    nets.update({k: models.build(**specs[k])[1] for k in ("d_s", "d_t")})
    trainer = TranslationTrainer(
        nets["g_st"],
        nets["g_ts"],
        nets["d_s"],
        nets["d_t"],
        config,
        cfg_json["cycle_weight"],
        cfg_json["identity_weight"],
        compile=compile,
        threads=threads,
    )
    state = checkpoint.load(Path(run) / "checkpoints")
    trainer.load_state_dict(state)
    s_spec, t_spec = specs["g_st"], specs["g_ts"]
    size = s_spec["image_size"]
    trainer.shapes = ((s_spec["channels_in"], size, size), (t_spec["channels_in"], size, size))
    return trainer
