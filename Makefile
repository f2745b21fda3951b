# The two set-up-and-go commands (README): `make run` and `make test`. Both create .venv and
# install the project on first use (python3, pip and make are all they need).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# tensorflow-cpu by default; on a GPU box: `make run TF=gpu` (tensorflow[and-cuda]). Never both.
TF ?= cpu
STAMP := $(VENV)/.installed-$(TF)
# The other flavour, removed before this one is installed: both provide the `tensorflow` module,
# and pip would otherwise leave the first one beside the second in an existing .venv.
OTHER_TF := $(if $(filter gpu,$(TF)),tensorflow-cpu,tensorflow)
# The default sweep: every model on the default (synthetic) dataset, then the figures.
# `make run REPEATS=3`: every job three times (seeds 0, 1, 2; the seed-0 runs of an earlier
# `make run` are reused), figures with median curves and bands, speed-ups with intervals.
REPEATS ?= 1
RUN_ARGS ?= -m preset=figure3 sweep.repeats=$(REPEATS)
PYTEST_ARGS ?=

.PHONY: run test test-fast lint install clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip uninstall -y -q $(OTHER_TF) 2>/dev/null || true
	$(BIN)/python -m pip install -e '.[$(TF),dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py $(RUN_ARGS)

# The whole suite (what CI runs): ~35 min on 2 cores.
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Everything but the tests marked slow (end-to-end runs, anything over ~5 s), on every core
# (pytest-xdist): 99-128 s on 2 cores with a warm Numba cache, for every edit.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n auto $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
