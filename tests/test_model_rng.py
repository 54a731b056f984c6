"""Randomness inside the models (dropout) follows the run's seed (fastwgan.core.rng.ModelRNG): two runs with one seed
end
bitwise equal, in one process or two, and so does a run and its stop/resume twin, for both trainers, eager and
compiled; the caller's global RNG is left as it was. (torch 2.13 seeds its global generator randomly in every
process, so without this a dropout critic trained differently on every run.)"""

import copy
import os
import subprocess
import sys
import tempfile

import pytest
import torch
from torch import nn

import fastwgan as fw
from fastwgan.core import checkpoint
from fastwgan.core.rng import ModelRNG
from fastwgan.gan.trainer import Trainer

SCRIPT = r"""
import hashlib, sys, torch
from torch import nn
import fastwgan as fw
from fastwgan.gan.trainer import Trainer

def models():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    return G, D

def make(kind):
    cfg = fw.TrainConfig.preset("wgan-gp-toy", batch_size=8, latent_dim=2, seed=5)
    if kind == "reference":
        return fw.ReferenceTrainer(*models(), cfg)
    return Trainer(*models(), cfg, compile=kind == "compiled", threads=1)

def digest(t):
    return hashlib.sha256(b"".join(p.detach().contiguous().numpy().tobytes()
                                   for m in (t.critic, t.generator) for p in m.parameters())).hexdigest()
"""


def _script(kind: str, steps: int) -> str:
    return SCRIPT + (
        f"t = make({kind!r})\nt.fit(fw.data.toy('8gaussians', n=64), {steps}, progress=False)\nprint(digest(t))\n"
    )


namespace: dict = {}
exec(SCRIPT, namespace)  # the same models, trainers and digest in this process
make, digest = namespace["make"], namespace["digest"]
KINDS = ["reference", "eager", "compiled"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_two_runs_with_one_seed_are_bitwise_equal_and_leave_the_global_rng_alone(kind):
    x = fw.data.toy("8gaussians", n=64)
    a = make(kind)  # builds the models after torch.manual_seed(0): the caller's doing
    before = torch.get_rng_state()
    a.fit(x, 3, progress=False)
    assert torch.equal(torch.get_rng_state(), before)  # fit took nothing from the caller's generator
    torch.rand(7)  # the caller's global state moves on between the runs
    b = make(kind).fit(x, 3, progress=False)
    assert digest(a) == digest(b)
    other = make(kind)
    other._model_rng = ModelRNG(123, other.device)  # another model-RNG seed: other dropout masks
    assert digest(other.fit(x, 3, progress=False)) != digest(a)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["reference", "compiled"])
def test_dropout_runs_repeat_across_processes(kind):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    outs = [
        subprocess.run([sys.executable, "-c", _script(kind, 3)], capture_output=True, text=True, env=env, timeout=300)
        for _ in range(2)
    ]
    for r in outs:
        assert r.returncode == 0, r.stderr[-2000:]
    assert outs[0].stdout.split()[-1] == outs[1].stdout.split()[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_a_stopped_and_resumed_dropout_run_is_bitwise_the_straight_run(kind):
    x = fw.data.toy("8gaussians", n=64)
    straight = make(kind).fit(x, 4, progress=False)
    first = make(kind).fit(x, 2, progress=False)
    with tempfile.TemporaryDirectory() as d:
        checkpoint.save(first.state_dict(), d, 2)
        second = make(kind)
        second.load_state_dict(checkpoint.load(d))
    second.fit(x, 4, progress=False)
    assert digest(second) == digest(straight)


def test_checkpoints_from_before_the_model_rng_still_load():
    x = fw.data.toy("8gaussians", n=64)
    t = make("reference").fit(x, 2, progress=False)
    state = t.state_dict()
    old = {k: v for k, v in state.items() if k != "rng_model"}
    old["rng_torch"] = state["rng_model"]["cpu"]  # how the global state was saved before
    a, b = make("reference"), make("reference")
    a.load_state_dict(copy.deepcopy(state))  # torch.optim may keep the given tensors: one copy each
    b.load_state_dict(copy.deepcopy(old))
    assert digest(a.fit(x, 4, progress=False)) == digest(b.fit(x, 4, progress=False))


def test_a_dropout_critic_is_not_mistaken_for_batch_statistics():
    # dropout is per sample: the penalty's per-sample gradient stays valid, so such critics are accepted
    D = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.2), nn.Linear(8, 1))
    G = nn.Linear(2, 2)
    Trainer(G, D, fw.TrainConfig.preset("wgan-gp-toy", batch_size=4), compile=False)
