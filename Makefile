# The two front-door commands (see README):  make demo   |   make test
# Each creates .venv and installs dilaserve into it when needed.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TEST_STAMP := $(VENV)/.installed-test-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test test-quick setup lint

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
