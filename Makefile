# The two commands of the README do all the set-up themselves:
#   make demo   -> installs into .venv (CPU torch, pinned versions) and runs the main job
#   make test   -> installs into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deltahub-installed

.PHONY: install browser demo demo-quick lint docs test test-vllm bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: a CPU wheel; an unpinned torch would pull several GB of CUDA packages
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,eval]"
	touch $(STAMP)

# The web pages' tests drive the distribution's headless Chromium (tests/test_web.py): installed here when
# missing and apt-get can (root); anywhere else those tests skip and say why.
browser:
	@if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium + chromium-driver for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver fonts-liberation >/dev/null) || echo "could not install chromium: browser tests will skip"; \
	fi

install: $(STAMP) browser

demo: $(STAMP)
	$(VENV)/bin/deltahub demo

demo-quick: $(STAMP)
	$(VENV)/bin/deltahub demo --quick

# the linter and the formatter's check (ruff settings in pyproject.toml); part of `make test`, so CI runs them
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the manual (docs/, mkdocs.yml): a strict build, so a broken link or anchor fails `make test` (not --quiet:
# it hides the warnings that --strict counts)
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

test: $(STAMP) browser lint docs
	$(PY) -m pytest -q $(PYTEST_ARGS)

# vLLM's CPU build pins an older transformers: its tests run in their own environment (.venv-vllm)
test-vllm:
	bash scripts/test-vllm.sh

bench: $(STAMP)
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
