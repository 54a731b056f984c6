"""Why PixelDA-W stays near source only (issue 24), measured: one seed, one shift, the benchmark's settings
(``domain_digits.py``'s pixelda arm) or one change to them, trained in 500-step legs; after each leg one JSON line:
the critic's W-estimate (no labels: how far G's adaptations are from the target images, as the critic sees it), the
task classifier T's target-test accuracy and a target oracle's reading of G(held-out source) as their digits (both
for diagnosis only: nothing is chosen from them).

    variant  base     the benchmark's pixelda arm (package defaults, T warm-started for 20 epochs, compiled)
             notask   task_weight 0: G trains against the critic alone (does the adversarial game close at all?)
             lrg1e3   G's learning rate 1e-3 (the paper's base rate) instead of the WGAN-GP preset's 1e-4
             nobn     G without batch norm
             paperg   G at the paper's MNIST -> MNIST-M size: 64 filters, 6 residual blocks (ours: width 32, 3)
             inoise   instance noise: the critic reads its inputs (target, adapted and interpolated images) plus
                      N(0, 0.2^2) per pixel while training (PixelDA's appendix adds Gaussian noise to its
                      discriminator; the 0.2 is ours: a tenth of the [-1, 1] range)
             ms       MSGAN's mode-seeking term (Mao et al. 2019) at weight 1, their code's: G must use its noise
             patch    a patch critic (PatchGAN's idea, Isola et al. 2017): two 3x3 convs at full resolution and a 1x1
                      conv score each 5x5 patch, the mean is the image's score; it judges local look, not layout
             zwide    G's noise 32-d into 8 channels (the paper's: 10-d into 1): room to carry a look to every pixel
                      (fastwgan's unconditional WGAN-GP learns digits-m's look from 128-d noise, W-estimate ~0.7)
             linskip  G's global skip without the squashing: x + conv(h) (the conv zero at the start, as the
                      package's tanh(atanh(0.98 x) + conv(h))), whose gradient at the +-0.98 that most pixels of
                      a digit start at is 1, not tanh's 1 - 0.98^2 = 0.04
             mbstd    ProGAN's minibatch standard deviation (Karras et al. 2018, with WGAN-GP): the critic reads each
                      batch with one more channel, the mean over pixels of the std over the batch, so it can see a
                      batch painted in one tint (a 1x1 conv mixes it in, started as the identity on the image)
             modulate G(x, z) = tanh(A(z) * atanh(0.98 x) + B(z) + conv(h)): the bundled G plus per-image, per-pixel
                      gain and offset maps drawn from the noise alone by an MLP (10 -> 128 -> 2 C S S, its last layer
                      zero: G starts as the base run's); a look (tint, texture) that cannot depend on the digit,
                      which a blend shift (MNIST-M's |photo - digit|: in [-1, 1] units ~ x (1 - 2 photo)) is
             uncond   a control: G is fastwgan's unconditional DCGAN generator (128-d noise, the source image
                      ignored), task weight 0: does this trainer close the game with a G that closes it in
                      ``fastwgan train`` (W-estimate 0.65-0.76 on digits-m)?
             encdec   another generator family: that DCGAN generator drawing from [z (64-d), E(x_s) (64-d)], E a
                      small conv encoder of the source image (conv3x3(32) - LReLU - conv4x4 stride 2 (64) - LReLU
                      - Linear(64)); the task term as in base (it is what keeps the class in E's code)
             modonly  G(x, z) = tanh(A(z) atanh(0.98 x) + B(z)) alone (modulate without the residual network): an
                      appearance-only generator, per-pixel gain and offset maps from the noise, that cannot move a
                      stroke, so the class is kept by construction; run with CyCADA's semantic term (as
                      encdec_sem), as are modonly_free, pixelwise and pixelskip
             modonly_free    modonly with T's loss not fed back into G (as encdec_semfree): G answers to the critic
                      and the frozen semantic classifier
             pixelwise  G(x, z)[p] = m(x[p], U(z)[p]): a noise-drawn appearance field U (fastwgan's unconditional
                      DCGAN generator, 64-d noise, 3 channels) and a per-pixel MLP m (1x1 convs, 32 wide, tanh out)
                      reading each pixel of the source with the field at that pixel: appearance only (no stroke
                      can move), any per-pixel blend (|photo - digit| included), not only monotone gains
             pixelskip  pixelwise started as the identity: tanh(atanh(0.98 x) + m(x, U(z))), m's last 1x1 conv zero,
                      no tanh inside m (the package G's global skip)
             photo    base with the photometric augmentation of the source (``photometric=True``: the benchmark's
                      pixelda_photo arm, compiled)
             photo_noadv  photo with the critic's term off (adv_weight 0): the same joint training of T on the
                      augmented source and G's output, G kept near the identity by the task term alone; the
                      control that tells what the adversarial game adds to photo
             encdec_sem      encdec plus CyCADA's semantic term (``semantic=`` the source-only classifier, frozen)
             encdec_semfree  encdec_sem with T's loss NOT fed back into G (T reads G's outputs detached): the class
                      is kept by the frozen classifier alone, so G and T cannot agree on a private code
             noshift  base without T's 1-pixel shifts (``shift=False``): what the augmentation adds in its place
             nofeedback  base with T's loss not fed back into G (as encdec_semfree, the package's G): G answers to
                      the critic alone, T learns from its detached outputs and the source
             cond     base with a projection critic on T's (detached) class probabilities of each image it
                      scores (``Projection``): the game made class-aware without target labels
             condgp   cond with p a differentiable function of the critic's input (T's parameters detached):
                      the gradient penalty then covers the class path too, so the critic stays 1-Lipschitz in x
             condhard cond on the one-hot of T's reading (p's confidence, sharper on the adaptations T fits to
                      their labels than on target images, cannot be what the critic scores)
             content1 / content10  base with PixelDA's content-similarity term (PMSE of G(x_s, z) against x_s) at
                      weight 1 / 10 (the package's default is 0): does anchoring G to its input keep the class
                      evidence that G loses on digits -> MNIST-5k (a target oracle reads the raw source better)?

    .venv/bin/python benchmarks/pixelda_diagnosis.py 'digits->digits-m' --steps 5000 --variant base
    .venv/bin/python benchmarks/pixelda_diagnosis.py 'digits->digits-m' --ceiling

--ceiling (digits -> digits-m only): what a perfect G would give. digits-m is made as |texture - digit| per channel
(``fastwgan.data.bundled.digits_m``), so a G that had learned the shift exactly would hand T |texture' - x_s| with
textures T never saw (other texture seeds); the classifier recipe trained on that with the source labels, tested on
digits-m-heldout, is the pixel-level route's ceiling.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import domain_digits as dd  # noqa: E402

import fastwgan as fw  # noqa: E402
from fastwgan.core.run import environment  # noqa: E402
from fastwgan.eval import classifier  # noqa: E402
from fastwgan.uses import pixelda  # noqa: E402

VARIANTS = ("base", "notask", "lrg1e3", "nobn", "paperg", "inoise", "ms", "patch", "zwide", "linskip", "mbstd")
VARIANTS += ("modulate", "uncond", "encdec", "encdec_sem", "encdec_semfree", "modonly", "modonly_free")
VARIANTS += ("pixelwise", "pixelskip", "photo", "photo_noadv", "noshift", "content1", "content10", "nofeedback")
VARIANTS += ("cond", "condhard", "condgp")
NOISE_STD = 0.2


class InstanceNoise(torch.nn.Module):
    """A critic that reads x + N(0, std^2) while training (``inoise``), x as it is in eval mode."""

    def __init__(self, critic: torch.nn.Module, std: float = NOISE_STD):
        super().__init__()
        self.critic, self.std = critic, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x + self.std * torch.randn_like(x) if self.training else x)


class Projection(torch.nn.Module):
    """``cond``: a projection critic (Miyato & Koyama 2018) on T's class probabilities of the image it scores:
    D(x) = w . h(x) + b + (p(x) E) . h(x), h the base critic's features, p = softmax(T(x)) detached (no gradient
    through T, to the critic's input or to T), E zero at the start (the base critic). T is the trainer's task
    classifier, held outside the module tree, so the critic's parameters are its own; on target images p is T's
    reading, on adaptations it is close to the source label that T fits them to (CDAN's idea, Long et al. 2018:
    align the class-conditional distributions, not only the marginals)."""

    def __init__(self, critic, classifier, num_classes: int = 10, hard: bool = False, penalised: bool = False):
        super().__init__()
        # condhard: the one-hot of T's reading, so the confidence of p cannot tell images apart
        self.hard, self.penalised = hard, penalised
        # condgp: p a differentiable function of x (T's parameters detached, so no critic or adversarial gradient
        # reaches T): the critic is then one function of x, T inside it, and the penalty bounds all of it
        self.features, self.out = critic.body[:-1], critic.body[-1]
        self.embed = torch.nn.Linear(num_classes, self.out.in_features, bias=False)
        torch.nn.init.zeros_(self.embed.weight)
        object.__setattr__(self, "task", (classifier,))  # not a submodule: T's parameters stay T's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        if self.penalised:
            task = self.task[0]
            frozen = {k: v.detach() for k, v in task.named_parameters()}
            logits = torch.func.functional_call(task, frozen, (x,))
        else:
            logits = self.task[0](x.detach()).detach()
        p = torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1]).to(h) if self.hard else logits.softmax(1)
        return self.out(h) + (self.embed(p) * h).sum(1, keepdim=True)


def patch_critic(channels: int, width: int = 64) -> torch.nn.Module:
    """``patch``: conv3x3(width) - LeakyReLU - conv3x3(2 width) - LeakyReLU - conv1x1(1), stride 1, padding 1 (a
    5x5 receptive field per output), the score the mean over positions; no normalisation (WGAN-GP)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 1, 1),
        nn.Flatten(),
        Mean(),
    )


