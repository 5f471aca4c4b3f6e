# The README's commands. Each target creates .venv when missing and installs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check reliability clean

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pipelines.demo --output_dir=demo_output

# Every test (what CI runs), in two processes (pytest-xdist; a module's tests
# stay in one process, so its fixtures are built once).
test: $(STAMP)
	TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -n 2 --dist=loadfile tests

# The fast tests, the loop while editing: all but those marked `slow`
# (subprocesses, clusters, kill-and-resume, whole benchmarks, > ~3 s).
check: $(STAMP)
	TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -n 2 --dist=loadfile -m "not slow" tests

# The fault suite alone (tests marked `reliability`; `make test` runs them too).
reliability: $(STAMP)
	TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -m reliability tests

clean:
	rm -rf demo_output runs .pytest_cache
