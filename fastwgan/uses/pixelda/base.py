"""What both PixelDA trainers share: the networks and their checks, the step's draw and the step, ``fit``,
``predict`` / ``accuracy`` / ``adapt`` and the run folder's sample grids.
"""

from __future__ import annotations

import torch
from torch import nn

from ...core import rng
from ...core.config import TrainConfig
from ...core.engine import FitOptions
from ...core.images import as_float, photometric_draw, to_uint8
from ...data import check_labels
from ...gan.checks import check_networks, probe
from ..domains import (
    DomainTrainerBase,
    TensorDomains,
    check_domain,
    check_flags,
    check_logits,
    check_scores,
    critic_scores,
    need_labels,
)
from . import losses as defaults  # the options' defaults, each with its source


def _weight(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
        raise ValueError(f"{name} must be a non-negative finite number, got {v!r}")
    return float(v)


class PixelDABase(DomainTrainerBase):
    kind = "pixelda"
    plot_panels = (
        (
            "critic (target vs adapted source)",
            (
                ("critic_loss", "critic loss"),
                ("w_estimate", "W-estimate: E[D(x_t)] - E[D(G(x_s, z))]"),
                ("gp", "gradient penalty (unweighted)"),
            ),
        ),
        (
            "generator + task classifier",
            (
                ("model_loss", "total"),
                ("adversarial", "adversarial -E[D(G(x_s, z))]"),
                ("task_adapted", "CE on adapted source"),
                ("task_source", "CE on source"),
                ("content", "content PMSE"),
                ("semantic", "semantic CE (frozen classifier)"),
            ),
        ),
        ("target accuracy", (("target_accuracy", "held-out target accuracy (evaluators)"),)),
    )

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        classifier: nn.Module,
        config: TrainConfig,
        *,
        adv_weight: float = defaults.ADV_WEIGHT,
        task_weight: float = defaults.TASK_WEIGHT,
        content_weight: float = defaults.CONTENT_WEIGHT,
        noise_dim: int | None = None,
        shift: bool = defaults.SHIFT,
        photometric: bool = False,
        pretrain_epochs: int = defaults.PRETRAIN_EPOCHS,
        semantic: nn.Module | None = None,
        semantic_weight: float = defaults.SEMANTIC_WEIGHT,
        diversity_weight: float = defaults.DIVERSITY_WEIGHT,
        class_critic: bool = defaults.CLASS_CRITIC,
    ):
        super().__init__(config)
        self.diversity_weight = _weight("diversity_weight", diversity_weight)
        if semantic is not None and not isinstance(semantic, nn.Module):
            raise ValueError(
                "semantic must be a torch.nn.Module (a classifier of target-like images), got "
                f"{type(semantic).__name__}"
            )
        self.semantic_weight = _weight("semantic_weight", semantic_weight)
        # CyCADA's semantic consistency: a frozen classifier, in eval mode, never trained here
        self.semantic = None if semantic is None else semantic.to(self.device).eval().requires_grad_(False)
        check_networks(config, {"generator": generator, "critic": critic, "classifier": classifier}, ("critic",))
        self.adv_weight = _weight("adv_weight", adv_weight)
        self.task_weight = _weight("task_weight", task_weight)
        self.content_weight = _weight("content_weight", content_weight)
        check_flags(shift=shift, photometric=photometric, class_critic=class_critic)
        if class_critic and any(True for _ in classifier.buffers()):
            raise ValueError(
                "class_critic: the critic reads the task classifier's class probabilities inside its gradient "
                "penalty, so the classifier must have no buffers (batch norm); use one without, e.g. DigitClassifier"
            )
        self.shift, self.photometric, self.class_critic = shift, photometric, class_critic
        if isinstance(pretrain_epochs, bool) or not isinstance(pretrain_epochs, int) or pretrain_epochs < 0:
            raise ValueError(f"pretrain_epochs must be a non-negative integer, got {pretrain_epochs!r}")
        self.pretrain_epochs = pretrain_epochs
        own = getattr(generator, "noise_dim", None)
        if noise_dim is None:
            noise_dim = own if own is not None else 10
        if isinstance(noise_dim, bool) or not isinstance(noise_dim, int) or noise_dim < 1:
            raise ValueError(f"noise_dim must be a positive integer, got {noise_dim!r}")
        if own is not None and own != noise_dim:
            raise ValueError(f"noise_dim: the generator takes {own}-d noise, got noise_dim={noise_dim}")
        self.noise_dim = noise_dim
        dev = self.device
        # G and T are one optimizer group (one step over both on L_GT), the critic the other
        self.model = nn.ModuleDict({"generator": generator, "classifier": classifier}).to(dev)
        self.critic = critic.to(dev)
        self.metrics = (
            "critic_loss",
            "w_estimate",
            *(("gp",) if config.uses_penalty else ()),
            "model_loss",
            "adversarial",
            "task_adapted",
            "task_source",
            "content",
            *(("semantic",) if semantic is not None else ()),
            *(("diversity",) if self.diversity_weight else ()),
        )
        self.num_classes: int | None = None
        # CE(T(x_s), y_s) needs source images shaped like target images: decided by check_domains (first fit)
        self.source_task = True
        self.shapes: tuple | None = None  # (source sample shape, target sample shape), set by check_domains

    generator = property(lambda self: self.model["generator"])
    classifier = property(lambda self: self.model["classifier"])

    @property
    def loss_settings(self) -> tuple:
        """``model_loss``'s weights after its tensors: (alpha, beta, gamma, source_task), for both twins."""
        return self.adv_weight, self.task_weight, self.content_weight, self.source_task

    @property
    def loss_keywords(self) -> dict:
        """``model_loss``'s semantic and diversity weights (keywords), for both twins."""
        return {
            "semantic": self.semantic,
            "semantic_weight": self.semantic_weight,
            "diversity_weight": self.diversity_weight,
        }

    def scorer(self, critic, classify):
        """The critic as a function of images, (B,) fp32: D(x), or with ``class_critic`` D(x, softmax(T(x))),
        ``classify`` T with detached parameters (package docstring: the penalty covers the class path)."""
        if not self.class_critic:
            return critic_scores(critic)
        return critic_scores(lambda x: critic(x, classify(x).float().softmax(1)))

    def _networks(self):
        return {**self.model, "critic": self.critic}

    # ------------------------------------------------------------------ data
    def check_domains(self, source, labels, target):
        """Check the labelled source set, its labels and the target set against the networks before anything
        runs: images (N, C, H, W), N >= 1, one H x W in both; G(x_s, z) shaped like target images; one critic
        score per target image; T's logits (B, K) on adapted images; labels (N_s,) in 0..K-1. One-line errors name
        the network and the shapes. Returns (source, labels, target)."""
        need_labels(labels, "PixelDA trains the task classifier")
        s, t = check_domain(source, "source"), check_domain(target, "target")
        if s.shape[2:] != t.shape[2:]:
            raise ValueError(
                f"source and target: images must have one size, got {s.shape[2]}x{s.shape[3]} (source) and "
                f"{t.shape[2]}x{t.shape[3]} (target)"
            )
        if self.content_weight and s.shape[1] != t.shape[1]:
            raise ValueError(
                f"content_weight: the content loss compares G(x_s, z) with x_s, but the source has {s.shape[1]} "
                f"channels and the target {t.shape[1]}; set content_weight=0"
            )
        dev = self.device
        xs, xt = as_float(s[:2]).to(dev), as_float(t[:2]).to(dev)
        z = torch.zeros(2, self.noise_dim, device=dev)
        fake = probe(
            self.generator,
            xs,
            z,
            lambda e: (
                f"generator: calling it on source images {tuple(xs.shape)} and noise {tuple(z.shape)} failed: {e}"
            ),
        )
        if tuple(fake.shape[1:]) != tuple(t.shape[1:]):
            raise ValueError(
                f"generator: maps {tuple(xs.shape[1:])} source images to {tuple(fake.shape[1:])}, but target "
                f"images are {tuple(t.shape[1:])}"
            )
        logits = probe(
            self.classifier,
            fake,
            None,
            lambda e: f"classifier: calling it on adapted images {tuple(fake.shape)} failed: {e}",
        )
        check_logits(logits)
        self.num_classes = logits.shape[1]
        p = logits.float().softmax(1) if self.class_critic else None  # (2, K): the class-aware critic's 2nd input
        with_p = "" if p is None else f" and class probabilities {tuple(p.shape)} (class_critic)"
        score = probe(
            self.critic, xt, p, lambda e: f"critic: calling it on target images {tuple(xt.shape)}{with_p} failed: {e}"
        )
        check_scores(score, "images")
        if self.semantic is not None:
            sem = probe(
                self.semantic,
                fake,
                None,
                lambda e: f"semantic: calling the classifier on adapted images {tuple(fake.shape)} failed: {e}",
            )
            if tuple(sem.shape) != tuple(logits.shape):
                raise ValueError(
                    f"semantic: the frozen classifier returns shape {tuple(sem.shape)} on adapted images, the task "
                    f"classifier {tuple(logits.shape)}: both must give logits over the same classes"
                )
        y = check_labels(labels, len(s), num_classes=self.num_classes, what="labels")
        self.source_task = s.shape[1] == t.shape[1]
        self.shapes = (tuple(s.shape[1:]), tuple(t.shape[1:]))
        return s, y, t

    rows = (("idx_s", "gen_s"), ("idx_t",))  # each domain's rows in a step's draw (DomainLoaders)
    # z (.., B, noise_dim), shift (B, 2), the source's photometric gains and offsets (.., B, C_s)
    vector_draws = ("z", "z_gen", "shift", "z_div", "gain", "offset", "gain_gen", "offset_gen")
    labelled = 0  # the source: a loader yields (x, y)

    def batches_per_step(self, domain: int) -> int:
        # source: a batch per critic update and one for the G/T update; target: one per critic update
        return self.config.n_critic + (domain == 0)

    def _draw_rows(self, sizes):
        cfg, g = self.config, self._gen
        n_s, _, n_t = sizes
        b, nz = cfg.batch_size, self.noise_dim
        idx_s, idx_t, z, eps = [], [], [], []
        for _ in range(cfg.n_critic):
            idx_s.append(torch.randint(0, n_s, (b,), generator=g))
            idx_t.append(torch.randint(0, n_t, (b,), generator=g))
            z.append(torch.rand(b, nz, generator=g) * 2 - 1)  # U[-1, 1]
            if cfg.uses_penalty:
                eps.append(torch.rand(b, generator=g))
        draw = {"idx_s": torch.stack(idx_s), "idx_t": torch.stack(idx_t), "z": torch.stack(z)}
        if cfg.uses_penalty:
            draw["eps"] = torch.stack(eps)
        draw["gen_s"] = torch.randint(0, n_s, (b,), generator=g)
        draw["z_gen"] = torch.rand(b, nz, generator=g) * 2 - 1
        if self.shift:
            draw["shift"] = torch.randint(-1, 2, (b, 2), generator=g)  # (dy, dx) per image of the G/T batch
        if self.diversity_weight:  # the mode-seeking term's second noise draw (last: the other draws unchanged)
            draw["z_div"] = torch.rand(b, nz, generator=g) * 2 - 1
        if self.photometric:  # a polarity, gain and offset per source image and channel: critic batches, then G/T's
            c = self.shapes[0][0]
            critic_draws = [photometric_draw(b, c, g) for _ in range(cfg.n_critic)]
            draw["gain"], draw["offset"] = (torch.stack(v) for v in zip(*critic_draws))
            draw["gain_gen"], draw["offset_gen"] = photometric_draw(b, c, g)
        return draw

    def _train_step(self, domains, draw):
        src_s, y_s, src_t = domains
        draw = {k: v.to(self.device) for k, v in draw.items()}
        eps, photo = draw.get("eps"), self.photometric
        ms = [
            self._critic_update(
                src_s,
                draw["idx_s"][k],
                src_t,
                draw["idx_t"][k],
                draw["z"][k],
                None if eps is None else eps[k],
                (draw["gain"][k], draw["offset"][k]) if photo else None,
            )
            for k in range(self.config.n_critic)
        ]
        out = {key: torch.stack([m[key] for m in ms]).mean() for key in ms[0]}
        gen_photo = (draw["gain_gen"], draw["offset_gen"]) if photo else None
        out.update(
            self._model_update(
                src_s, y_s, draw["gen_s"], draw["z_gen"], draw.get("shift"), draw.get("z_div"), gen_photo
            )
        )
        return out

    def _critic_update(self, src_s, idx_s, src_t, idx_t, z, eps, photo) -> dict:
        raise NotImplementedError

    def _model_update(self, src_s, y_s, idx_s, z, shift, z_div, photo) -> dict:
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def fit(
        self, source, target, steps: int | None = None, *, labels=None, add_steps: int | None = None, options=None, **kw
    ) -> PixelDABase:
        """Train until ``steps`` steps in total (or ``add_steps`` more), each n_critic critic updates and one
        update of the generator and the task classifier together (package docstring).

        Args:
            source: labelled source images (N_s, C_s, H, W) uint8 (floats in [-1, 1] taken as they are); labels:
                their class ids (N_s,) (required). Or a DataLoader of ``(x, y)`` batches (then no labels=).
            target: unlabelled target images (N_t, C_t, H, W), one H x W with the source, or a DataLoader.
            steps / add_steps: the run's total steps, or more from now (exactly one).
            options, **kw: ``fastwgan.core.engine.FitOptions`` (out: a run folder with samples/ grids of source
                images and their adaptations; overwrite, log_every, sample_every, checkpoint_every,
                keep_checkpoints, progress, run_config, callbacks, on_nonfinite, handle_signals, and evaluators:
                callables ``f(trainer) -> dict`` run at log ticks, e.g. ``{"target_accuracy": t.accuracy(x, y)}``
                on held-out labelled target images).
        Returns:
            self.
        """
        opts = FitOptions.of(options, **kw)
        src = self.domain_source((source, labels, target), self.check_domains, num_classes=self._classes())
        info = {
            "adv_weight": self.adv_weight,
            "task_weight": self.task_weight,
            "content_weight": self.content_weight,
            "shift": self.shift,
            "photometric": self.photometric,
            "pretrain_epochs": self.pretrain_epochs,
            "semantic_weight": self.semantic_weight if self.semantic is not None else None,
            "diversity_weight": self.diversity_weight,
            "class_critic": self.class_critic,
            "noise_dim": self.noise_dim,
            "num_classes": self.num_classes,
            "source_task": self.source_task,
            "networks": {k: getattr(m, "spec", None) for k, m in self._networks().items()},
            **(opts.run_config or {}),
        }
        if self.step == 0 and self.pretrain_epochs and self.source_task and isinstance(src, TensorDomains):
            self.pretrain(*src.tensors[:2])
        return self.run(src, steps, add_steps, FitOptions.of(opts, run_config=info))

    def pretrain(self, source: torch.Tensor, labels: torch.Tensor) -> None:
        """Warm-start T on the labelled source alone (tensor input shaped like the target, at step 0):
        ``fastwgan.eval.classifier.train_classifier`` on T for ``pretrain_epochs`` (Adam 1e-3, 1-pixel shifts,
        the photometric augmentation with ``photometric``, batches of ``config.batch_size``), seeded with
        ``config.seed + 3`` (not the step's stream)."""
        from ...eval.classifier import train_classifier

        cfg = self.config
        train_classifier(
            source,
            labels,
            epochs=self.pretrain_epochs,
            seed=cfg.seed + 3,
            photometric=self.photometric,
            batch_size=cfg.batch_size,
            model=self.classifier,
        )
        self.classifier.train()

    def _classes(self) -> int | None:
        """The classifier's output size when it ends in a Linear layer named ``head`` or is one (a loader's labels
        are checked against it), else None (checked by ``check_domains`` on the first batch)."""
        t = self.classifier
        head = t if isinstance(t, nn.Linear) else getattr(t, "head", None)
        return head.out_features if isinstance(head, nn.Linear) else None

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, x, batch_size: int = 1024) -> torch.Tensor:
        """Class ids (N,) int64 of target-like images (N, C_t, H, W) (uint8 or floats in [-1, 1]): T, in eval mode."""
        x = check_domain(x, "predict")
        t = self.classifier
        was = t.training
        t.eval()
        try:
            return torch.cat(
                [
                    t(as_float(x[i : i + batch_size]).to(self.device)).argmax(1).cpu()
                    for i in range(0, len(x), batch_size)
                ]
            )
        finally:
            t.train(was)

    def accuracy(self, x, labels) -> float:
        """The fraction of ``x`` that T classifies as ``labels`` (e.g. target labels held out for evaluation)."""
        y = check_labels(labels, len(x), what="labels")
        return float((self.predict(x) == y).float().mean())

    @torch.no_grad()
    def adapt(self, x, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
        """G(x, z): source images adapted to the target domain, in eval mode (batch norm on running statistics).

        Args:
            x: (N, C_s, H, W) source images, uint8 or floats in [-1, 1].
            seed: the noise z ~ U[-1, 1]^(N, noise_dim) comes from a generator seeded with it (one draw for all).
        Returns:
            (N, C_t, H, W) uint8 CPU images (for grids; ``fastwgan.data.to_float`` converts back).
        """
        want = None if self.shapes is None else self.shapes[0]
        x = check_domain(
            x, "adapt", channels=None if want is None else want[0], size=None if want is None else want[1:]
        )
        z = torch.rand(len(x), self.noise_dim, generator=rng.make_generator(seed)) * 2 - 1
        g = self.generator
        was = g.training
        g.eval()
        try:
            out = [
                g(as_float(x[i : i + batch_size]).to(self.device), z[i : i + batch_size].to(self.device)).float().cpu()
                for i in range(0, len(x), batch_size)
            ]
        finally:
            g.train(was)
        return to_uint8(torch.cat(out))

    def _preview(self, writer, source):
        """samples/step_N.png: 8 source images, two adaptations of each (two noise draws), 8 target images;
        1-channel rows shown in RGB."""
        src_s, _, src_t = source.first()
        g = rng.make_generator(self.config.seed + 2)  # the same images at every step
        pick_s = torch.randint(0, len(src_s), (8,), generator=g).to(src_s.device)
        pick_t = torch.randint(0, len(src_t), (8,), generator=g).to(src_t.device)
        xs, xt = src_s[pick_s].cpu(), src_t[pick_t].cpu()
        rows = [as_float(xs), as_float(self.adapt(xs, 0)), as_float(self.adapt(xs, 1)), as_float(xt)]
        rgb = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows]
        writer.samples(self.step, torch.cat(rgb), nrow=8)
