# MNIST Neuron Atlas. `make site` builds everything from a fresh clone; `make test` runs the tests.
# Each pipeline stage is one target whose prerequisites are the code, data and templates it reads,
# so editing a template re-renders without retraining. A stage whose output would not change leaves
# the file as it is (train checks a fingerprint, analyze compares bytes); `touch` then tells Make
# the target is current.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= atlas.toml
# Where this config's atlas lives, read from the config itself (site.build_dir, site.site_dir, data.dir,
# site.sections), so `make site CONFIG=configs/fashion-mnist.toml` builds and marks only that atlas.
# One Python start for all of them: `make_paths.py CONFIG make` prints key=value words (see its docstring).
MAKE_PATHS := $(shell $(PYTHON) generator/make_paths.py $(CONFIG) make 2>&1)
ifneq ($(filter error: usage:,$(firstword $(MAKE_PATHS))),)
$(error $(MAKE_PATHS))
endif
PATHS = $(patsubst $(1)=%,%,$(filter $(1)=%,$(MAKE_PATHS)))
BUILD := $(call PATHS,build)
SITE := $(call PATHS,site)
SECTIONS := $(call PATHS,sections)
ATLAS := $(PY) -m generator
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
TEST_STAMP := $(VENV)/.installed-test-$(shell cat requirements.txt requirements-test.txt | cksum | cut -d' ' -f1)

