"""The one engine serves every trainer (issue 23): the translation, adaptation and f-AnoGAN encoder trainers gain
what the GAN trainer had, without loops of their own. Each property is checked on all three:

* DataLoader input: a run fed by loaders, stopped by a signal and resumed from its checkpoint, ends bitwise equal
  to the uninterrupted loader run (the loaders' positions are part of the checkpoint);
* signals: SIGINT finishes the step, writes a resumable checkpoint and returns with ``stopped_by`` set; resuming it
  ends bitwise equal to the uninterrupted run;
* ``on_nonfinite="skip"``: a step that made a parameter NaN is undone (the networks are as before it) and the run
  goes on; ``"raise"`` stops it naming the step;
* ``threads="auto"``: the CPU thread policy runs and every log tick records the thread count;
* torchrun: 2 gloo ranks, each on its half of every batch, equal 1 process (``tests/torchrun_uses.py``).
"""

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fastwgan.core import checkpoint
from fastwgan.core.guards import DivergenceError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import torchrun_uses as uses  # noqa: E402  (the trainers and data of this file and of the torchrun script)

KINDS = ("translate", "adapt", "dirtt", "encoder")


def loaders(kind: str, batch: int) -> tuple:
    """The kind's data as DataLoaders (no shuffling: the order is the epoch's alone, so a resume replays it)."""
    data = uses.data(kind)
    if kind in uses.LABELLED:
        (s, y, t) = data
        return DataLoader(TensorDataset(s, y), batch_size=batch), None, DataLoader(TensorDataset(t), batch_size=batch)
    return tuple(DataLoader(TensorDataset(d), batch_size=batch) for d in data)


def fit(trainer, kind, data, steps, **kw):
    if kind in uses.LABELLED:
        s, y, t = data
        return trainer.fit(s, t, steps, labels=y, progress=False, **kw)
    return trainer.fit(*data, steps, progress=False, **kw)


def stop_at(step: int):
    def cb(trainer, record):
        if record["step"] == step:
            signal.raise_signal(signal.SIGINT)

    return cb


def networks(trainer) -> dict:
    return {f"{k}.{n}": p.detach().clone() for k, m in trainer._networks().items() for n, p in m.named_parameters()}


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("feed", ["tensors", "loaders"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_signal_stops_with_a_checkpoint_that_resumes_bitwise(tmp_path, kind, feed):
    data = uses.data(kind) if feed == "tensors" else loaders(kind, uses.BATCH)
    whole = fit(uses.trainer(kind), kind, data, 5, log_every=1)
    stopped = fit(uses.trainer(kind), kind, data, 5, log_every=1, out=tmp_path / "run", callbacks=(stop_at(2),))
    assert stopped.stopped_by == "SIGINT" and stopped.step == 3
    state = checkpoint.load(tmp_path / "run")
    assert state["step"] == 3 and ("data_position" in state) == (feed == "loaders")
    resumed = uses.trainer(kind)
    resumed.load_state_dict(state)
    fit(resumed, kind, data if feed == "tensors" else loaders(kind, uses.BATCH), 5, log_every=1)
    assert_same(networks(resumed), networks(whole))
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5]
    for a, b in zip(resumed.history, whole.history):
        assert a == b


@pytest.mark.parametrize("kind", KINDS)
def test_loader_input_trains_on_the_loaders_batches(kind):
    # a loader of batches of another size is refused in one line naming TrainConfig.batch_size
    with pytest.raises(ValueError, match="batch_size"):
        fit(uses.trainer(kind), kind, loaders(kind, uses.BATCH + 1), 2)
    t = fit(uses.trainer(kind), kind, loaders(kind, uses.BATCH), 3, log_every=1)
    assert t.step == 3 and all(math.isfinite(v) for h in t.history for k, v in h.items() if v is not None)
    assert t.data_position is not None  # where each loader resumes


def poison_once(trainer):
    """Make the step after the armed one write NaN into a parameter and report a NaN metric."""
    real = trainer._train_step
    trainer.armed = False

    def step(*args):
        metrics = real(*args)
        if trainer.armed:
            trainer.armed = False
            with torch.no_grad():
                next(iter(trainer._networks().values())).parameters().__next__().view(-1)[0] = float("nan")
            metrics = {k: v * float("nan") for k, v in metrics.items()}
        return metrics

    trainer._train_step = step

    def arm(t, record):
        if record["step"] == 2:
            t.armed = True

    return arm


@pytest.mark.parametrize("kind", KINDS)
def test_skip_undoes_a_nonfinite_step_and_raise_names_it(kind):
    t = uses.trainer(kind)
    seen = {}
    arm = poison_once(t)
    fit(
        t,
        kind,
        uses.data(kind),
        5,
        log_every=1,
        on_nonfinite="skip",
        callbacks=(lambda tr, r: seen.update({r["step"]: networks(tr)}), arm),
    )
    assert t.skipped_steps == [3] and t.step == 5
    assert [h["step"] for h in t.history] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(v) for h in t.history for v in h.values() if v is not None)
    assert all(torch.isfinite(p).all() for p in networks(t).values())
    t = uses.trainer(kind)
    with pytest.raises(DivergenceError, match="at step 3"):
        fit(t, kind, uses.data(kind), 5, log_every=1, callbacks=(poison_once(t),))


