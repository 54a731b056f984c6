"""What both translation trainers share: the networks and their checks, the step's draw and the step, ``fit``,
``translate`` and the run folder's sample grids.
"""

from __future__ import annotations

import torch
from torch import nn

from ...core import rng
from ...core.config import TrainConfig
from ...core.engine import FitOptions
from ...core.images import as_float
from ...data import check_labels
from ...gan.checks import check_networks, probe
from ..domains import DomainLoaders, DomainTrainerBase, check_domain, is_loader
from .losses import CYCLE_WEIGHT, DIRECTIONS, IDENTITY_RATIO, SEMANTIC_THRESHOLD


class TranslationBase(DomainTrainerBase):
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
        ("semantic", (("semantic_confident", "share of target images the t -> s semantic term counts"),)),
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
        semantic_threshold: float | None = SEMANTIC_THRESHOLD,
    ):
        super().__init__(config)
        check_networks(config, {"g_st": g_st, "g_ts": g_ts, "d_s": d_s, "d_t": d_t}, critics=("d_s", "d_t"))
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
        t = semantic_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0):
            raise ValueError(f"semantic_threshold must be None or a number >= 0, got {t!r}")
        # None: no t -> s semantic term (given None, or 1.0 and above: no softmax reaches it)
        self.semantic_threshold = None if t is None or t >= 1 else float(t)
        self.num_classes: int | None = None  # the semantic classifier's classes (its output size), set by fit
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
            *(("semantic_confident",) if semantic is not None and self.semantic_threshold is not None else ()),
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

    def check_labelled(self, source, labels, target) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``check_domains`` and the source labels: (N_s,) class ids in 0..K-1, K the semantic classifier's output
        size. Returns (source, labels, target)."""
        s, t = self.check_domains(source, target)
        x = as_float(s[:2]).to(self.device)
        with torch.no_grad():
            logits = probe(
                self.semantic,
                x,
                None,
                lambda e: f"semantic: calling the classifier on images of shape {tuple(x.shape)} failed: {e}",
            )
        if logits.dim() != 2 or logits.shape[0] != len(x):
            raise ValueError(f"semantic: the classifier returns shape {tuple(logits.shape)}; it must return (B, K)")
        self.num_classes = logits.shape[1]
        return s, check_labels(labels, len(s), num_classes=self.num_classes, what="labels"), t

    rows = (("idx_s", "gen_s"), ("idx_t", "gen_t"))  # each domain's rows in a step's draw (DomainLoaders)

    def batches_per_step(self, domain: int) -> int:
        return self.config.n_critic + 1  # n_critic critic updates and one generator update, each a batch

    def _draw_rows(self, sizes):
        cfg, g = self.config, self._gen
        n_s, n_t = sizes[0], sizes[-1]  # (images, [labels,] images)
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
        src_s, src_t = domains[0], domains[-1]
        y_s = domains[1] if len(domains) == 3 else None  # the source labels (fit's labels=), gathered by gen_s
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
        out.update(self._generator_update(src_s, draw["gen_s"], src_t, draw["gen_t"], y_s))
        return out

    def _critic_update(self, src_s, idx_s, src_t, idx_t, eps_s, eps_t) -> dict:
        raise NotImplementedError

    def _generator_update(self, src_s, idx_s, src_t, idx_t, y_s) -> dict:
        """y_s: the source labels (indexed by idx_s like src_s), or None."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def fit(
        self, source, target, steps: int | None = None, *, labels=None, add_steps: int | None = None, options=None, **kw
    ) -> TranslationBase:
        """Train until ``steps`` steps in total (or ``add_steps`` more than now), each step n_critic updates of both
        critics and one of both generators (module docstring).

        Args:
            source, target: the two unpaired image sets, uint8 (N, C, H, W) (floats in [-1, 1] taken as they are),
                one H, W; the channels may differ. Or two DataLoaders of such batches (``fastwgan.uses.domains``).
            labels: optional, the source images' true classes for the semantic term (``semantic=`` only): (N_s,)
                class ids below the classifier's output size, or True when the source is a DataLoader of (x, y)
                batches. The s -> t semantic term then uses them instead of the classifier's reading.
            steps / add_steps: the run's total steps, or more from now (exactly one).
            options, **kw: ``fastwgan.core.engine.FitOptions`` (out: a run folder with config.json, stats.jsonl,
                samples/ grids of source -> target -> source and target -> source -> target, plots/,
                checkpoints/; overwrite, log_every, sample_every, checkpoint_every, keep_checkpoints, progress,
                run_config, callbacks, evaluators, on_nonfinite, handle_signals).
        Returns:
            self.
        """
        opts = FitOptions.of(options, **kw)
        src = self._source(source, target, labels)
        info = {
            "cycle_weight": self.cycle_weight,
            "identity_weight": self.identity_weight,
            "semantic_weight": self.semantic_weight if self.semantic is not None else None,
            **(
                {"semantic_threshold": self.semantic_threshold, "semantic_labels": labels is not None}
                if self.semantic is not None
                else {}
            ),
            "networks": {k: getattr(m, "spec", None) for k, m in self._networks().items()},
            **(opts.run_config or {}),
        }
        return self.run(src, steps, add_steps, FitOptions.of(opts, run_config=info))

    def _source(self, source, target, labels):
        """The batch source of ``fit``: the two domains, with the source labels among them when given."""
        self.labelled = None
        if labels is None:
            return self.domain_source((source, target), self.check_domains)
        if self.semantic is None:
            raise ValueError(
                "labels: only the semantic term reads source labels; give semantic= (a frozen classifier of "
                "source images) or no labels"
            )
        if is_loader(source) and labels is not True:
            raise ValueError("labels: a source DataLoader yields its labels in its batches (x, y): give labels=True")
        if not is_loader(source) and labels is True:
            raise ValueError("labels=True is for a source DataLoader of (x, y) batches; with tensors give (N_s,) ids")
        self.labelled = 0  # the source: its labels follow its images in the step's domains
        data = (source, None if labels is True else labels, target)
        src = self.domain_source(data, self.check_labelled, num_classes=self._classes())
        if isinstance(src, DomainLoaders):
            src.sources[0].num_classes = self.num_classes  # every later batch's labels checked against it
        return src

    def _classes(self) -> int | None:
        """The semantic classifier's classes when its output layer is plain to see (a Sequential ending in, or a
        ``head`` that is, a Linear layer): a loader's labels are checked against it from its first step's batches
        on; else None (``check_labelled`` reads them off the first batch)."""
        net = self.semantic
        head = net[-1] if isinstance(net, nn.Sequential) and len(net) else getattr(net, "head", None)
        return head.out_features if isinstance(head, nn.Linear) else None

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

    def _preview(self, writer, source):
        """samples/step_N.png: rows of 8 source images, G_st of them, G_ts(G_st(.)) (source -> target -> source),
        then the same for 8 target images (target -> source -> target); 1-channel rows shown in RGB."""
        first = source.first()
        src_s, src_t = first[0], first[-1]
        step = self.step
        g = rng.make_generator(self.config.seed + 2)  # the same images at every step
        pick_s = torch.randint(0, len(src_s), (8,), generator=g).to(src_s.device)
        pick_t = torch.randint(0, len(src_t), (8,), generator=g).to(src_t.device)
        xs, xt = src_s[pick_s].cpu(), src_t[pick_t].cpu()
        st, ts = self.translate(xs, "s2t"), self.translate(xt, "t2s")
        rows = [as_float(xs), st, self.translate(st, "t2s"), as_float(xt), ts, self.translate(ts, "s2t")]
        rgb = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows]
        writer.samples(step, torch.cat(rgb), nrow=8)
