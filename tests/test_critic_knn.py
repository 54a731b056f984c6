"""critic-knn (fastwgan.uses.anomaly.critic_knn_scores): the k-nearest-neighbour distance in a critic's feature
space against a brute-force computation on random small data (hypothesis), the same numbers in chunks and from a
DataLoader, a user critic's feature layer, a class-conditional critic, the CSV of `fastwgan score --method
critic-knn`, and the bad inputs as one line each."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fastwgan as fw
from fastwgan.cli import inference, main
from fastwgan.gan import models
from fastwgan.uses import anomaly


def hidden_layers(body):
    """The bundled critics' default feature maps, written plainly: the output of every activation of the
    Sequential body, run module by module."""

    def f(x):
        out = []
        for m in list(body)[:-1]:
            x = m(x)
            if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
                out.append(x.flatten(1))
        return out

    return f


def brute_force(layers, train, x, k, normalize, pixels=False, chunk=1024, per_layer=False):
    """Every distance at once, in double: the definition. ``layers``: images -> list of (B, F_l). With ``pixels``,
    each space's distance over the training images' own leave-one-out k-NN distance there (measured on the first
    ``chunk``'s evenly spaced images), the two added; with ``per_layer``, each layer is a space of its own."""

    def embed(v):
        with torch.no_grad():
            hs = [h.double() for h in layers(fw.data.to_float(v))]
        return torch.cat([F.normalize(h, dim=1) if normalize else h for h in hs], 1)

    def knn(e, q, kk):
        return torch.cdist(e(q), e(train)).topk(kk, dim=1, largest=False).values

    d = knn(embed, x, k).mean(1)
    if not (pixels or per_layer):
        return d
    first = train[:chunk]
    sub = first[torch.linspace(0, len(first) - 1, min(anomaly.scores.SCALE_SAMPLE, len(first))).long()]
    kk = min(k + 1, len(train))  # the image itself at 0, then its k nearest others (all, when fewer)

    def unit(e):
        return knn(e, sub, kk).sum(1).mean() / (kk - 1)

    def pix(v):
        return fw.data.to_float(v).flatten(1).double()

    def layer(i):
        return lambda v: embed_layers(v)[i]

    def embed_layers(v):
        with torch.no_grad():
            return [h.double() for h in layers(fw.data.to_float(v))]

    if per_layer:
        spaces = [layer(i) for i in range(len(embed_layers(train[:1])))]
    else:
        spaces = [embed]
    spaces += [pix] if pixels else []
    return sum(knn(e, x, k).mean(1) / unit(e) for e in spaces)


DEFAULTS = (anomaly.CRITIC_KNN_NORMALIZE, anomaly.CRITIC_KNN_PIXELS)  # normalize, pixels


def images(g, n, shape):
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**20),
    n_train=st.integers(1, 40),
    n_x=st.integers(1, 13),
    k=st.integers(1, 5),
    chunk=st.integers(1, 17),
    normalize=st.booleans(),
    side=st.integers(2, 6),
)
def test_critic_knn_matches_brute_force(seed, n_train, n_x, k, chunk, normalize, side):
    k = min(k, n_train)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    _, D = models.mlp((1, side, side), 4, hidden=8)
    train, x = images(g, n_train, (1, side, side)), images(g, n_x, (1, side, side))
    want = brute_force(hidden_layers(D.body), train, x, k, normalize)
    got = anomaly.critic_knn_scores(D, train, x, k, normalize=normalize, pixels=False, chunk=chunk)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train, torch.zeros(n_train)), batch_size=chunk)
    torch.testing.assert_close(anomaly.critic_knn_scores(D, loader, x, k, normalize=normalize, pixels=False), got)
    # a training image is at distance 0 from itself
    assert anomaly.critic_knn_scores(D, train, train[:3], 1, normalize=normalize, pixels=False).abs().max() < 1e-4


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**20),
    n_train=st.integers(2, 40),
    n_x=st.integers(1, 9),  # the pixels-added score
    k=st.integers(1, 4),
    chunk=st.integers(2, 17),
    side=st.integers(2, 5),
)
def test_critic_knn_with_pixels_matches_brute_force(seed, n_train, n_x, k, chunk, side):
    """pixels=True: each space's k-NN distance divided by the training images' own (leave-one-out) k-NN distance
    there, measured on the first chunk's evenly spaced images, and the two added; a DataLoader gives the same."""
    k = min(k, n_train)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    _, D = models.mlp((1, side, side), 4, hidden=8)
    train, x = images(g, n_train, (1, side, side)), images(g, n_x, (1, side, side))
    want = brute_force(hidden_layers(D.body), train, x, k, False, pixels=True, chunk=chunk)
    got = anomaly.critic_knn_scores(D, train, x, k, normalize=False, pixels=True, chunk=chunk)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train, torch.zeros(n_train)), batch_size=chunk)
    torch.testing.assert_close(anomaly.critic_knn_scores(D, loader, x, k, normalize=False, pixels=True), got)
    # one pass over the training images: a one-shot iterator of chunks serves too
    chunks = iter([train[i : i + chunk] for i in range(0, n_train, chunk)])
    torch.testing.assert_close(anomaly.critic_knn_scores(D, chunks, x, k, normalize=False, pixels=True), got)
    with pytest.raises(ValueError, match="2 training images or more, got 1"):
        anomaly.critic_knn_scores(D, train[:1], x, 1, pixels=True)
    # per_layer: each hidden layer a space of its own, in its own unit, with and without the pixels
    for pix in (False, True):
        want = brute_force(hidden_layers(D.body), train, x, k, False, pixels=pix, chunk=chunk, per_layer=True)
        got = anomaly.critic_knn_scores(D, train, x, k, normalize=False, pixels=pix, per_layer=True, chunk=chunk)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


