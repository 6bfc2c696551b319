# The two set-up commands (see README): `make demo` and `make test`. Both work on a fresh
# machine with Python >= 3.10, a C compiler, Node >= 18 and npm: they create .venv, build the
# compiled core, and install the Node test peers themselves.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: venv install peers demo test lint typecheck bench asan clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

venv: $(VENV)/.created

# Build and install fastsio (compiles _ext/ through pip's isolated build) with test deps.
install: venv
	$(PIP) install -q ".[test]"

peers:
	cd tests/peers && npm ci --no-audit --no-fund --loglevel=error

# Main job on an embedded default: a local firehose server streamed through fastsio.
demo: install
	$(VENV)/bin/fastsio bench

lint: install
	$(VENV)/bin/ruff check fastsio tests benchmarks
	$(VENV)/bin/ruff format --check fastsio

typecheck: install
	$(VENV)/bin/mypy

test: install peers
	$(VENV)/bin/ruff check fastsio tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -p no:randomly

bench: install peers
	$(PY) benchmarks/run.py

# The codec and fuzz tests against an AddressSanitizer/UBSan build of the extension.
asan: venv peers
	FASTSIO_SANITIZE=address,undefined $(PIP) install -q --no-build-isolation --force-reinstall --no-deps .
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD=$$(gcc -print-file-name=libasan.so) \
		$(VENV)/bin/pytest -q tests/unit
	$(PIP) install -q --force-reinstall --no-deps .

clean:
	rm -rf build dist *.egg-info $(VENV) tests/peers/node_modules