DATA := $(call PATHS,data)
MODEL_SRC := generator/config.py generator/data.py $(wildcard generator/kernels/*.py) generator/train.py \
	generator/weights.py generator/activations.py generator/dataset_files.py $(wildcard generator/readers/*.py) \
	generator/network.py
ANALYSIS_SRC := generator/analysis.py generator/activations.py generator/atlas.py generator/attribution.py \
	generator/effects.py generator/provenance.py generator/network.py generator/stats.py generator/digit_analysis.py \
	generator/units.py generator/background.py
RENDER_SRC := generator/render.py generator/background.py generator/render_layers.py generator/formats.py generator/names.py generator/figures.py generator/prose.py generator/probe.py \
	$(wildcard templates/*.j2 templates/static/*)
SITE_SRC := mkdocs.yml generator/site.py generator/mkdocs_hooks.py generator/mkdocs_pages.py generator/background.py $(shell find templates/overrides -type f)

.DEFAULT_GOAL := help
# Targets that do not depend on each other run two at a time (these machines have 2 cores); each stage
# prints whole lines, so a log interleaves them line by line. `make -j1 site` runs one at a time.
MAKEFLAGS += --jobs=2
# Python writes its bytecode caches (in .venv and __pycache__/, both ignored by git), as it does by default,
# even where the environment turns that off (PYTHONDONTWRITEBYTECODE=1, as on these machines): without them
# every stage compiles the sources of what it imports again (numba, NumPy, mkdocs), about 3 s of
# CPU per process, measured.
unexport PYTHONDONTWRITEBYTECODE
.PHONY: help site test serve deploy model-inputs clean train analyze render lock bench bench-scale bench-warm bench-fresh

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The runtime environment holds only what `make site` needs; `make test` adds the test packages.
# uv (pinned) installs the pinned set in 2-7 s where pip alone takes about 50 s on these 2 cores; both
# install exactly the files of requirements.txt. UV=0 uses pip alone (e.g. where only a local package index
# is reachable: uv does not read pip's configuration).
# .venv is made without pip of its own (`python3 -m venv` spends about 4 s installing pip): pip_install runs
# the system Python's pip on it (pip >= 22.3: --python), or, where that Python has no such pip, first gives
# .venv its own pip (ensurepip) as before.
UV ?= 1
UV_VERSION := 0.13.9
PIP_FLAGS := --disable-pip-version-check --quiet
# (Asking pip its version here takes 0.05 s where `pip --version` takes 0.8; an install that fails shows its error.)
SYSTEM_PIP_OK := import pip, sys; sys.exit(tuple(int(p) for p in pip.__version__.split(".")[:2]) < (22, 3))
define pip_install
if test -x $(VENV)/bin/pip; then $(PY) -m pip install $(PIP_FLAGS) $(1); \
elif $(PYTHON) -c '$(SYSTEM_PIP_OK)' 2>/dev/null; then $(PYTHON) -m pip --python $(PY) install $(PIP_FLAGS) $(1); \
else $(PY) -m ensurepip --default-pip >/dev/null && $(PY) -m pip install $(PIP_FLAGS) $(1); fi
endef
# uv's wheel for this machine, by its address and SHA-256 on PyPI (pip checks the hash): pip then reads no index
# page. uv's is 2.6 MB of JSON, which pip took 0.9 s of a 2.2 s install to read (measured). Where that address
# fails (another platform's wheel, musl, a network that reaches only a mirror), pip installs uv==$(UV_VERSION)
# through the configured index as before; other platforms go there directly. Change it with UV_VERSION (PyPI's
# page of the version lists each wheel's address and SHA-256).
UV_WHEEL_Linux-x86_64 := https://files.pythonhosted.org/packages/3d/aa/26d64642d808de4a652579ef950d7cd2d37f080a8babf9c67c6b75fc4c3f/uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl\#sha256=d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19
UV_WHEEL := $(UV_WHEEL_$(shell uname -sm | tr ' ' -))
get_uv = $(if $(UV_WHEEL),{ $(call pip_install,--retries 0 --timeout 10 "uv @ $(UV_WHEEL)") 2>/dev/null || { \
	$(call pip_install,uv==$(UV_VERSION)); }; },$(call pip_install,uv==$(UV_VERSION)))
# $(call install,ARGS): install ARGS (e.g. -r requirements.txt) into .venv, without dependencies of their own.
ifeq ($(UV),1)
# (an environment made before uv was used gets it the first time it installs anything)
install = { test -x $(VENV)/bin/uv || $(get_uv); } && $(VENV)/bin/uv pip install --python $(PY) --quiet --no-deps $(1)
else
install = $(call pip_install,--no-deps $(1))
endif

$(STAMP): requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv --without-pip $(VENV)
	$(call install,-r requirements.txt)
	touch $@

# What the render and site stages would compile on first use (Python's bytecode of Pillow, Jinja, mkdocs and
# the rest, in a fresh .venv; the page templates), compiled beside the training while numba's single-threaded
# compile leaves a core idle, at the lowest priority: generator/warm.py. Once per .venv.
BYTECODE_STAMP := $(VENV)/.bytecode-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
$(BYTECODE_STAMP): $(STAMP)
	nice -n 19 $(PY) -m generator.warm
	touch $@

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(call install,-r requirements-test.txt)
	touch $@

$(BUILD)/model.npz: $(STAMP) $(CONFIG) $(DATA) $(MODEL_SRC)
	$(ATLAS) train --config $(CONFIG)
	touch $@

$(BUILD)/atlas.json: $(BUILD)/model.npz $(ANALYSIS_SRC)
	$(ATLAS) analyze --config $(CONFIG)
	touch $@

# The atlases published as sections of this one (site.sections; atlas.toml's is the 784-1-2 network of the
# question, the tiny/ section): the same two stages, each in its own config's build directory.
# Two jobs at once: a section's training and analysis run beside the main atlas's analysis (about 8 s of a
# fresh make site on 2 cores). A section trains after the main network (the order-only prerequisite), so it
# loads numba's kernels from the cache the main training wrote instead of compiling them again at the same time.
define section_rules
$(call PATHS,$(1):build)/model.npz: $(STAMP) $(1) $(call PATHS,$(1):data) $(MODEL_SRC) | $(BUILD)/model.npz
	$(ATLAS) train --config $(1)
	touch $$@

$(call PATHS,$(1):build)/atlas.json: $(call PATHS,$(1):build)/model.npz $(ANALYSIS_SRC)
	$(ATLAS) analyze --config $(1)
	touch $$@
endef
$(foreach section,$(SECTIONS),$(eval $(call section_rules,$(section))))
SECTION_ATLASES := $(foreach section,$(SECTIONS),$(call PATHS,$(section):build)/atlas.json)
SECTION_DATA := $(foreach section,$(SECTIONS),$(call PATHS,$(section):data))

$(BUILD)/.rendered: $(BUILD)/atlas.json $(SECTION_ATLASES) $(RENDER_SRC) | $(BYTECODE_STAMP)
	$(ATLAS) render --config $(CONFIG)
	touch $@

$(BUILD)/.site: $(BUILD)/.rendered $(SITE_SRC)
	$(ATLAS) site --config $(CONFIG)
	touch $@

train: $(BUILD)/model.npz ## train the network (only if its inputs changed)
analyze: $(BUILD)/atlas.json ## compute the atlas's statistics into build/atlas.json
render: $(BUILD)/.rendered ## write Markdown and figures into build/docs
site: $(BUILD)/.site ## set up .venv, train, analyse, render and build site/ (all as needed)

test: $(TEST_STAMP) ## run the tests (first installs the test packages into .venv)
	$(PY) -m pytest -q tests

# OpenBLAS runs an older, slower kernel when OPENBLAS_CORETYPE is set (some machines set it for old
# OpenBLAS builds); the benchmark unsets it, for its own command only, so NumPy is timed at its best.
bench: $(STAMP) ## time an epoch: numba vs NumPy (and PyTorch CPU with TORCH=1) vs the FLOP limit
ifeq ($(TORCH),1)
	$(call pip_install,torch==2.13.0)
endif
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) bench/train_bench.py

bench-scale: $(STAMP) ## time each stage at 100, 300 and 1,000 hidden neurons (a few minutes)
	$(PY) bench/scale.py

bench-warm: $(STAMP) ## time a 3-epoch training, all caches warm, against an independent NumPy script of it
	$(PY) bench/warm_start.py

bench-fresh: ## time `make site` in a fresh clone of HEAD: set-up, cold compile, each stage (COLD_UV=1: empty uv cache)
	$(PYTHON) bench/fresh_clone.py $(if $(filter 1,$(COLD_UV)),--cold-uv)

serve: $(BUILD)/.site ## serve the built site on http://127.0.0.1:8000
	$(PY) -m http.server --bind 127.0.0.1 --directory $(SITE) 8000

# mkdocs gh-deploy rebuilds from the generated config into its own directory (site/ stays as it is) and
# pushes it to the gh-pages branch of origin. Set SITE_URL to the published address for canonical links.
deploy: $(BUILD)/.site ## publish to the gh-pages branch of origin (GitHub Pages: "Deploy from a branch")
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-315532800} NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs gh-deploy --strict \
	  --config-file $(BUILD)/mkdocs.yml --site-dir $(abspath $(BUILD))/gh-deploy --force --no-history \
	  --message "Deploy run $$($(PY) -c 'import json; print(json.load(open("$(BUILD)/atlas.json"))["model"]["run_id"])')"

model-inputs: ## list the files the trained models depend on (the Pages workflow caches them on these)
	@echo $(CONFIG) $(SECTIONS) $(sort $(DATA) $(SECTION_DATA)) $(MODEL_SRC) requirements.txt

lock: ## re-pin requirements.txt and requirements-test.txt from the .in files in a clean environment
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --disable-pip-version-check --quiet -r requirements.in
	.venv-lock/bin/pip freeze > .venv-lock/runtime.txt
	.venv-lock/bin/pip install --disable-pip-version-check --quiet -r requirements.in -r requirements-test.in
	.venv-lock/bin/pip freeze > .venv-lock/all.txt
	{ echo "# Every package \`make site\` installs, pinned (pip freeze of requirements.in in a clean venv)."; \
	  echo "# Regenerate: make lock"; cat .venv-lock/runtime.txt; } > requirements.txt
	{ echo "# What \`make test\` installs on top of requirements.txt, pinned (pip freeze of requirements.in and"; \
	  echo "# requirements-test.in in a clean venv, less requirements.txt). Regenerate: make lock"; \
	  grep -vxFf .venv-lock/runtime.txt .venv-lock/all.txt; } > requirements-test.txt
	rm -rf .venv-lock

clean: ## remove this config's build and site directories (build/ and site/ by default; keeps .venv)
	rm -rf $(BUILD) $(SITE) templates/__pycache__
