"""TrainConfig: presets hold the papers' values, every bad field raises a ValueError that names it."""

import pytest

from fastwgan import TrainConfig


def test_presets_match_the_papers():
    clip = TrainConfig.preset("wgan-clip")
    assert (clip.loss, clip.optimizer, clip.lr_d, clip.lr_g, clip.clip_value, clip.n_critic, clip.batch_size) == (
        "clip",
        "rmsprop",
        5e-5,
        5e-5,
        0.01,
        5,
        64,
    )
    gp = TrainConfig.preset("wgan-gp")
    assert (gp.loss, gp.optimizer, gp.lr_d, gp.lr_g, gp.betas, gp.gp_weight, gp.n_critic) == (
        "gp",
        "adam",
        1e-4,
        1e-4,
        (0.0, 0.9),
        10.0,
        5,
    )
    toy = TrainConfig.preset("wgan-gp-toy")
    assert (toy.gp_weight, toy.betas, toy.batch_size) == (0.1, (0.5, 0.9), 256)


def test_preset_overrides_and_round_trip():
    cfg = TrainConfig.preset("wgan-gp", batch_size=256, seed=3, betas=[0.5, 0.99])
    assert cfg.batch_size == 256 and cfg.seed == 3 and cfg.betas == (0.5, 0.99)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown config field"):
        TrainConfig.preset("wgan-gp", batchsize=3)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.preset("wgan")


def test_frozen():
    cfg = TrainConfig()
    with pytest.raises(Exception):
        cfg.loss = "clip"


@pytest.mark.parametrize(
    "field,value",
    [
        ("loss", "hinge"),
        ("n_critic", 0),
        ("n_critic", 2.0),
        ("n_critic", True),
        ("lr_d", 0.0),
        ("lr_g", -1e-4),
        ("lr_d", float("nan")),
        ("optimizer", "sgd"),
        ("betas", (0.5,)),
        ("betas", (1.0, 0.9)),
        ("rmsprop_alpha", 1.0),
        ("opt_eps", 0),
        ("clip_value", 0.0),
        ("clip_value", float("inf")),
        ("gp_weight", -1.0),
        ("batch_size", 0),
        ("latent_dim", -3),
        ("seed", -1),
        ("device", "gpu"),
        ("device", "cuda:x"),
        ("dtype", "float16"),
    ],
)
def test_bad_field_raises_naming_it(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}:"):
        TrainConfig(**{field: value})
