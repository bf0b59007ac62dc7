# Two entry points a person needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build of torch by default; for CUDA: make setup TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench resources clean default-model evaluate-model

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[test,render,dicom]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/thighseg demo --out demo-output

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/thighseg bench

resources: $(STAMP)
	$(PY) -m ThighMuscleSegLib.resources

clean:
	rm -rf $(VENV) demo-output .pytest_cache

# Reproduces the bundled model (Resources/Models/MODEL_CARD.md): 40 training phantoms
# (seeds 1000-1039), 14 epochs of the 2.5D model at lr 1e-3, then 12 more at lr 3e-4 and 8
# at lr 1e-4 (each stage fine-tuning the one before; the first three without the scan-edge
# augmentation, as they were trained before it existed), then 10 at lr 1e-4 with it;
# about 3 hours on 2 CPU cores.
DATA ?= data
default-model: $(STAMP)
	$(VENV)/bin/thighseg phantom $(DATA)/train_a --cases 20 --seed 1000
	$(VENV)/bin/thighseg phantom $(DATA)/train_b --cases 20 --seed 1020
	$(VENV)/bin/thighseg train $(DATA)/train_a $(DATA)/train_b --out $(DATA)/stage1.tmsmodel \
		--arch 2.5d --epochs 14 --lr 1e-3 --steps-per-view 150 --val-fraction 0.1 --seed 7 --edge-cut 0
	$(VENV)/bin/thighseg train $(DATA)/train_a $(DATA)/train_b --out $(DATA)/stage2.tmsmodel \
		--init $(DATA)/stage1.tmsmodel --arch 2.5d --epochs 12 --lr 3e-4 --steps-per-view 150 --val-fraction 0.1 --seed 7 --edge-cut 0
	$(VENV)/bin/thighseg train $(DATA)/train_a $(DATA)/train_b --out $(DATA)/stage3.tmsmodel \
		--init $(DATA)/stage2.tmsmodel --arch 2.5d --epochs 8 --lr 1e-4 --steps-per-view 150 --val-fraction 0.1 --seed 7 --edge-cut 0
	$(VENV)/bin/thighseg train $(DATA)/train_a $(DATA)/train_b --out $(DATA)/thighseg-2.5d-phantom.tmsmodel \
		--init $(DATA)/stage3.tmsmodel --arch 2.5d --epochs 10 --lr 1e-4 --steps-per-view 150 --val-fraction 0.1 --seed 7

# Scores a model on 10 phantoms from seeds never used in training (5000-5009; the card's
# second check: TEST_SEED=6000).
MODEL ?= Resources/Models/thighseg-2.5d-phantom.tmsmodel
TEST_SEED ?= 5000
TEST := $(DATA)/test-$(TEST_SEED)
evaluate-model: $(STAMP)
	$(VENV)/bin/thighseg phantom $(TEST)/cases --cases 10 --seed $(TEST_SEED)
	for c in $(TEST)/cases/case_*; do $(VENV)/bin/thighseg segment $$c/ct.nii.gz --out $(TEST)/pred/$$(basename $$c) --model $(MODEL) --overwrite; done
	$(VENV)/bin/thighseg evaluate $(TEST)/pred $(TEST)/cases --out $(TEST)/evaluation
	$(VENV)/bin/thighseg evaluate $(TEST)/pred $(TEST)/cases --scope field --out $(TEST)/evaluation-field
