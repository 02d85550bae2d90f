# The two quick-start commands (see README.rst). Both install what is missing first and are safe to rerun.
VENV ?= .venv
PY = $(VENV)/bin/python

.PHONY: demo test bootstrap bench

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	$(PY) examples/demo.py

test: bootstrap
	$(PY) -m pytest

bench: bootstrap
	$(PY) bench/bench_segment.py
