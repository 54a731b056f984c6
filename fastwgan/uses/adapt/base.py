"""What the two adaptation trainers share (``AdaptBase``: WDGRL, DANN, DIRT-T's refinement): their settings and
checks, the draw, the step's order, inference, DIRT-T's teacher and the checkpoint; the twins are in
``trainers.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from ...core.config import TrainConfig
from ...core.engine import FitOptions
from ...core.images import as_float, photometric_draw, photometric_images
from ...data import check_labels
from ...gan.checks import check_networks, probe
from ..domains import (
    DomainTrainerBase,
    as_function,
    check_domain,
    check_flags,
    check_logits,
    check_scores,
    need_labels,
    shift_images,
)
from .losses import CLF_STEPS, SHIFT, TEACHER_EVERY, WEIGHTS, check_method, vat_radius


class AdaptBase(DomainTrainerBase):
    kind = "adaptation"
    plot_panels = (
        (
            "domain critic",
            (
                ("critic_loss", "critic loss"),
                ("w_estimate", "W-estimate between source and target features"),
                ("gp", "gradient penalty (unweighted)"),
                ("domain_accuracy", "domain classifier accuracy (DANN)"),
            ),
        ),
        (
            "extractor + classifier",
            (
                ("model_loss", "total"),
                ("classifier_loss", "source cross-entropy"),
                ("wd", "W-distance term"),
                ("domain_loss", "domain cross-entropy (DANN)"),
                ("target_entropy", "entropy of target predictions"),
                ("vat", "VAT: KL under the adversarial perturbation (DIRT-T)"),
                ("teacher_kl", "KL from the teacher (DIRT-T)"),
            ),
        ),
        ("features", (("feature_norm_s", "mean |h| source"), ("feature_norm_t", "mean |h| target"))),
        ("target accuracy", (("target_accuracy", "held-out target accuracy (--eval-data)"),)),
    )

    def __init__(
        self,
        extractor: nn.Module,
        classifier: nn.Module,
        critic: nn.Module | None,
        config: TrainConfig,
        weight: float | None = None,
        *,
        method: str = "wdgrl",
        clf_steps: int | None = None,
        entropy_weight: float = 0.0,
        shift: bool = SHIFT,
        photometric: bool = False,
    ):
        super().__init__(config)
        check_flags(shift=shift, photometric=photometric)
        self.shift, self.photometric = shift, photometric
        self.method = check_method(method)
        refine = method == "dirtt"
        if refine != (critic is None):
            raise ValueError(
                "critic: method 'dirtt' trains no critic: give critic=None"
                if refine
                else f"critic: method {method!r} trains a domain critic on the features: give one (a module)"
            )
        nets = {"extractor": extractor, "classifier": classifier, **({} if refine else {"critic": critic})}
        check_networks(config, nets, () if refine else ("critic",))
        weight = WEIGHTS[method] if weight is None else weight
        for name, v in (("weight", weight), ("entropy_weight", entropy_weight)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise ValueError(f"{name} must be a non-negative finite number, got {v!r}")
        clf_steps = CLF_STEPS[method] if clf_steps is None else clf_steps
        if isinstance(clf_steps, bool) or not isinstance(clf_steps, int) or clf_steps < 1:
            raise ValueError(f"clf_steps must be an integer >= 1, got {clf_steps!r}")
        self.weight, self.entropy_weight, self.clf_steps = float(weight), float(entropy_weight), clf_steps
        dev = self.device
        self.model = nn.ModuleDict({"extractor": extractor, "classifier": classifier}).to(dev)
        self.critic = None if refine else critic.to(dev)
        dann = method == "dann"
        refine_metrics = ("model_loss", "classifier_loss", "vat", "teacher_kl", "target_entropy")
        self.metrics = (
            refine_metrics + ("feature_norm_s", "feature_norm_t")
            if refine
            else (
                "critic_loss",
                *(("domain_accuracy",) if dann else ("w_estimate", *(("gp",) if config.uses_penalty else ()))),
                "model_loss",
                "classifier_loss",
                "domain_loss" if dann else "wd",
                "target_entropy",
                "feature_norm_s",
                "feature_norm_t",
            )
        )
        self.num_classes: int | None = None
        self.radius: float | None = None  # DIRT-T's VAT radius for the images' shape (check_domains)
        self.teacher: dict | None = None  # DIRT-T: {name: tensor} of the model's parameters, copied at teacher_step
        self.teacher_step: int | None = None

    extractor = property(lambda self: self.model["extractor"])
    classifier = property(lambda self: self.model["classifier"])

    @property
    def loss_settings(self) -> tuple:
        """``alignment_loss``'s settings after its tensors: (weight, method, entropy_weight), for both twins."""
        return self.weight, self.method, self.entropy_weight

    def _networks(self):
        return {**self.model, **({} if self.critic is None else {"critic": self.critic})}

    def check_domains(self, source, labels, target):
        """Check the labelled source set, its labels and the target set against the networks: images
        (N, C, H, W) with N >= 1 in both, labels (N_s,) in 0..K-1 where K is the classifier's output size, the
        extractor taking both domains to (B, F) features the classifier and the critic take. Returns
        (source, labels, target)."""
        need_labels(labels, "adaptation trains the classifier")
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
        nets = (("classifier", self.classifier),) + ((("critic", self.critic),) if self.critic is not None else ())
        logits, *score = (
            probe(
                net,
                h,
                None,
                lambda e, what=what: (
                    f"{what}: calling it on the extractor's features of shape {tuple(h.shape)} failed: {e}"
                ),
            )
            for what, net in nets
        )
        if h.dim() != 2:
            raise ValueError(f"extractor: returns shape {tuple(h.shape)}; it must return features (B, F)")
        check_logits(logits)
        if score:
            check_scores(score[0], "feature vectors")
        self.radius, self._sample_numel = vat_radius(tuple(s.shape[1:])), s[0].numel()
        self._channels = s.shape[1]
        self.num_classes = logits.shape[1]
        y = check_labels(labels, len(s), num_classes=self.num_classes, what="labels")
        return s, y, t

    rows = (("idx_s",), ("idx_t",))  # each domain's rows in a step's draw (DomainLoaders)
    # (B, 2) each; the source's photometric gain and offset (B, C) each; DIRT-T's VAT directions (B, C H W)
    vector_draws = ("shift_s", "shift_t", "gain_s", "offset_s", "vat_d")
    labelled = 0  # the source: a loader yields (x, y)

    def batches_per_step(self, domain: int) -> int:
        return 1  # the critic updates train on the features of the one source and one target batch

    def _draw_rows(self, sizes):
        cfg, g = self.config, self._gen
        n_s, _, n_t = sizes
        b = cfg.batch_size
        draw = {"idx_s": torch.randint(0, n_s, (b,), generator=g), "idx_t": torch.randint(0, n_t, (b,), generator=g)}
        if cfg.uses_penalty and self.method == "wdgrl":
            draw["eps"] = torch.rand(cfg.n_critic, b, generator=g)
        if self.shift:  # (dy, dx) per image of each domain's batch
            draw["shift_s"] = torch.randint(-1, 2, (b, 2), generator=g)
            draw["shift_t"] = torch.randint(-1, 2, (b, 2), generator=g)
        if self.photometric:  # a polarity, gain and offset per source image and channel
            draw["gain_s"], draw["offset_s"] = photometric_draw(b, self._channels, g)
        if self.method == "dirtt":  # VAT's random starting directions, one per target image, clf_steps of them
            draw["vat_d"] = torch.randn(self.clf_steps, b, self._sample_numel, generator=g)
        return draw

    def _train_step(self, domains, draw):
        src_s, y_s, src_t = domains
        draw = {k: v.to(self.device) for k, v in draw.items()}
        x_s, x_t = as_float(src_s[draw["idx_s"]]), as_float(src_t[draw["idx_t"]])
        if self.shift:  # the critic's features and the extractor's update see the same shifted batches
            x_s, x_t = shift_images(x_s, draw["shift_s"]), shift_images(x_t, draw["shift_t"])
        if self.photometric:  # the source's colours and polarity varied; the critic sees the same batch
            x_s = photometric_images(x_s, draw["gain_s"], draw["offset_s"])
        y = y_s[draw["idx_s"]]
        if self.method == "dirtt":
            if self.teacher_step is None or self.step - self.teacher_step >= TEACHER_EVERY:
                self._set_teacher({k: p.detach().clone() for k, p in self.model.named_parameters()}, self.step)
            for k in range(self.clf_steps):
                m = self._refine_update(x_s, y, x_t, draw["vat_d"][k].view_as(x_t))
            return m
        h_s, h_t = self._features(x_s, x_t)
        eps = draw.get("eps")
        ms = [self._critic_update(h_s, h_t, None if eps is None else eps[k]) for k in range(self.config.n_critic)]
        out = {key: torch.stack([m[key] for m in ms]).mean() for key in ms[0]}
        for _ in range(self.clf_steps):  # k_clf updates on the round's batch (the port's loop)
            m = self._model_update(x_s, y, x_t)
        out.update(m)  # the last update's losses
        return out

    def fit(
        self, source, target, steps: int | None = None, *, labels=None, add_steps: int | None = None, options=None, **kw
    ) -> AdaptBase:
        """Train until ``steps`` steps in total (or ``add_steps`` more), each n_critic critic updates and one
        update of the extractor and the classifier (module docstring).

        Args:
            source: labelled source images (N_s, C, H, W) uint8; labels: their class ids (N_s,) (required). Or a
                DataLoader of ``(x, y)`` batches (then no labels=).
            target: unlabelled target images (N_t, C, H, W) of the same shape, or a DataLoader of them.
            steps / add_steps: the run's total steps, or more from now (exactly one).
            options, **kw: ``fastwgan.core.engine.FitOptions`` (out, overwrite, log_every, checkpoint_every,
                keep_checkpoints, progress, run_config, callbacks, on_nonfinite, handle_signals, and evaluators:
                callables ``f(trainer) -> dict`` run at log ticks, e.g. the target accuracy on held-out labelled
                target images; their values go to stats.jsonl and the plots).
        Returns:
            self.
        """
        opts = FitOptions.of(options, **kw)
        src = self.domain_source((source, labels, target), self.check_domains, num_classes=self._classes())
        info = {
            "weight": self.weight,
            "method": self.method,
            "clf_steps": self.clf_steps,
            "entropy_weight": self.entropy_weight,
            "shift": self.shift,
            "photometric": self.photometric,
            "num_classes": self.num_classes,
            **(opts.run_config or {}),
        }
        return self.run(src, steps, add_steps, FitOptions.of(opts, run_config=info))

    def _classes(self) -> int | None:
        """The classifier's output size when it is a Linear layer (the loader's labels are checked against it),
        else None (checked by ``check_domains`` on the first batch)."""
        head = self.classifier
        return head.out_features if isinstance(head, nn.Linear) else None

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

    # ------------------------------------------------------------------ DIRT-T's teacher
    def _set_teacher(self, params: dict, step: int) -> None:
        """The teacher: ``params`` ({name: tensor} of the model's parameters), copied at ``step``."""
        self.teacher, self.teacher_step = params, step

    def teacher_logits(self, x: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """The teacher's logits (B, K) of images x (floats), no gradient (DIRT-T; after the first step): the model
        with ``params`` ({name: tensor}; default the teacher's, ``self.teacher``)."""
        params = self.teacher if params is None else params
        with torch.no_grad():
            h = as_function(self.extractor, params, "extractor")(x)
            return as_function(self.classifier, params, "classifier")(h).float()

    def state_dict(self, with_history: bool = True) -> dict:
        state = super().state_dict(with_history)
        if self.teacher is not None:  # DIRT-T
            state["teacher"] = {"step": self.teacher_step, "params": {k: v.clone() for k, v in self.teacher.items()}}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        t = state.get("teacher")
        self.teacher, self.teacher_step = None, None  # none yet: taken at the next step (DIRT-T)
        if t is not None:
            names = {k for k, _ in self.model.named_parameters()}
            if set(t["params"]) != names:
                raise ValueError("load_state_dict: the checkpoint's teacher does not match this model's parameters")
            self._set_teacher({k: v.to(self.device).clone() for k, v in t["params"].items()}, int(t["step"]))

    def _features(self, x_s, x_t):
        raise NotImplementedError

    def _refine_update(self, x_s, y_s, x_t, d) -> dict:
        raise NotImplementedError

    def _critic_update(self, h_s, h_t, eps) -> dict:
        raise NotImplementedError

    def _model_update(self, x_s, y_s, x_t) -> dict:
        raise NotImplementedError
