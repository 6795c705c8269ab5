# MNIST Neuron Atlas. `make site` builds everything from a fresh clone; `make test` runs the tests.
# Each pipeline stage is one target whose prerequisites are the code, data and templates it reads,
# so editing a template re-renders without retraining.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= atlas.toml
BUILD := build
ATLAS := $(PY) -m generator
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)

DATA := $(wildcard data/mnist/*)
MODEL_SRC := generator/__main__.py generator/config.py generator/data.py generator/errors.py \
             generator/kernels.py generator/output.py generator/train.py
ANALYSIS_SRC := generator/analysis.py generator/atlas.py
RENDER_SRC := generator/render.py generator/figures.py $(wildcard templates/*.j2 templates/static/*)

.DEFAULT_GOAL := help
.PHONY: help site test bench serve clean train analyze render lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --quiet --no-deps -r requirements.txt
	touch $@

$(BUILD)/model.npz: $(STAMP) $(CONFIG) $(DATA) $(MODEL_SRC)
	$(ATLAS) train --config $(CONFIG)

$(BUILD)/atlas.json: $(BUILD)/model.npz $(ANALYSIS_SRC)
	$(ATLAS) analyze --config $(CONFIG)

$(BUILD)/.rendered: $(BUILD)/atlas.json $(RENDER_SRC)
	$(ATLAS) render --config $(CONFIG)
	touch $@

$(BUILD)/.site: $(BUILD)/.rendered mkdocs.yml
	$(ATLAS) site --config $(CONFIG)
	touch $@

train: $(BUILD)/model.npz ## train the network (only if its inputs changed)
analyze: $(BUILD)/atlas.json ## compute the atlas's statistics into build/atlas.json
render: $(BUILD)/.rendered ## write Markdown and figures into build/docs
site: $(BUILD)/.site ## set up .venv, train, analyse, render and build site/ (all as needed)

test: $(STAMP) ## run the tests
	$(PY) -m pytest -q tests

# OpenBLAS runs an older, slower kernel when OPENBLAS_CORETYPE is set (some machines set it for old
# OpenBLAS builds); the benchmark unsets it, for its own command only, so NumPy is timed at its best.
bench: $(STAMP) ## time an epoch: numba vs NumPy (and PyTorch CPU with TORCH=1) vs the FLOP limit
ifeq ($(TORCH),1)
	$(PY) -m pip install --disable-pip-version-check --quiet torch==2.13.0
endif
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) bench/train_bench.py

serve: $(BUILD)/.site ## serve the built site on http://127.0.0.1:8000
	$(PY) -m http.server --bind 127.0.0.1 --directory site 8000

lock: ## re-pin requirements.txt from requirements.in in a clean environment
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --disable-pip-version-check --quiet -r requirements.in
	{ echo "# Every package the atlas installs, pinned (pip freeze of requirements.in in a clean venv)."; \
	  echo "# Regenerate: make lock"; .venv-lock/bin/pip freeze; } > requirements.txt
	rm -rf .venv-lock

clean: ## remove build/ and site/ (keeps .venv)
	rm -rf $(BUILD) site
