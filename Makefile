# The two set-up commands (see README): `make demo` and `make test`. Both work on a fresh
# machine with Python >= 3.10, a C compiler, Node >= 18 and npm: they create .venv, build the
# compiled core, and install the Node test peers themselves.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: venv install peers demo test lint typecheck bench bench-check bench-baseline asan dist-check docs clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

venv: $(VENV)/.created

# Build and install fastsio (compiles _ext/ through pip's isolated build) with test deps; the
# targets below that need more tools ask for more extras (one pip install, one compile).
EXTRAS ?= test
install: venv
	$(PIP) install -q ".[$(EXTRAS)]"
test dist-check docs: EXTRAS = test,dist,docs

peers:
	cd tests/peers && npm ci --no-audit --no-fund --loglevel=error

# Main job on an embedded default: a local firehose server streamed through fastsio.
demo: install
	$(VENV)/bin/fastsio bench

lint: install
	$(VENV)/bin/ruff check fastsio tests benchmarks docs
	$(VENV)/bin/ruff format --check fastsio

typecheck: install
	$(VENV)/bin/mypy

test: install peers dist-check docs
	$(VENV)/bin/ruff check fastsio tests benchmarks docs
	$(VENV)/bin/ruff format --check fastsio
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -p no:randomly

# The packaging test: sdist and manylinux wheel into dist/, each installed in a fresh venv and
# run (tests/packaging/check_dist.py says what it checks).
dist-check: install
	$(PY) tests/packaging/check_dist.py

# The documentation site into site/; strict, so a broken link or reference, a missing README
# section or an undocumented public name fails (docs/hooks.py).
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: install peers
	$(PIP) install -q ".[bench]"
	$(PY) benchmarks/run.py

# Noise-free regression guard: instructions per packet of the codec and dispatch hot paths
# (valgrind's callgrind) against benchmarks/results/instructions.json; fails on > 5% growth.
# bench-baseline rewrites that file: commit it with the change that deliberately moved it.
bench-check: install
	$(PY) benchmarks/instructions.py --check

bench-baseline: install
	$(PY) benchmarks/instructions.py --update

# The codec and fuzz tests against an AddressSanitizer/UBSan build of the extension, in a venv
# of its own (.venv-asan) so that the normal build is never replaced by the instrumented one.
ASAN_VENV := .venv-asan
asan:
	$(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/pip install -q --upgrade pip
	FASTSIO_SANITIZE=address,undefined $(ASAN_VENV)/bin/pip install -q --no-cache-dir --force-reinstall ".[test]"
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
		$(ASAN_VENV)/bin/pytest -q -p no:cacheprovider tests/unit tests/faults/test_hostile_server.py

clean:
	rm -rf build build-sanitize dist site *.egg-info $(VENV) $(ASAN_VENV) tests/peers/node_modules
