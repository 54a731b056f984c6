"""Wasserstein feature alignment for unsupervised domain adaptation: WDGRL (Shen, Qu, Zhang & Yu 2018,
"Wasserstein distance guided representation learning for domain adaptation", AAAI), Algorithm 1.

A feature extractor f_g: x -> h (B, F) and a classifier f_c: h -> logits (B, K) learn from labelled source data
(x_s, y_s); a domain critic f_w: h -> (B,) estimates the Wasserstein distance between the source and the target
features, and the extractor minimises that estimate, so that features of unlabelled target images x_t come to
look like source features and the classifier carries over. One step, on one source and one target batch:

    h_s = f_g(x_s), h_t = f_g(x_t)                                      (no gradient: f_g is fixed here)
    n_critic times, eps ~ U[0, 1]^B:
        L_wd   = mean f_w(h_s) - mean f_w(h_t)
        L_grad = mean over h in H of (||grad_h f_w(h)||_2 - 1)^2,  H = {h_s, h_t, eps h_s + (1 - eps) h_t}
        theta_w <- theta_w + alpha_1 grad (L_wd - gamma L_grad)       (the critic: ascent, gamma = gp_weight)
    theta_c <- theta_c - alpha_2 grad L_c,  theta_g <- theta_g - alpha_2 grad (L_c + lambda L_wd)
        L_c = cross-entropy of f_c(f_g(x_s)) against y_s

H, the paper's h-hat, holds the source and target features themselves beside the interpolates: eps in
{1, 0, u}. The critic's objective is ``fastwgan.objectives.critic_objective`` (real = source features, fake =
target features), the same the GAN and translation critics use, through the same fused ops in the fast
trainer. With "clip" the critic is clamped instead. L_c does not depend on theta_w and L_wd not on theta_c, so
one optimizer step over (theta_g, theta_c) on L_c + lambda L_wd is the paper's two updates. The critic's
learning rate is ``TrainConfig.lr_d`` (alpha_1), the extractor's and classifier's ``lr_g`` (alpha_2); lambda is
``weight`` (1 by default, as the public PyTorch implementation's wd_clf).

The random stream (one CPU generator seeded with ``config.seed``), per step: idx_s = randint(0, N_s, (B,)),
idx_t = randint(0, N_t, (B,)), then eps[k] = rand(B) for k < n_critic (gp / lp only).

``ReferenceAdaptTrainer`` is the eager oracle; ``AdaptTrainer`` keeps the critic's parameters in one flat buffer
and the extractor's and classifier's in another, updates them with the fused optimizer, and runs each update
as one compiled graph. The losses are written once (``domain_critic_loss``, ``alignment_loss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad_and_value

from . import objectives
from .compile import compile_step
from .config import TrainConfig
from .data import check_labels
from .domains import DomainTrainerBase, check_domain, functional, kept
from .flat import flatten_parameters
from .flatopt import FlatOptimizer, frozen, load_torch_optimizer, torch_optimizer, torch_step
from .images import as_float
from .loop import probe

__all__ = ["AdaptTrainer", "ReferenceAdaptTrainer", "domain_critic_loss", "alignment_loss", "digit_networks"]

WEIGHT = 1.0  # lambda


# ---------------------------------------------------------------------------------------------------------------
# The losses, written once for both trainers
# ---------------------------------------------------------------------------------------------------------------
def domain_critic_loss(
    score,
    h_s: torch.Tensor,
    h_t: torch.Tensor,
    eps: torch.Tensor | None,
    loss: str,
    gp_weight: float,
    calculus: objectives.Calculus = objectives.EAGER,
):
    """The domain critic's loss -(L_wd - gamma L_grad) on source and target features (B, F) (module docstring).

    The penalty points H = {h_s, h_t, interpolates} are interpolations with eps in {1, 0, u}: real and fake are
    the features tiled three times, which leaves L_wd's means as they are.

    Returns:
        (loss, {"w_estimate", and with a penalty "gp", "grad_norm"}: detached 0-d tensors)
    """
    if eps is not None:
        ones = torch.ones_like(eps)
        eps = torch.cat([ones, 1 - ones, eps])  # (3B,): h_s, h_t, eps h_s + (1 - eps) h_t
        h_s, h_t = h_s.repeat(3, 1), h_t.repeat(3, 1)
    return objectives.critic_objective(score, h_s, h_t, eps, loss, gp_weight, calculus)


def alignment_loss(extract, classify, score, x_s, y_s, x_t, weight: float):
    """L_c + lambda L_wd, a function of the extractor's and the classifier's parameters (module docstring).

    Returns:
        (loss, {"model_loss", "classifier_loss", "wd"}: detached 0-d tensors)
    """
    h_s, h_t = extract(x_s), extract(x_t)  # (B, F) each
    l_c = F.cross_entropy(classify(h_s).float(), y_s)
    wd = score(h_s).mean() - score(h_t).mean()
    total = l_c + weight * wd
    return total, {"model_loss": total.detach(), "classifier_loss": l_c.detach(), "wd": wd.detach()}


def _scores(d):
    return lambda h: d(h).reshape(-1).float()


def digit_networks(channels: int = 3, num_classes: int = 10, image_size: int = 8, hidden: int = 100, depth: int = 2):
    """The bundled networks: the extractor and classifier of ``fastwgan.classifier.DigitClassifier`` (two 3x3
    convolutions of 32 and 64 channels, a 2x2 max pool, a 128-unit layer: the features; a linear head), its
    128-unit layer sized for ``image_size`` (even; 8: exactly DigitClassifier's, so its weights load), and a
    domain critic on the 128 features: fastwgan's MLP critic (``fastwgan.models.mlp``, ``depth`` ReLU layers of
    ``hidden``, no normalisation). Seed torch before calling.

    Returns:
        (extractor, classifier, critic)
    """
    from .classifier import DigitClassifier
    from .models import mlp

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2 or image_size % 2:
        raise ValueError(f"digit_networks: image_size must be an even integer >= 2, got {image_size!r}")
    model = DigitClassifier(channels)
    i = next(i for i, m in enumerate(model.body) if isinstance(m, nn.Linear))
    if image_size != 8:
        model.body[i] = nn.Linear(64 * (image_size // 2) ** 2, model.body[i].out_features)
    if num_classes != 10:
        model.head = nn.Linear(model.head.in_features, num_classes)
    _, critic = mlp((model.head.in_features,), latent_dim=1, hidden=hidden, depth=depth)
    return model.body, model.head, critic


# ---------------------------------------------------------------------------------------------------------------
# What both trainers share
# ---------------------------------------------------------------------------------------------------------------
class _AdaptBase(DomainTrainerBase):
    kind = "adaptation"
    plot_panels = (
        (
            "domain critic",
            (
                ("critic_loss", "critic loss"),
                ("w_estimate", "W-estimate between source and target features"),
                ("gp", "gradient penalty (unweighted)"),
            ),
        ),
        (
            "extractor + classifier",
            (("model_loss", "total"), ("classifier_loss", "source cross-entropy"), ("wd", "W-distance term")),
        ),
        ("target accuracy", (("target_accuracy", "held-out target accuracy (--eval-data)"),)),
    )

    def __init__(
        self,
        extractor: nn.Module,
        classifier: nn.Module,
        critic: nn.Module,
        config: TrainConfig,
        weight: float = WEIGHT,
    ):
        super().__init__(config)
        for label, m in (("extractor", extractor), ("classifier", classifier), ("critic", critic)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{label} must be a torch.nn.Module, got {type(m).__name__}")
        from .models import has_batch_norm

        if config.uses_penalty and has_batch_norm(critic):
            raise ValueError(
                f"critic: batch norm is not allowed with the {config.loss!r} loss (it breaks the "
                "per-sample gradient penalty); use layer norm or none"
            )
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ValueError(f"weight must be a non-negative finite number, got {weight!r}")
        self.weight = float(weight)
        dev = self.device
        self.model = nn.ModuleDict({"extractor": extractor, "classifier": classifier}).to(dev)
        self.critic = critic.to(dev)
        self.metrics = (
            "critic_loss",
            "w_estimate",
            *(("gp",) if config.uses_penalty else ()),
            "model_loss",
            "classifier_loss",
            "wd",
        )
        self.num_classes: int | None = None

    extractor = property(lambda self: self.model["extractor"])
    classifier = property(lambda self: self.model["classifier"])

    def _networks(self):
        return {**self.model, "critic": self.critic}

    def check_domains(self, source, labels, target):
        """Check the labelled source set, its labels and the target set against the networks: images
        (N, C, H, W) with N >= 1 in both, labels (N_s,) in 0..K-1 where K is the classifier's output size, the
        extractor taking both domains to (B, F) features the classifier and the critic take. Returns
        (source, labels, target)."""
        if labels is None:
            raise ValueError(
                "labels: adaptation trains the classifier on labelled source data: give labels= (one "
                "class id per source image)"
            )
        s, t = check_domain(source, "source"), check_domain(target, "target")
        if s.shape[1:] != t.shape[1:]:
            raise ValueError(
                f"source and target: the extractor takes both, so their images must have one shape, "
                f"got {tuple(s.shape[1:])} (source) and {tuple(t.shape[1:])} (target)"
            )
        dev = self.device
        x = as_float(s[:2]).to(dev)
        h = probe(
            self.extractor,
            x,
            None,
            lambda e: f"extractor: calling it on a source batch of shape {tuple(x.shape)} failed: {e}",
        )
        logits, score = (
            probe(
                net,
                h,
                None,
                lambda e, what=what: (
                    f"{what}: calling it on the extractor's features of shape {tuple(h.shape)} failed: {e}"
                ),
            )
            for what, net in (("classifier", self.classifier), ("critic", self.critic))
        )
        if h.dim() != 2:
            raise ValueError(f"extractor: returns shape {tuple(h.shape)}; it must return features (B, F)")
        if logits.dim() != 2 or logits.shape[0] != 2:
            raise ValueError(f"classifier: returns shape {tuple(logits.shape)}; it must return logits (B, K)")
        if tuple(score.shape) not in ((2,), (2, 1)):
            raise ValueError(f"critic: returns shape {tuple(score.shape)} for 2 feature vectors; one score each")
        self.num_classes = logits.shape[1]
        y = check_labels(labels, len(s), num_classes=self.num_classes, what="labels")
        return s, y, t

    def _draw(self, sizes):
        cfg, g = self.config, self._gen
        n_s, _, n_t = sizes
        b = cfg.batch_size
        draw = {"idx_s": torch.randint(0, n_s, (b,), generator=g), "idx_t": torch.randint(0, n_t, (b,), generator=g)}
        if cfg.uses_penalty:
            draw["eps"] = torch.rand(cfg.n_critic, b, generator=g)
        return draw

    def _train_step(self, domains, draw):
        src_s, y_s, src_t = domains
        draw = {k: v.to(self.device) for k, v in draw.items()}
        x_s, x_t = as_float(src_s[draw["idx_s"]]), as_float(src_t[draw["idx_t"]])
        y = y_s[draw["idx_s"]]
        h_s, h_t = self._features(x_s, x_t)
        eps = draw.get("eps")
        ms = [self._critic_update(h_s, h_t, None if eps is None else eps[k]) for k in range(self.config.n_critic)]
        out = {key: torch.stack([m[key] for m in ms]).mean() for key in ms[0]}
        out.update(self._model_update(x_s, y, x_t))
        return out

    def fit(
        self,
        source,
        target,
        steps: int | None = None,
        *,
        labels=None,
        add_steps: int | None = None,
        out=None,
        overwrite: bool = False,
        log_every: int = 10,
        checkpoint_every: int | None = None,
        keep_checkpoints: int = 3,
        progress: bool | None = None,
        run_config: dict | None = None,
        handle_signals: bool = True,
        evaluators=(),
    ):
        """Train until ``steps`` steps in total (or ``add_steps`` more), each n_critic critic updates and one
        update of the extractor and the classifier (module docstring).

        Args:
            source: labelled source images (N_s, C, H, W) uint8; labels: their class ids (N_s,) (required).
            target: unlabelled target images (N_t, C, H, W) of the same shape.
            steps / add_steps, out, overwrite, log_every, checkpoint_every, keep_checkpoints, progress,
            run_config, handle_signals: as for ``fastwgan.translate.TranslationTrainer.fit``.
            evaluators: callables ``f(trainer) -> dict`` run at log ticks (e.g. the target accuracy on held-out
                labelled target images); their values go to stats.jsonl and the plots.
        Returns:
            self.
        """
        s, y, t = self.check_domains(source, labels, target)
        dev = self.device
        info = {"weight": self.weight, "num_classes": self.num_classes, **(run_config or {})}
        return self._fit(
            (s.to(dev), y.to(dev), t.to(dev)),
            steps,
            add_steps,
            out=out,
            overwrite=overwrite,
            log_every=log_every,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints,
            progress=progress,
            run_config=info,
            handle_signals=handle_signals,
            evaluators=evaluators,
        )

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, x, batch_size: int = 1024) -> torch.Tensor:
        """Class ids (N,) int64 of images (N, C, H, W) (uint8 or floats in [-1, 1]), in eval mode."""
        x = check_domain(x, "predict")
        was = self.model.training
        self.model.eval()
        try:
            return torch.cat(
                [
                    self.classifier(self.extractor(as_float(x[i : i + batch_size]).to(self.device))).argmax(1).cpu()
                    for i in range(0, len(x), batch_size)
                ]
            )
        finally:
            self.model.train(was)

    def accuracy(self, x, labels) -> float:
        """The fraction of ``x`` classified as ``labels`` (e.g. target labels held out for evaluation only)."""
        y = check_labels(labels, len(x), what="labels")
        return float((self.predict(x) == y).float().mean())

    def _features(self, x_s, x_t):
        raise NotImplementedError

    def _critic_update(self, h_s, h_t, eps) -> dict:
        raise NotImplementedError

    def _model_update(self, x_s, y_s, x_t) -> dict:
        raise NotImplementedError


class ReferenceAdaptTrainer(_AdaptBase):
    """The eager oracle of WDGRL: autograd and torch.optim (one optimizer for the critic, one for the extractor
    and the classifier).

    Args:
        extractor: images (B, C, H, W) -> features (B, F).
        classifier: features -> logits (B, K).
        critic: features -> (B,) or (B, 1) (no batch norm with a penalty), e.g. ``digit_networks()``'s.
        config: ``TrainConfig`` (loss, optimizer, lr_d for the critic, lr_g for the rest, betas, n_critic,
            gp_weight = gamma, batch_size, seed, device).
        weight: lambda, the weight of the Wasserstein estimate in the extractor's loss.
    """

    name = "reference"

    def __init__(self, extractor, classifier, critic, config: TrainConfig, weight: float = WEIGHT):
        super().__init__(extractor, classifier, critic, config, weight)
        self.opt_d = torch_optimizer(config, self.critic.parameters(), config.lr_d)
        self.opt_m = torch_optimizer(config, self.model.parameters(), config.lr_g)

    def _features(self, x_s, x_t):
        with torch.no_grad():
            return self.extractor(x_s), self.extractor(x_t)

    def critic_gradient(self, h_s, h_t, eps) -> tuple[torch.Tensor, dict]:
        """d(critic loss) / d(critic parameters) as one flat tensor on features (B, F), nothing updated (tests)."""
        cfg = self.config
        loss, aux = domain_critic_loss(_scores(self.critic), h_s, h_t, eps, cfg.loss, cfg.gp_weight)
        grads = torch.autograd.grad(loss, list(self.critic.parameters()))
        return torch.cat([g.reshape(-1) for g in grads]), aux

    def _critic_update(self, h_s, h_t, eps):
        cfg = self.config
        loss, aux = domain_critic_loss(_scores(self.critic), h_s, h_t, eps, cfg.loss, cfg.gp_weight)
        torch_step(self.opt_d, loss, self.critic.parameters() if cfg.loss == "clip" else None, cfg.clip_value)
        aux["critic_loss"] = loss.detach()
        return aux

    def _model_update(self, x_s, y_s, x_t):
        with frozen(self.critic):  # no critic gradients in the extractor's phase
            loss, aux = alignment_loss(
                self.extractor, self.classifier, _scores(self.critic), x_s, y_s, x_t, self.weight
            )
            torch_step(self.opt_m, loss)
        return aux

    def _optimizer_state(self):
        return {"critic": self.opt_d.state_dict(), "model": self.opt_m.state_dict()}

    def _load_optimizer_state(self, state):
        load_torch_optimizer(self.opt_d, state["critic"], "critic")
        load_torch_optimizer(self.opt_m, state["model"], "model")


class AdaptTrainer(_AdaptBase):
    """The fast WDGRL trainer, a drop-in twin of ``ReferenceAdaptTrainer``: flat buffers, the fused optimizer,
    the penalty through ``fastwgan.ops``, each update one compiled graph.

    Args (beyond the reference's):
        compile: compile each update (fullgraph); False runs the same functional updates eagerly.
        impl: "auto" | "triton" | "torch", or a dict {"optimizer", "interpolate", "penalty"}.
        compile_mode: torch.compile mode.
    """

    name = "fast"

    def __init__(
        self,
        extractor,
        classifier,
        critic,
        config: TrainConfig,
        weight: float = WEIGHT,
        *,
        compile: bool = True,
        impl: str | dict = "auto",
        compile_mode: str | None = None,
        threads: int | str | None = "auto",
    ):
        super().__init__(extractor, classifier, critic, config, weight)
        from .threads import ThreadPolicy

        self.threads = ThreadPolicy(threads, self.device)  # CPU thread count (fastwgan.threads)
        from .trainer import resolve_impl

        cfg, dev = config, self.device
        self.impl = resolve_impl(impl, dev)
        self.flat_d = flatten_parameters(self.critic, grad=False)
        self.flat_m = flatten_parameters(self.model, grad=False)
        self.optim = FlatOptimizer(
            cfg.optimizer, cfg.betas, cfg.rmsprop_alpha, cfg.opt_eps, cfg.clip_value, self.impl["optimizer"]
        )
        self.opt_state = {"critic": self.optim.new_state(self.flat_d), "model": self.optim.new_state(self.flat_m)}
        self.lr = {"critic": torch.tensor(cfg.lr_d, device=dev), "model": torch.tensor(cfg.lr_g, device=dev)}
        self._param_groups = {
            "critic": self.optim.param_group(cfg.lr_d, len(self.flat_d.params)),
            "model": self.optim.param_group(cfg.lr_g, len(self.flat_m.params)),
        }
        self.calculus = objectives.functional(self.impl["interpolate"], self.impl["penalty"])
        self.compiled = compile
        self._copy_outputs = compile and compile_mode == "reduce-overhead"
        wrap = (lambda fn: compile_step(fn, compile_mode, dev)) if compile else (lambda fn: fn)
        self._features_fn = wrap(self._features_step)
        self._critic_fn = wrap(self._critic_step)
        self._model_fn = wrap(self._model_step)

    def _features_step(self, m_flat, x_s, x_t):
        with torch.no_grad():
            f = functional(self.extractor, self.flat_m.unflatten(m_flat), "extractor")
            return f(x_s), f(x_t)

    def _critic_grad(self, d_flat, h_s, h_t, eps):
        cfg = self.config

        def loss_fn(d_params):
            return domain_critic_loss(
                _scores(functional(self.critic, d_params)), h_s, h_t, eps, cfg.loss, cfg.gp_weight, self.calculus
            )

        return grad_and_value(loss_fn, has_aux=True)(self.flat_d.unflatten(d_flat))

    def critic_gradient(self, h_s, h_t, eps) -> tuple[torch.Tensor, dict]:
        """d(critic loss) / d(critic parameters) as one flat tensor on features (B, F), nothing updated (tests)."""
        grads, (_, aux) = self._critic_grad(self.flat_d.data, h_s, h_t, eps)
        return torch.cat([g.reshape(-1) for g in grads.values()]), aux

    def _critic_step(self, d_flat, state, lr, h_s, h_t, eps):
        grads, (loss, aux) = self._critic_grad(d_flat, h_s, h_t, eps)
        self.optim.update(self.flat_d, d_flat, list(grads.values()), state, lr, clip=self.config.loss == "clip")
        return {**aux, "critic_loss": loss.detach()}

    def _model_step(self, m_flat, d_flat, state, lr, x_s, y_s, x_t):
        score = _scores(functional(self.critic, self.flat_d.unflatten(d_flat.detach())))

        def loss_fn(m_params):
            return alignment_loss(
                functional(self.extractor, m_params, "extractor"),
                functional(self.classifier, m_params, "classifier"),
                score,
                x_s,
                y_s,
                x_t,
                self.weight,
            )

        grads, (_, aux) = grad_and_value(loss_fn, has_aux=True)(self.flat_m.unflatten(m_flat))
        self.optim.update(self.flat_m, m_flat, list(grads.values()), state, lr)
        return aux

    def _features(self, x_s, x_t):
        return kept(self._features_fn(self.flat_m.data, x_s, x_t), self._copy_outputs)

    def _critic_update(self, h_s, h_t, eps):
        return kept(
            self._critic_fn(self.flat_d.data, self.opt_state["critic"], self.lr["critic"], h_s, h_t, eps),
            self._copy_outputs,
        )

    def _model_update(self, x_s, y_s, x_t):
        return kept(
            self._model_fn(
                self.flat_m.data, self.flat_d.data, self.opt_state["model"], self.lr["model"], x_s, y_s, x_t
            ),
            self._copy_outputs,
        )

    def _optimizer_state(self):
        return {
            net: FlatOptimizer.state_dict(flat, self.opt_state[net], self._param_groups[net])
            for net, flat in (("critic", self.flat_d), ("model", self.flat_m))
        }

    def _load_optimizer_state(self, state):
        for net, flat in (("critic", self.flat_d), ("model", self.flat_m)):
            FlatOptimizer.load_state_dict(flat, self.opt_state[net], state[net], net)