class Mean(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1)


class LinearSkip(pixelda.PixelDAGenerator):
    """``linskip``: the bundled generator (skip on: its last conv zero-initialised) with out = x + conv(h)."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, self.channels_out, -1, -1) + self.body(x, z)


def gain_offset_mlp(noise_dim: int, channels: int, size: int, hidden: int = 128) -> torch.nn.Module:
    """z -> (A - 1, B) as one (B, 2 C S S) vector: Linear(noise_dim, hidden) - ReLU - Linear, the last zero (so
    A = 1, B = 0 at the start)."""
    nn = torch.nn
    mlp = nn.Sequential(nn.Linear(noise_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * channels * size * size))
    nn.init.zeros_(mlp[2].weight)
    nn.init.zeros_(mlp[2].bias)
    return mlp


def skip_base(x: torch.Tensor, channels: int) -> torch.Tensor:
    """The package G's skip input: atanh(0.98 x), repeated to ``channels``."""
    return torch.atanh(pixelda.networks.SKIP_SCALE * x).expand(-1, channels, -1, -1)


def modulated(mlp: torch.nn.Module, x: torch.Tensor, z: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """A(z) atanh(0.98 x) + B(z), before the tanh."""
    a, b = mlp(z).view(-1, 2, channels, size, size).unbind(1)  # (B, C, S, S) each
    return (1 + a) * skip_base(x, channels) + b


class Modulated(pixelda.PixelDAGenerator):
    """``modulate``: tanh(A(z) atanh(0.98 x) + B(z) + body(x, z)), (A - 1, B) = mod(z) zero at the start."""

    def add_modulation(self) -> "Modulated":
        self.mod = gain_offset_mlp(self.noise_dim, self.channels_out, self.image_size)
        return self

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        m = modulated(self.mod, x, z, self.channels_out, self.image_size)
        return torch.tanh(m + self.body(x, z))


class ModulateOnly(torch.nn.Module):
    """``modonly``: tanh(A(z) atanh(0.98 x) + B(z)), (A - 1, B) = MLP(z) (10 -> 128 -> 2 C S S), zero at the start."""

    noise_dim = pixelda.NOISE_DIM

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.c, self.s = channels, size
        self.mod = gain_offset_mlp(self.noise_dim, channels, size)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(modulated(self.mod, x, z, self.c, self.s))


class Pixelwise(torch.nn.Module):
    """``pixelwise``: tanh(1x1 MLP(concat(x, U(z)))), U = dcgan_G (3 channels, 64-d noise)."""

    noise_dim = 64

    def __init__(self, channels_in: int, channels: int, size: int, width: int = 32, skip: bool = False):
        super().__init__()
        from fastwgan.gan.models import build

        nn = torch.nn
        self.field = build("dcgan", (3, size, size), latent_dim=self.noise_dim)[0]
        last = nn.Conv2d(width, channels, 1)
        self.m = nn.Sequential(
            nn.Conv2d(channels_in + 3, width, 1), nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU(), last
        )
        self.skip, self.channels = skip, channels
        if skip:  # pixelskip: G starts as (nearly) the identity
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out = self.m(torch.cat([x, self.field(z)], 1))
        if not self.skip:
            return torch.tanh(out)
        return torch.tanh(skip_base(x, self.channels) + out)


class Unconditional(torch.nn.Module):
    """``uncond``: G(x, z) = dcgan_G(z), 128-d noise."""

    noise_dim = 128

    def __init__(self, channels: int, size: int):
        super().__init__()
        from fastwgan.gan.models import build

        self.g = build("dcgan", (channels, size, size), latent_dim=self.noise_dim)[0]

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.g(z)


class EncoderDecoder(torch.nn.Module):
    """``encdec``: G(x, z) = dcgan_G(concat(z, E(x))), z 64-d, E(x) 64-d."""

    noise_dim = 64

    def __init__(self, channels_in: int, channels: int, size: int, code: int = 64):
        super().__init__()
        from fastwgan.gan.models import build

        nn = torch.nn
        self.enc = nn.Sequential(
            nn.Conv2d(channels_in, 32, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(64 * (size // 2) ** 2, code),
        )
        self.g = build("dcgan", (channels, size, size), latent_dim=self.noise_dim + code)[0]

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.g(torch.cat([z, self.enc(x)], 1))


def no_task_feedback() -> None:
    """``encdec_semfree``: every PixelDA step from here on computes T's terms on detached images, so T's loss
    trains T and never G (both twins call ``pixelda.trainers.model_loss``)."""
    from fastwgan.uses.pixelda import trainers

    loss = trainers.model_loss

    def detached(generate, classify, *a, **kw):
        return loss(generate, lambda x: classify(x.detach()), *a, **kw)

    trainers.model_loss = detached


class MinibatchStd(torch.nn.Module):
    """``mbstd``: critic(mix(concat(x, s))), s = mean over (C, H, W) of the batch's std, one constant channel."""

    def __init__(self, critic: torch.nn.Module, channels: int):
        super().__init__()
        self.critic, self.mix = critic, torch.nn.Conv2d(channels + 1, channels, 1)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[:, :channels, 0, 0] = torch.eye(channels)
            self.mix.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x.var(0, unbiased=False) + 1e-8).sqrt().mean()
        return self.critic(self.mix(torch.cat([x, s.expand(x.shape[0], 1, *x.shape[2:])], 1)))


def noise_use(tr, xs, xt) -> dict:
    """Does G use its noise? The mean absolute difference between two adaptations of the same source images under
    two noise draws (``z_effect``), beside that between two random target images (``target_spread``) and between
    an adaptation and its source image (``source_shift``), all in [-1, 1] units per pixel."""
    a, b = (fw.data.to_float(tr.adapt(xs, seed=s)) for s in (1, 2))
    t = fw.data.to_float(xt)
    src = fw.data.to_float(xs).expand_as(a)
    return {
        "z_effect": (a - b).abs().mean().item(),
        "target_spread": (t - t.roll(1, 0)).abs().mean().item(),
        "source_shift": (a - src).abs().mean().item(),
    }


def ceiling(seed: int = 0, texture_seeds=(101, 102)) -> None:
    from fastwgan.data.bundled import texture_blend

    torch.set_num_threads(1)
    xs, ys, _, _, _, _, xt_test, yt_test = dd.data("digits->digits-m")
    for t in texture_seeds:
        perfect = texture_blend(xs, seed=t)  # digits-m's recipe with other textures
        clf = classifier.train_classifier(perfect, ys, epochs=20, seed=seed)
        acc = classifier.accuracy(clf, xt_test, yt_test)
        print(json.dumps({"ceiling": "perfect G", "texture_seed": t, "seed": seed, "target_acc": acc}), flush=True)


def main(shift: str, steps: int, variant: str, seed: int = 0, grid: Path | None = None) -> None:
    torch.set_num_threads(1)
    xs, ys, xs_test, ys_test, xt, yt, xt_test, yt_test = dd.data(shift)
    c = xs.shape[1]
    oracle = classifier.train_classifier(xt, yt, epochs=20, seed=seed)
    torch.manual_seed(seed)
    size = {"width": 64, "blocks": 6} if variant == "paperg" else {}
    if variant.startswith("zwide"):
        size = {"noise_dim": 32, "noise_channels": 8}
    nets = pixelda.digit_networks(c, c, norm="none" if variant == "nobn" else "batch", **size)
    if variant == "linskip":
        g = nets[0]
        g.__class__ = LinearSkip  # the same parameters, drawn as the base run's: only the output map differs
    if variant == "modulate":
        g = nets[0]
        g.__class__ = Modulated  # the base run's parameters, drawn first, plus the modulation MLP
        g.add_modulation()
    if variant.startswith("modonly"):
        nets = (ModulateOnly(xt.shape[1], xt.shape[-1]), nets[1], nets[2])
    if variant in ("pixelwise", "pixelskip"):
        g = Pixelwise(xs.shape[1], xt.shape[1], xt.shape[-1], skip=variant == "pixelskip")
        nets = (g, nets[1], nets[2])
    if variant == "uncond":
        nets = (Unconditional(xt.shape[1], xt.shape[-1]), nets[1], nets[2])
    if variant.startswith("encdec"):
        nets = (EncoderDecoder(xs.shape[1], xt.shape[1], xt.shape[-1]), nets[1], nets[2])
    if variant == "patch":
        nets = (nets[0], patch_critic(xt.shape[1]), nets[2])
    if variant == "mbstd":
        nets = (nets[0], MinibatchStd(nets[1], xt.shape[1]), nets[2])
    if variant in ("cond", "condhard", "condgp"):
        proj = Projection(nets[1], nets[2], hard=variant == "condhard", penalised=variant == "condgp")
        nets = (nets[0], proj, nets[2])
    if variant == "inoise":
        nets = (nets[0], InstanceNoise(nets[1]), nets[2])
    lr_g = {"lrg1e3": 1e-3}.get(variant, 1e-4)
    cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, batch_size=64, lr_g=lr_g)
    task = 0.0 if variant in ("notask", "uncond") else pixelda.TASK_WEIGHT
    diversity = 1.0 if variant == "ms" else 0.0
    sem = {}  # CyCADA's semantic term: the encdec_sem* variants and the four appearance-only ones
    if variant in ("encdec_sem", "encdec_semfree", "modonly", "modonly_free", "pixelwise", "pixelskip"):
        sem = {"semantic": classifier.train_classifier(xs, ys, epochs=20, seed=seed)}
    if variant in ("encdec_semfree", "modonly_free", "nofeedback"):
        no_task_feedback()
    photo = variant.startswith("photo")
    adv = 0.0 if variant == "photo_noadv" else pixelda.ADV_WEIGHT
    tr = pixelda.PixelDATrainer(
        *nets,
        cfg,
        shift=variant != "noshift",
        content_weight={"content1": 1.0, "content10": 10.0}.get(variant, pixelda.CONTENT_WEIGHT),
        adv_weight=adv,
        task_weight=task,
        pretrain_epochs=20,
        diversity_weight=diversity,
        photometric=photo,
        compile=True,
        **sem,
    )
    print(json.dumps({"shift": shift, "variant": variant, "seed": seed, "environment": environment()}), flush=True)
    t0 = time.time()
    for k in range(500, steps + 1, 500):
        tr.fit(xs, xt, k, labels=ys, log_every=100, progress=False)
        last = tr.history[-5:]
        row = {
            "step": k,
            "w_estimate": last[-1]["w_estimate"],
            "w_estimate_mean5": sum(r["w_estimate"] for r in last) / len(last),
            "task_adapted": tr.history[-1]["task_adapted"],
            "target_acc": tr.accuracy(xt_test, yt_test),
            "oracle_on_G": classifier.accuracy(oracle, tr.adapt(xs_test, seed=seed), ys_test),
            **noise_use(tr, xs_test, xt_test),
            "wall_s": time.time() - t0,
        }
        print(json.dumps(row), flush=True)
    if grid is not None:  # 10 held-out source images, two adaptations of each (noise seeds 1, 2), 10 target images
        rows = [xs_test[:10], tr.adapt(xs_test[:10], seed=1), tr.adapt(xs_test[:10], seed=2), xt_test[:10]]
        c = max(r.shape[1] for r in rows)
        rows = [fw.data.to_float(r).expand(-1, c, -1, -1) for r in rows]
        fw.data.save_grid(torch.cat(rows), grid, nrow=10, scale=4)


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("shift", choices=dd.SHIFTS)
    a.add_argument("--steps", type=int, default=5000)
    a.add_argument("--variant", default="base", choices=VARIANTS)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--grid", type=Path, default=None, help="write source / G(x, z1) / G(x, z2) / target rows here")
    a.add_argument("--ceiling", action="store_true", help="T on |texture - x_s| (digits -> digits-m): a perfect G")
    args = a.parse_args()
    if args.ceiling and args.shift != "digits->digits-m":
        a.error("--ceiling is defined for digits->digits-m (the shift whose recipe is known)")
    if args.ceiling:
        ceiling(args.seed)
    else:
        main(args.shift, args.steps, args.variant, args.seed, args.grid)
