"""The plain WGAN / WGAN-GP training loop as public scripts write it: the baseline fastwgan must never lose to.

This is the `loop` provider of `test_bench_steps.py` and the loop `tests/test_gpu_check.py` proves equal to
`ReferenceTrainer.critic_step` (so the baseline is honest: same algorithm, same numbers). It is written the way
the WGAN and WGAN-GP authors' scripts and their PyTorch ports write it, on the user's own modules:

    for each critic update:
        fake = G(z).detach()
        loss = D(fake).mean() - D(real).mean()
        gp:   x_hat = eps * real + (1 - eps) * fake   (eps (B, 1, 1, 1), or (B, 1) for 2-D data)
              grad = autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
              loss += lambda * ((grad.norm over all non-batch dims - 1) ** 2).mean()
        opt_d.zero_grad(); loss.backward(); opt_d.step()
        clip: for p in D.parameters(): p.data.clamp_(-c, c)
    generator update: loss = -D(G(z)).mean(); opt_g.zero_grad(); loss.backward(); opt_g.step()

Optimizers are `torch.optim.RMSprop(params, lr)` and `torch.optim.Adam(params, lr, betas)` with torch's other
defaults (foreach on CUDA), as scripts create them. The critic's gradients from the generator update are computed
and left, as scripts do; `opt_d.zero_grad()` clears them before the next critic step.

Two things are not "as scripts do", on purpose, so that the comparison measures the training step and nothing else:
  * random numbers: the caller passes a `fastwgan.core.rng.StepNoise` (`noise.idx[k]` indexes the dataset, `noise.z[k]`,
    `noise.eps[k]`, `noise.z_gen`), the same draws every fastwgan trainer gets;
  * data: the dataset is uploaded to the device once and each batch is gathered there (no DataLoader, no host
    round trip), with the trainers' normalisation (`fastwgan.data.to_float` for uint8 images, floats as they are).
    This is the fastest way a script can feed its loop, so fastwgan's ratio to it is not flattered by a slow loader.

The two-domain trainers (``fastwgan.uses``) have their loops here too, one class per method, each written the way
that method's public PyTorch port writes it, on the same random numbers (a dict of the trainer's draw) and the same
device-resident data:

    PlainWDGRL (WDGRL, the port ``fastwgan.uses.adapt`` takes its defaults from):
        extractor frozen, critic trainable; with torch.no_grad(): h_s, h_t = extractor(x_s), extractor(x_t)
        k_critic times:
            x = cat([h_s, h_t, eps h_s + (1 - eps) h_t]).requires_grad_()           (eps (B, 1))
            grad = autograd.grad(critic(x), x, grad_outputs=ones, create_graph=True)
            cost = -(critic(h_s).mean() - critic(h_t).mean()) + gamma ((grad.norm(2, dim=1) - 1) ** 2).mean()
            critic_optim.zero_grad(); cost.backward(); critic_optim.step()
        extractor trainable, critic frozen; k_clf times, on the same batch:
            h_s, h_t = extractor(x_s), extractor(x_t)
            loss = CE(classifier(h_s), y_s) + lambda (critic(h_s).mean() - critic(h_t).mean())
            clf_optim.zero_grad(); loss.backward(); clf_optim.step()
        torch.optim.Adam for the critic and for extractor + classifier. Two differences from the port, so that the
        numbers are fastwgan's: the penalty points are concatenated (3B, F) with a per-point norm (the port stacks
        them (3, B, F) and takes the norm over dim 1, the batch), and the interpolate is eps h_s + (1 - eps) h_t
        (the port's h_s + alpha (h_t - h_s) with alpha = 1 - eps); and no ``.item()`` per update (no sync).

Only torch and the public fastwgan API; no pytest, so tests and scripts can load it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastwgan import TrainConfig
from fastwgan.core.engine import resolve_device
from fastwgan.data import to_float

# The values `torch.optim.RMSprop(params, lr)` / `torch.optim.Adam(params, lr, betas)` use when not given.
_TORCH_DEFAULTS = {"rmsprop_alpha": 0.99, "opt_eps": 1e-8}


class PlainLoop:
    """Eager WGAN / WGAN-GP steps on the user's G and D, written like a public training script.

    Args:
        generator: maps z (B, latent_dim) to samples (B, *data_shape).
        critic: maps samples to scores (B,) or (B, 1).
        config: a `fastwgan.TrainConfig` ("clip" or "gp" loss, float32); its optimizer constants other than
            lr and betas must be torch's defaults (a script passes only those).
    """

    def __init__(self, generator: nn.Module, critic: nn.Module, config: TrainConfig):
        if config.loss not in ("clip", "gp"):
            raise ValueError(f"PlainLoop: loss must be 'clip' or 'gp', got {config.loss!r}")
        if config.dtype != "float32":
            raise ValueError(f"PlainLoop: float32 only, got dtype {config.dtype!r}")
        for name, default in _TORCH_DEFAULTS.items():
            if getattr(config, name) != default:
                raise ValueError(
                    f"PlainLoop: config.{name}={getattr(config, name)!r} is not torch's default "
                    f"{default!r}; the plain loop builds its optimizers as scripts do"
                )
        self.config = config
        self.device = resolve_device(config.device)
        self.generator, self.critic = generator.to(self.device), critic.to(self.device)
        if config.optimizer == "rmsprop":
            self.opt_d = torch.optim.RMSprop(self.critic.parameters(), lr=config.lr_d)
            self.opt_g = torch.optim.RMSprop(self.generator.parameters(), lr=config.lr_g)
        else:
            self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=config.lr_d, betas=config.betas)
            self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=config.betas)

    def prepare(self, data: torch.Tensor) -> torch.Tensor:
        """The dataset on the device, as given: (N, C, H, W) uint8 images or (N, ...) floats."""
        if data.dtype != torch.uint8 and not data.is_floating_point():
            raise ValueError(f"PlainLoop: expected uint8 images or floats, got {data.dtype}")
        return data.to(self.device)

    def batch(self, data: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Real batch (B, *data_shape) in float32: uint8 images to [-1, 1], floats as they are."""
        x = data[idx]
        return to_float(x) if x.dtype == torch.uint8 else x.float()

    def critic_step(self, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
        """One critic update; returns the detached critic loss."""
        cfg, G, D = self.config, self.generator, self.critic
        fake = G(z).detach()
        loss = D(fake).mean() - D(real).mean()
        if cfg.loss == "gp":
            e = eps.view(-1, *([1] * (real.dim() - 1)))  # (B, 1, 1, 1) for images, (B, 1) for 2-D points
            x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
            norm = grad.flatten(1).norm(2, dim=1)  # (B,): over all non-batch dims
            loss = loss + cfg.gp_weight * ((norm - 1) ** 2).mean()
        self.opt_d.zero_grad()
        loss.backward()
        self.opt_d.step()
        if cfg.loss == "clip":
            for p in D.parameters():
                p.data.clamp_(-cfg.clip_value, cfg.clip_value)
        return loss.detach()

    def generator_step(self, z: torch.Tensor) -> torch.Tensor:
        """One generator update; returns the detached generator loss."""
        loss = -self.critic(self.generator(z)).mean()
        self.opt_g.zero_grad()
        loss.backward()
        self.opt_g.step()
        return loss.detach()

    def train_step(self, data: torch.Tensor, noise) -> dict[str, torch.Tensor]:
        """n_critic critic updates then one generator update, on `prepare`d data and a StepNoise."""
        noise = noise.to(self.device)
        losses = []
        for k in range(self.config.n_critic):
            eps = None if noise.eps is None else noise.eps[k]
            losses.append(self.critic_step(self.batch(data, noise.idx[k]), noise.z[k], eps))
        return {"critic_loss": torch.stack(losses).mean(), "generator_loss": self.generator_step(noise.z_gen)}


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class PlainWDGRL:
    """Eager WDGRL steps as the public PyTorch port writes them (module docstring).

    Args:
        extractor: images (B, C, H, W) -> features (B, F); classifier: features -> logits (B, K);
        critic: features -> (B,) or (B, 1).
        config: a ``fastwgan.TrainConfig`` with loss "gp" and optimizer "adam" (``fastwgan.uses.adapt.default_config``:
            lr_d for the critic, lr_g for the rest, betas, n_critic = k_critic, gp_weight = gamma).
        weight: lambda (the port's wd_clf); clf_steps: k_clf.
    """

    def __init__(self, extractor, classifier, critic, config: TrainConfig, weight: float, clf_steps: int):
        if config.loss != "gp" or config.optimizer != "adam" or config.dtype != "float32":
            raise ValueError("PlainWDGRL: the port trains with a gradient penalty and Adam in float32")
        if config.opt_eps != _TORCH_DEFAULTS["opt_eps"]:
            raise ValueError(f"PlainWDGRL: config.opt_eps={config.opt_eps!r} is not torch's default")
        self.config, self.weight, self.clf_steps = config, weight, clf_steps
        self.device = resolve_device(config.device)
        self.extractor, self.classifier, self.critic = (m.to(self.device) for m in (extractor, classifier, critic))
        self.critic_optim = torch.optim.Adam(critic.parameters(), lr=config.lr_d, betas=config.betas)
        model = [*extractor.parameters(), *classifier.parameters()]
        self.clf_optim = torch.optim.Adam(model, lr=config.lr_g, betas=config.betas)

    def networks(self) -> dict:
        """{name: module}, named as the reference trainer's (tests compare them)."""
        return {"extractor": self.extractor, "classifier": self.classifier, "critic": self.critic}

    def prepare(self, source: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> tuple:
        """The labelled source and the target on the device: uint8 (N, C, H, W) images, (N_s,) int64 labels."""
        return source.to(self.device), labels.to(self.device), target.to(self.device)

    def gradient_penalty(self, h_s: torch.Tensor, h_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        e = eps[:, None]  # (B, 1)
        x = torch.cat([h_s, h_t, e * h_s + (1 - e) * h_t]).requires_grad_()  # (3B, F)
        preds = self.critic(x)
        (grad,) = torch.autograd.grad(preds, x, grad_outputs=torch.ones_like(preds), create_graph=True)
        return ((grad.norm(2, dim=1) - 1) ** 2).mean()

    def train_step(self, data: tuple, draw: dict) -> dict[str, torch.Tensor]:
        """k_critic critic updates then k_clf extractor + classifier updates on one source and one target batch
        (``draw``: idx_s, idx_t (B,), eps (k_critic, B), shift_s, shift_t (B, 2), the adaptation trainers' stream;
        the batches shifted first when it has shifts)."""
        cfg, critic = self.config, self.critic
        source, labels, target = data
        draw = {k: v.to(self.device) for k, v in draw.items()}
        x_s, x_t, y_s = to_float(source[draw["idx_s"]]), to_float(target[draw["idx_t"]]), labels[draw["idx_s"]]
        if "shift_s" in draw:  # the adaptation trainers' 1-pixel shifts (fastwgan.uses.adapt.SHIFT)
            from fastwgan.uses.domains import shift_images

            x_s, x_t = shift_images(x_s, draw["shift_s"]), shift_images(x_t, draw["shift_t"])
        _set_requires_grad(self.extractor, False)
        _set_requires_grad(critic, True)
        with torch.no_grad():
            h_s, h_t = self.extractor(x_s), self.extractor(x_t)
        for k in range(cfg.n_critic):
            gp = self.gradient_penalty(h_s, h_t, draw["eps"][k])
            wd = critic(h_s).mean() - critic(h_t).mean()
            critic_cost = -wd + cfg.gp_weight * gp
            self.critic_optim.zero_grad()
            critic_cost.backward()
            self.critic_optim.step()
        _set_requires_grad(self.extractor, True)
        _set_requires_grad(critic, False)
        for _ in range(self.clf_steps):
            f_s, f_t = self.extractor(x_s), self.extractor(x_t)
            loss = F.cross_entropy(self.classifier(f_s), y_s) + self.weight * (critic(f_s).mean() - critic(f_t).mean())
            self.clf_optim.zero_grad()
            loss.backward()
            self.clf_optim.step()
        return {"critic_loss": critic_cost.detach(), "model_loss": loss.detach()}


class PlainPixelDA:
    """Eager PixelDA steps as public PyTorch PixelDA code writes them, with a WGAN-GP critic: n_critic critic
    updates on target images against G(x_s, z) (the penalty via autograd.grad(create_graph=True) at interpolates),
    then one Adam step over G and T on alpha (-mean D(G(x_s, z))) + beta (CE(T(G(x_s, z)), y_s) + CE(T(x_s), y_s)),
    T reading G(x_s, z) and x_s shifted by their per-image 1-pixel draws (fastwgan.uses.pixelda's settings).

    Args:
        generator: (x, z) -> images; critic: images -> (B,) or (B, 1); classifier: images -> logits (B, K).
        config: a ``fastwgan.TrainConfig`` with loss "gp" and optimizer "adam" (lr_d: D; lr_g: G and T).
        adv_weight, task_weight: alpha and beta.
        class_critic: the critic is D(x, p), p = softmax(T(x)) with T's parameters detached (``functional_call``),
            in every critic call, the penalty's included (fastwgan.uses.pixelda's ``class_critic``).
    """

    def __init__(
        self,
        generator,
        critic,
        classifier,
        config: TrainConfig,
        adv_weight: float,
        task_weight: float,
        class_critic: bool = False,
    ):
        if config.loss != "gp" or config.optimizer != "adam" or config.dtype != "float32":
            raise ValueError("PlainPixelDA: a gradient penalty and Adam in float32")
        self.config, self.adv_weight, self.task_weight = config, adv_weight, task_weight
        self.class_critic = class_critic
        self.device = resolve_device(config.device)
        self.generator, self.critic, self.classifier = (m.to(self.device) for m in (generator, critic, classifier))
        self.critic_optim = torch.optim.Adam(critic.parameters(), lr=config.lr_d, betas=config.betas)
        model = [*generator.parameters(), *classifier.parameters()]
        self.model_optim = torch.optim.Adam(model, lr=config.lr_g, betas=config.betas)

    def networks(self) -> dict:
        """{name: module}, named as the reference trainer's (tests compare them)."""
        return {"generator": self.generator, "classifier": self.classifier, "critic": self.critic}

    def prepare(self, source: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> tuple:
        return source.to(self.device), labels.to(self.device), target.to(self.device)

    def train_step(self, data: tuple, draw: dict) -> dict[str, torch.Tensor]:
        """``draw``: idx_s, idx_t (n_critic, B), z (n_critic, B, nz), eps (n_critic, B), gen_s (B,), z_gen (B, nz),
        shift (B, 2): the PixelDA trainers' stream."""
        from fastwgan.uses.pixelda import shift_images

        cfg, g = self.config, self.generator
        critic = self._class_aware if self.class_critic else self.critic
        source, labels, target = data
        draw = {k: v.to(self.device) for k, v in draw.items()}
        _set_requires_grad(self.critic, True)
        for k in range(cfg.n_critic):
            x_s, x_t = to_float(source[draw["idx_s"][k]]), to_float(target[draw["idx_t"][k]])
            with torch.no_grad():
                fake = g(x_s, draw["z"][k])
            e = draw["eps"][k].view(-1, 1, 1, 1)
            x_hat = (e * x_t + (1 - e) * fake).requires_grad_()
            (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
            gp = ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
            critic_cost = critic(fake).mean() - critic(x_t).mean() + cfg.gp_weight * gp
            self.critic_optim.zero_grad()
            critic_cost.backward()
            self.critic_optim.step()
        _set_requires_grad(self.critic, False)
        x_s = to_float(source[draw["gen_s"]])
        y = labels[draw["gen_s"]]
        fake = g(x_s, draw["z_gen"])  # unshifted, as the critic saw them; T reads both shifted
        seen_fake, seen_s = shift_images(fake, draw["shift"]), shift_images(x_s, draw["shift"])
        task = F.cross_entropy(self.classifier(seen_fake), y) + F.cross_entropy(self.classifier(seen_s), y)
        loss = self.adv_weight * -critic(fake).mean() + self.task_weight * task
        self.model_optim.zero_grad()
        loss.backward()
        self.model_optim.step()
        return {"critic_loss": critic_cost.detach(), "model_loss": loss.detach()}

    def _class_aware(self, x: torch.Tensor) -> torch.Tensor:
        frozen = {k: v.detach() for k, v in self.classifier.named_parameters()}
        p = F.softmax(torch.func.functional_call(self.classifier, frozen, (x,)), 1)
        return self.critic(x, p)


class PlainDIRTT:
    """Eager DIRT-T refinement steps as public PyTorch VAT / DIRT-T code writes them: on a target batch, the
    classifier's conditional entropy + VAT + weight * KL(teacher || classifier), one ``torch.optim.Adam`` step over
    the extractor and classifier; the teacher a frozen deep copy (no step here refreshes it). One difference from
    that code, so that the numbers are fastwgan's: VAT's power step is taken in its xi -> 0 limit (a
    ``torch.func.jvp``, then ``autograd.grad``: ``fastwgan.uses.adapt.vat_direction``) instead of a finite step of
    1e-6, which float32 rounds away; it costs about the same (a forward-mode pass against a forward pass).

    Args:
        extractor, classifier: as PlainWDGRL's; config: Adam (``adapt.default_config("dirtt")``); weight: the
            teacher's weight; radius: VAT's radius for the images (``adapt.vat_radius``).
    """

    def __init__(self, extractor, classifier, config: TrainConfig, weight: float, radius: float):
        import copy

        if config.optimizer != "adam" or config.dtype != "float32":
            raise ValueError("PlainDIRTT: DIRT-T trains with Adam in float32")
        self.config, self.weight, self.radius = config, weight, radius
        self.device = resolve_device(config.device)
        self.model = nn.Sequential(extractor, classifier).to(self.device)
        self.teacher = copy.deepcopy(self.model).requires_grad_(False)
        self.optim = torch.optim.Adam(self.model.parameters(), lr=config.lr_g, betas=config.betas)

    def networks(self) -> dict:
        """{name: module}, named as the reference trainer's (tests compare them)."""
        return {"extractor": self.model[0], "classifier": self.model[1]}

    def prepare(self, source: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> tuple:
        return source.to(self.device), labels.to(self.device), target.to(self.device)

    def train_step(self, data: tuple, draw: dict) -> dict[str, torch.Tensor]:
        """One refinement step (``draw``: idx_t (B,), vat_d (1, B, C H W): the adaptation trainers' stream)."""
        _, _, target = data
        draw = {k: v.to(self.device) for k, v in draw.items()}
        x = to_float(target[draw["idx_t"]])
        d = draw["vat_d"][0].view_as(x)
        model = self.model
        logits = model(x)
        logp = F.log_softmax(logits, dim=1)
        entropy = -(logp.exp() * logp).sum(1).mean()
        _, jd = torch.func.jvp(model, (x,), (d,))
        p = logp.exp().detach()
        v = (p * jd - p * (p * jd).sum(1, keepdim=True)).detach()
        xr = x.detach().requires_grad_()
        (g,) = torch.autograd.grad((model(xr) * v).sum(), xr)
        r = self.radius * g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        lp = logp.detach()
        vat = (lp.exp() * (lp - F.log_softmax(model(x + r), dim=1))).sum(1).mean()
        with torch.no_grad():
            lt = F.log_softmax(self.teacher(x), dim=1)
        kl = (lt.exp() * (lt - logp)).sum(1).mean()
        loss = entropy + vat + self.weight * kl
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()
        return {"model_loss": loss.detach()}