class UserCritic(nn.Module):
    """A critic of the user's with no features() method: the features are its submodule "trunk.1"'s output."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.out = nn.Linear(4 * 8 * 8, 1)

    def forward(self, x):
        return self.out(self.trunk(x)).squeeze(1)


def test_user_critic_feature_layer_and_conditional_critic():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    train, x = images(g, 30, (1, 8, 8)), images(g, 7, (1, 8, 8))
    critic = UserCritic()
    norm, pix = anomaly.CRITIC_KNN_NORMALIZE, anomaly.CRITIC_KNN_PIXELS  # the defaults
    want = brute_force(lambda v: [critic.trunk[:2](v).flatten(1)], train, x, 2, norm, pix)
    torch.testing.assert_close(anomaly.critic_knn_scores(critic, train, x, 2, layers="trunk.1"), want)
    two = brute_force(
        lambda v: [critic.trunk[:1](v).flatten(1), critic.trunk[:2](v).flatten(1)], train, x, 1, norm, pix
    )
    torch.testing.assert_close(anomaly.critic_knn_scores(critic, train, x, 1, layers=["trunk.0", "trunk.1"]), two)
    with pytest.raises(ValueError, match="no features"):
        anomaly.critic_knn_scores(critic, train, x)
    with pytest.raises(ValueError, match="no submodule 'trunk.7'"):
        anomaly.critic_knn_scores(critic, train, x, layers="trunk.7")
    # a convolutional critic: its LeakyReLU feature maps, flattened
    dc = fw.models.dcgan(8, 1, 8)[1]
    torch.testing.assert_close(
        anomaly.critic_knn_scores(dc, train, x),
        brute_force(hidden_layers(dc.body), train, x, anomaly.CRITIC_KNN_K, norm, pix),
    )
    # a projection critic D(x, y) = psi(phi(x)) + <embed(y), phi(x)>: phi needs no class
    _, cond = models.mlp((1, 8, 8), 4, hidden=16, num_classes=10)
    torch.testing.assert_close(
        anomaly.critic_knn_scores(cond, train, x, 3), brute_force(hidden_layers(cond.body), train, x, 3, norm, pix)
    )


def test_score_entry_and_bad_input():
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    G, D = models.mlp((1, 8, 8), 4, hidden=8)
    trainer = fw.Trainer(G, D, fw.TrainConfig.preset("wgan-gp", latent_dim=4), compile=False)
    train, x = images(g, 20, (1, 8, 8)), images(g, 5, (1, 8, 8))
    s = anomaly.score("critic-knn", x, trainer=trainer, train=train)["score"]
    torch.testing.assert_close(
        s,
        brute_force(
            hidden_layers(D.body),
            train,
            x,
            anomaly.CRITIC_KNN_K,
            anomaly.CRITIC_KNN_NORMALIZE,
            anomaly.CRITIC_KNN_PIXELS,
        ),
    )
    assert s.dtype == torch.float64 and s.shape == (5,)
    with pytest.raises(ValueError, match="'critic-knn' needs the training images"):
        anomaly.score("critic-knn", x, trainer=trainer)
    with pytest.raises(ValueError, match="'critic-knn' needs the trainer"):
        anomaly.score("critic-knn", x, train=train)
    with pytest.raises(ValueError, match=r"inputs of shape \(1, 9, 9\) but training images of shape \(1, 8, 8\)"):
        anomaly.score("critic-knn", torch.zeros(2, 1, 9, 9, dtype=torch.uint8), trainer=trainer, train=train)
    with pytest.raises(ValueError, match="k=30 but only 20 training images"):
        anomaly.score("critic-knn", x, trainer=trainer, train=train, k=30)


def test_cli_critic_knn_csv_and_missing_training_data(tmp_path, capsys):
    data = tmp_path / "normal.npy"
    x, y = fw.data.digits_split("train")
    np.save(data, x[y != 3][:200].numpy())
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--steps", "3", "--out", str(run), "--width", "16"]
    assert main([*argv, "--trainer", "reference", "--no-progress"]) == 0
    out = tmp_path / "ck.csv"
    assert main(["score", str(run), "digits-heldout", "--method", "critic-knn", "--k", "2", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "index,name,score,label"  # the one CSV convention, labels kept
    names, scores = inference.read_scores_csv(out)
    trainer, _ = fw.load_trainer(run)
    held = fw.data.load("digits-heldout")
    want = anomaly.critic_knn_scores(trainer.critic, torch.from_numpy(np.load(data)), held, 2)
    assert len(names) == 500
    torch.testing.assert_close(scores, want, rtol=1e-6, atol=1e-6)
    # the run's training data gone: one line naming it
    data.unlink()
    capsys.readouterr()
    assert main(["score", str(run), "digits-heldout", "--method", "critic-knn"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "normal.npy" in err[0]
    # (inputs of another size: the CLI brings them to the run's size first; the API refuses, above)
