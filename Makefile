# The two commands of the README:
#   make demo   set up, then train + evaluate Mask R-CNN and Semantic FPN on the bundled data
#   make test   set up, then lint (ruff check + ruff format --check) and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# pytest-xdist workers for `make test`: one per core, at most 4 (each worker imports torch and the
# OpenMMLab stack and starts training subprocesses; tests/conftest.py shares the cores' threads).
JOBS ?= $(shell n=$$(nproc); echo $$(( n < 4 ? n : 4 )))
export MMATTN_VENV := $(abspath $(VENV))

.PHONY: setup data demo test lint
setup:
	@bash tools/setup_env.sh

data: setup
	@$(PY) tools/dataset_converters/make_shapes.py --root data

demo: data
	@bash tools/demo.sh $(PY)

lint: setup
	@$(PY) -m ruff check mmattn tools tests configs
	@$(PY) -m ruff format --check mmattn tools tests configs

test: lint data
	@$(PY) -m pytest -n $(JOBS) --dist worksteal tests
