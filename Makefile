# `make demo` and `make test` each build .venv on first use (torch CPU wheel, ROS 2 wheels, this package).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: all venv test lint demo params gpu-check clean

all: test

$(STAMP): requirements.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/psfusion-demo --out demo_out

# On a CUDA machine: versions, TensorRT fp16/fp32 programs, accuracy and timings in one report.
gpu-check: $(STAMP)
	$(BIN)/psfusion-export --self-check --json gpu_check.json

# Regenerate config/psfusion.yaml from the parameter table (the README table: see test/pipeline/test_parameters.py).
params: $(STAMP)
	$(BIN)/python -m psfusion_ros.pipeline.parameters yaml > config/psfusion.yaml

clean:
	rm -rf $(VENV) demo_out build install log *.egg-info
