# The two set-up-and-go commands (README): `make run` and `make test`. Both create .venv and
# install the project on first use (python3, pip and make are all they need).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# tensorflow-cpu by default; on a GPU box: `make run TF=gpu` (tensorflow[and-cuda]). Never both.
TF ?= cpu
STAMP := $(VENV)/.installed-$(TF)
# The default sweep: every model on the default (synthetic) dataset, then the figures.
RUN_ARGS ?= -m experiment=figure3
PYTEST_ARGS ?=

.PHONY: run test install clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e '.[$(TF),dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py $(RUN_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
