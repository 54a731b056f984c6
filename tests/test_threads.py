"""fastwgan.threads: the CPU thread-count policy, driven by a fake clock whose step cost depends on the count."""
import pytest
import torch

from fastwgan.threads import ThreadPolicy, candidates

CPU = torch.device("cpu")


class FakeSteps:
    """A step whose duration is cost[threads] (seconds), read through a fake clock."""

    def __init__(self, cost):
        self.now, self.cost, self.seen = 0.0, dict(cost), []

    def clock(self):
        return self.now

    def step(self):
        t = torch.get_num_threads()
        self.seen.append(t)
        self.now += self.cost[t]


@pytest.fixture
def threads2():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(old)


def test_candidates_are_all_half_and_one():
    assert candidates(1) == [1] and candidates(2) == [2, 1] and candidates(16) == [16, 8, 1]


def test_fixed_count_applies_during_the_step_and_restores_torch_setting(threads2):
    steps = FakeSteps({1: 1.0, 2: 1.0})
    policy = ThreadPolicy(1, CPU, clock=steps.clock)
    policy.run(steps.step)
    assert steps.seen == [1] and torch.get_num_threads() == 2


def test_auto_keeps_all_cores_when_they_are_faster(threads2):
    steps = FakeSteps({1: 0.020, 2: 0.012})
    policy = ThreadPolicy("auto", CPU, clock=steps.clock)
    for _ in range(20):
        policy.run(steps.step)
    assert policy.current == 2 and policy.log == [(6, 2, "warm-up")]
    assert steps.seen[2:6] == [2, 2, 1, 1]  # the probe: each candidate twice, after two warm-up steps
    assert set(steps.seen[6:]) == {2}


def test_auto_moves_to_one_thread_under_contention_and_back_when_it_ends(threads2):
    steps = FakeSteps({1: 0.020, 2: 0.012})
    policy = ThreadPolicy("auto", CPU, clock=steps.clock, reprobe_every=10)
    for _ in range(10):
        policy.run(steps.step)
    steps.cost = {1: 0.025, 2: 0.150}  # another process now holds a core: 2 threads wait at every barrier
    for _ in range(12):
        policy.run(steps.step)
    assert policy.current == 1, policy.log
    assert "steps over" in policy.log[-1][2]
    slow = steps.seen[10:].count(2)
    assert slow <= 3 + 2, "at most `patience` slow steps and one probe pair run at 2 threads"
    steps.cost = {1: 0.020, 2: 0.012}  # the other process left
    for _ in range(20):
        policy.run(steps.step)
    assert policy.current == 2 and policy.log[-1][2].startswith("periodic")


def test_fewer_threads_need_a_clear_win(threads2):
    steps = FakeSteps({1: 0.0195, 2: 0.020})  # 1 thread only 2.5% faster: keep all cores (margin 0.9)
    policy = ThreadPolicy("auto", CPU, clock=steps.clock)
    for _ in range(8):
        policy.run(steps.step)
    assert policy.current == 2


def test_inert_off_cpu_and_rejects_bad_values():
    steps = FakeSteps({t: 1.0 for t in range(1, 257)})
    policy = ThreadPolicy("auto", torch.device("cuda"), clock=steps.clock)
    before = torch.get_num_threads()
    for _ in range(10):
        policy.run(steps.step)
    assert policy.log == [] and set(steps.seen) == {before}
    for bad in (0, -1, "fast", 1.5, True):
        with pytest.raises(ValueError, match="threads must be"):
            ThreadPolicy(bad, CPU)
