# The two front-door commands (see README):  make demo   |   make test
# Each creates .venv and installs dilaserve into it when needed.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TEST_STAMP := $(VENV)/.installed-test-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test test-quick setup lint gpu-check gpu-wheels

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# the tests also run the Triton kernels in triton's CPU interpreter
$(TEST_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,kernels]'
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/dilaserve demo

test: $(TEST_STAMP)
	$(VENV)/bin/python -m pytest -q

# everything but the tests that start a process, Ray or a server (about a minute)
test-quick: $(TEST_STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The GPU path measured in one command (docs/gpu-check.md): on a CUDA machine the LLaDA-8B shape,
# its step-cost profiles written to worker/models/profiles_published/llada-8b/; here (no CUDA) a
# tiny shape on CPU in seconds, written to runs/gpu-check/. A GPU machine has no .venv and no
# package registry: there it runs that machine's python3 from the source tree, after installing
# the wheels `make gpu-wheels` saved in .whl/ (git-ignored) into $(GPU_SITE) when the worker's
# packages do not import there as they are.
GPU_PYTHON ?= $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3)
GPU_SITE ?= /tmp/site
GPU_CHECK_ARGS ?=
# what the worker needs that such a machine lacks (pydantic, grpc health and reflection) or may
# have too old for the generated proto code (grpcio, protobuf): the versions pyproject.toml pins
# (protobuf and pydantic's own needs: those the venv has)
GPU_WHEELS := grpcio==1.85.1 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 \
	protobuf==7.36.2 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
	typing-inspection==0.4.5 typing-extensions==4.16.0

gpu-check:
	@if [ -d .whl ] && ! PYTHONPATH=$(CURDIR) $(GPU_PYTHON) -c \
	    'import dilaserve.policy, worker.client' 2>/dev/null; then \
	  $(GPU_PYTHON) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
	    --upgrade --target $(GPU_SITE) .whl/*.whl || exit 1; \
	  export PYTHONPATH=$(GPU_SITE)$${PYTHONPATH:+:$$PYTHONPATH}; \
	fi; \
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} PYTHONUNBUFFERED=1 \
	  $(GPU_PYTHON) -m dilaserve.cli.main gpu-check $(GPU_CHECK_ARGS)

# run here, where pip reaches the registry: the wheels for the GPU machine (CPython 3.12, x86-64)
gpu-wheels:
	rm -rf .whl && $(GPU_PYTHON) -m pip download --quiet --no-deps --only-binary=:all: \
	  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
	  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $(GPU_WHEELS)
	@ls .whl
