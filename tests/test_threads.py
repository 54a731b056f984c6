"""fastwgan.core.threads: the CPU thread-count policy, driven by a fake clock whose step cost depends on the count."""

import pytest
import torch

from fastwgan.core.threads import ThreadPolicy, candidates

CPU = torch.device("cpu")


class FakeSteps:
    """A step whose duration is cost[threads] (seconds), read through a fake clock; the first step at each count
    also pays `compile` seconds, as a compiled step does."""

    def __init__(self, cost, compile=5.0):
        self.now, self.cost, self.compile, self.seen = 0.0, dict(cost), compile, []

    def clock(self):
        return self.now

    def step(self):
        t = torch.get_num_threads()
        self.now += self.cost[t] + (self.compile if t not in self.seen else 0.0)
        self.seen.append(t)


@pytest.fixture
def threads2():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(old)


def run(policy, steps, n):
    for _ in range(n):
        policy.run(steps.step)


def test_candidates_are_all_half_and_one():
    assert candidates(1) == [1] and candidates(2) == [2, 1] and candidates(16) == [16, 8, 1]


def test_fixed_count_applies_during_the_step_and_restores_torch_setting(threads2):
    steps = FakeSteps({1: 1.0, 2: 1.0})
    policy = ThreadPolicy(1, CPU, clock=steps.clock)
    policy.run(steps.step)
    assert steps.seen == [1] and torch.get_num_threads() == 2


def test_auto_on_a_quiet_machine_stays_at_all_cores_and_compiles_once(threads2):
    steps = FakeSteps({1: 0.010, 2: 0.012})  # even where 1 thread would be a little faster: no probe, no compile
    policy = ThreadPolicy("auto", CPU, clock=steps.clock)
    run(policy, steps, 100)
    assert set(steps.seen) == {2} and policy.log == []


def test_auto_ignores_noise_around_the_typical_time(threads2):
    # A quiet virtual machine: one rare fast step (40 ms) and runs of ordinary steps between 60 and 85 ms. Against
    # the best time (1.5 x 40 = 60 ms) the 80-85 ms runs looked like contention and cost a probe and a compile;
    # against the typical (median) time they are noise.
    times = iter([0.070] * 3 + [0.040] + [0.060, 0.075, 0.080, 0.085, 0.080, 0.065] * 30)

    class Noisy(FakeSteps):
        def step(self):
            self.now += next(times)
            self.seen.append(torch.get_num_threads())

    steps = Noisy({})
    policy = ThreadPolicy("auto", CPU, clock=steps.clock)
    run(policy, steps, 150)
    assert policy.log == [] and set(steps.seen) == {2}


def test_auto_moves_to_one_thread_under_contention_and_back_when_it_ends(threads2, caplog):
    caplog.set_level("INFO", logger="fastwgan")
    steps = FakeSteps({1: 0.020, 2: 0.012})
    policy = ThreadPolicy("auto", CPU, clock=steps.clock, reprobe_every=10)
    run(policy, steps, 10)
    steps.cost = {1: 0.025, 2: 0.150}  # another process now holds a core: 2 threads wait at every barrier
    run(policy, steps, 12)
    assert policy.current == 1, policy.log
    assert "steps over" in policy.log[-1][2]
    # 3 slow steps, 2 timed probe steps at 2 threads; 1 untimed (compiling) + 2 timed at 1 thread
    assert steps.seen[10:18] == [2, 2, 2, 2, 2, 1, 1, 1]
    # a change of count is one line (the CLI prints the "fastwgan" logger's notes on stderr); probes that keep the
    # count are debug-level details (`fastwgan --debug`)
    said = lambda: [r.getMessage().split(" (")[0] for r in caplog.records if r.levelname == "INFO"]  # noqa: E731
    assert said() == ["threads: 1 from step 18"]
    steps.cost = {1: 0.020, 2: 0.012}  # the other process left
    run(policy, steps, 20)
    assert policy.current == 2 and policy.log[-1][2].startswith("periodic")
    assert said() == ["threads: 1 from step 18", f"threads: 2 from step {policy.log[-1][0]}"]
    steps.cost = {1: 0.025, 2: 0.150}
    caplog.clear()
    caplog.set_level("DEBUG", logger="fastwgan")
    run(policy, steps, 12)
    assert [r.levelname for r in caplog.records].count("INFO") == 1
    assert any(r.getMessage().startswith("threads: timing") for r in caplog.records if r.levelname == "DEBUG")


def test_rechecks_back_off_while_contention_lasts(threads2):
    steps = FakeSteps({1: 0.020, 2: 0.012})
    policy = ThreadPolicy("auto", CPU, clock=steps.clock, reprobe_every=10)
    run(policy, steps, 10)
    steps.cost = {1: 0.025, 2: 0.150}
    run(policy, steps, 400)
    rechecks = [s for s, _, why in policy.log if why.startswith("periodic")]
    assert policy.current == 1 and len(rechecks) >= 3
    gaps = [b - a for a, b in zip(rechecks, rechecks[1:])]
    assert all(g2 > g1 for g1, g2 in zip(gaps, gaps[1:])), gaps  # 10, 20, 40, ... steps apart
    slow = sum(1 for t in steps.seen[10:] if t == 2)
    assert slow <= 3 + 2 + 2 * len(rechecks), "only the trigger and the probes run at 2 threads"


def test_fewer_threads_need_a_clear_win(threads2):
    steps = FakeSteps({1: 0.0195, 2: 0.020})
    policy = ThreadPolicy("auto", CPU, clock=steps.clock)
    run(policy, steps, 10)
    steps.cost = {1: 0.039, 2: 0.040}  # everything slower, 1 thread only 2.5% faster: keep all cores
    run(policy, steps, 12)
    assert policy.log and policy.current == 2


def test_inert_off_cpu_and_rejects_bad_values():
    steps = FakeSteps({t: 1.0 for t in range(1, 257)})
    policy = ThreadPolicy("auto", torch.device("cuda"), clock=steps.clock)
    before = torch.get_num_threads()
    run(policy, steps, 10)
    assert policy.log == [] and set(steps.seen) == {before}
    for bad in (0, -1, "fast", 1.5, True):
        with pytest.raises(ValueError, match="threads must be"):
            ThreadPolicy(bad, CPU)