@pytest.mark.parametrize("kind", KINDS)
def test_threads_auto_runs_the_policy_and_records_it(kind):
    t = uses.trainer(kind, threads="auto")
    records = []
    fit(t, kind, uses.data(kind), 4, log_every=2, callbacks=(lambda tr, r: records.append(r),))
    assert t.threads.mode == "auto"
    assert [r["step"] for r in records] == [2, 4] and all(r["threads"] >= 1 for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_torchrun_two_gloo_ranks_equal_one_process(tmp_path, kind):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    script = str(HERE / "torchrun_uses.py")
    two = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", script, kind, str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, script, kind, str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=300
    )
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = checkpoint.load(tmp_path / "one"), checkpoint.load(tmp_path / "two")
    assert a["step"] == b["step"] == uses.STEPS
    one_t, two_t = uses.trainer(kind), uses.trainer(kind)
    one_t.load_state_dict(a)
    two_t.load_state_dict(b)
    # The same parameters up to float summation order, held as tests/equivalence.py holds the fast trainer to the
    # reference: Adam steps by g / sqrt(v) (its first step is ~3 lr whatever |g|), so an element whose gradient is
    # rounding noise moves by a coin flip of lr: e.g. a critic's last bias, whose gradient cancels exactly in
    # mean(D(real)) - mean(D(fake)), or a conv bias before an instance norm. Such elements (gradient RMS under 5% of
    # the group's median: a scalar bias is all noise, so the median is the group's, not the tensor's) are held to
    # the optimizer's travel, the others to 2% of it (measured: at most 1.1%, one first-layer bias element of the
    # translation's target critic; a wrong shard, mean or all-reduce moves most elements by whole steps).
    for group, flat in one_t.groups.flat.items():
        updates = uses.N_CRITIC if group.startswith("critic") else 1
        travel = uses.STEPS * updates * uses.LR * 10
        other = two_t.groups.flat[group]
        rms_all = one_t.groups.state[group]["exp_avg_sq"].sqrt()
        floor = 0.05 * rms_all.median()
        views = zip(flat.views(flat.data), other.views(other.data), flat.views(rms_all))
        for i, (pa, pb, rms) in enumerate(views):
            noise = rms < floor
            torch.testing.assert_close(
                pb[~noise], pa[~noise], rtol=1e-3, atol=1e-5 + 0.02 * travel, msg=lambda m: f"{group}[{i}]: {m}"
            )
            assert bool(((pb - pa)[noise].abs() <= travel).all()), f"{group}[{i}]: beyond any optimizer travel"
    # metrics averaged over ranks = the global batch's, as closely as the parameters above allow: a critic's last
    # bias (a noise element) enters -mean(D(G(x))) directly, so the generator's adversarial term moves with its
    # coin flip from the first critic update on (measured: 6e-5 apart)
    for x, y in zip(a["history"], b["history"]):
        for k, v in x.items():
            if isinstance(v, float):
                assert math.isclose(v, y[k], rel_tol=1e-2, abs_tol=1e-4), (x["step"], k, v, y[k])
