# Two entry points a person needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build of torch by default; for CUDA: make setup TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench bench-gpu resources clean default-model population-model evaluate-model calibrate-quality \
	calibrate-quality-eval repeatability muscle-positions

setup: $(STAMP)

# torch stays the one installed first (a constraint): the peers' timm pulls torchvision, whose
# newest release would otherwise replace it with a newer torch (CUDA, several GB).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	echo "torch==$(TORCH_VERSION)" > $(VENV)/torch-constraint.txt
	$(PY) -m pip install -q -e ".[test,render,dicom,batch,web]" -c $(VENV)/torch-constraint.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/thighseg demo --out demo-output

# `make test` runs the whole suite against the venv's slicer-core (5.11.0.6: the line the web
# extra's trame-slicer pins, the oldest on PyPI), then the module's scene tests (marked mrml; not
# the slow subprocess ones) against each release of SLICER_CORE_OTHERS (the 5.12 stable line and
# the newest), each unpacked beside the venv and put first on PYTHONPATH (no other package
# changes; vtk pinned to what that release requires: vtk_for_<release>).
SLICER_CORE_OTHERS ?= 5.12.4.0 5.13.31053.0
vtk_for_5.12.4.0 := 9.6.0
vtk_for_5.13.31053.0 := 9.6.2
SCENE_TESTS := Testing/test_slicer_harness.py Testing/test_module_edits.py Testing/test_module_logic.py Testing/test_module_panel.py \
	Testing/test_module_setup.py Testing/test_resources.py

$(VENV)/slicer-core-%/.installed: $(STAMP)
	$(PY) -m pip install -q --no-deps --target $(VENV)/slicer-core-$* slicer-core==$* vtk==$(vtk_for_$*)
	touch $@

test: $(STAMP) $(foreach v,$(SLICER_CORE_OTHERS),$(VENV)/slicer-core-$(v)/.installed)
	$(PY) -m pytest -q
	for v in $(SLICER_CORE_OTHERS); do \
		PYTHONPATH=$(VENV)/slicer-core-$$v THIGHSEG_EXPECT_SLICER_CORE=$$v $(PY) -m pytest -q -p no:cacheprovider \
			-m "mrml and not slow" $(SCENE_TESTS) || exit 1; done

bench: $(STAMP)
	$(VENV)/bin/thighseg bench

# thighseg bench and bench --peers on CUDA in half precision, one JSON line (scripts/bench_gpu.sh:
# uses a python3 whose torch already sees the GPU, else makes .venv-gpu with the CUDA torch).
# make bench-gpu DEVICE=cpu runs the same path on the CPU with .venv (a 120-slice CT).
bench-gpu:
	DEVICE=$(if $(filter cpu,$(DEVICE)),cpu,cuda) scripts/bench_gpu.sh

resources: $(STAMP)
	$(PY) -m ThighMuscleSegLib.resources

clean:
	rm -rf $(VENV) demo-output .pytest_cache

# Reproduces the bundled model (Resources/Models/MODEL_CARD.md). Stages 1-4 learned the one
# template body (generator 1.0, --population template; 40 phantoms, seeds 1000-1039): 14
# epochs at lr 1e-3, 12 at 3e-4, 8 at 1e-4 without the scan-edge augmentation, 10 at 1e-4 with
# it (about 3 hours on 2 CPU cores). Stage 5, the default since generator 2.0, fine-tunes
# stage 4 on 72 phantoms of the adult population, none from a held-out region (seeds from
# 20000 and 30000, --select train), with the anisotropic and elastic slice augmentation:
# 26 epochs, cosine lr 3e-4 -> 2e-5 (about 80 minutes on 2 CPU cores).
# On a GPU: make default-model DEVICE=cuda (scripts/train_gpu.sh makes data and trains there).
DATA ?= data
DEVICE ?= auto
LEGACY := --population template
default-model: $(STAMP)
	$(VENV)/bin/thighseg phantom $(DATA)/train_a --cases 20 --seed 1000 $(LEGACY)
	$(VENV)/bin/thighseg phantom $(DATA)/train_b --cases 20 --seed 1020 $(LEGACY)
	$(VENV)/bin/thighseg train $(DATA)/train_a $(DATA)/train_b --out $(DATA)/stage1.tmsmodel --device $(DEVICE) \
		--arch 2.5d --epochs 14 --lr 1e-3 --steps-per-view 150 --val-fraction 0.1 --seed 7 --edge-cut 0
	$(VENV)/bin/thighseg train $(DATA)/train_a $(DATA)/train_b --out $(DATA)/stage2.tmsmodel --device $(DEVICE) \
		--init $(DATA)/stage1.tmsmodel --arch 2.5d --epochs 12 --lr 3e-4 --steps-per-view 150 --val-fraction 0.1 --seed 7 --edge-cut 0
	$(VENV)/bin/thighseg train $(DATA)/train_a $(DATA)/train_b --out $(DATA)/stage3.tmsmodel --device $(DEVICE) \
		--init $(DATA)/stage2.tmsmodel --arch 2.5d --epochs 8 --lr 1e-4 --steps-per-view 150 --val-fraction 0.1 --seed 7 --edge-cut 0
	$(VENV)/bin/thighseg train $(DATA)/train_a $(DATA)/train_b --out $(DATA)/stage4.tmsmodel --device $(DEVICE) \
		--init $(DATA)/stage3.tmsmodel --arch 2.5d --epochs 10 --lr 1e-4 --steps-per-view 150 --val-fraction 0.1 --seed 7
	$(MAKE) population-model INIT=$(DATA)/stage4.tmsmodel

# Stage 5 alone, from any stage-4 model (the previous bundled one by default).
INIT ?= $(DATA)/stage4.tmsmodel
population-model: $(STAMP)
	$(VENV)/bin/thighseg phantom $(DATA)/pop_train_a --cases 36 --seed 20000 --select train
	$(VENV)/bin/thighseg phantom $(DATA)/pop_train_b --cases 36 --seed 30000 --select train
	$(VENV)/bin/thighseg train $(DATA)/pop_train_a $(DATA)/pop_train_b --out $(DATA)/thighseg-2.5d-phantom.tmsmodel \
		--init $(INIT) --arch 2.5d --epochs 26 --lr 3e-4 --lr-final 2e-5 --steps-per-view 150 --val-fraction 0.1 \
		--seed 11 --device $(DEVICE) --resume

# Scores a model where it has not been trained: 10 phantoms of unseen seeds of the adult
# population (outside the held-out regions), 3 phantoms of each held-out region of the
# population (most muscular / most atrophic tenth, thickest septa, thinnest fat), and 10
# phantoms of the one template body (generator 1.0, seeds 5000-5009, as scored before); each
# over the whole CT and inside the analysed fields. Then the quality flag's ROC on them.
# About 22 minutes on the shared 2-core CPU (2026-12-04: phantoms, segmentation and scores 15,
# calibrate-quality-eval 7).
MODEL ?= Resources/Models/thighseg-2.5d-phantom.tmsmodel
TEST_SEED ?= 5000
EVAL := $(DATA)/eval
REGIONS := most_muscular most_atrophic thickest_septa thinnest_fat
SETS := unseen template $(addprefix holdout-,$(REGIONS))
evaluate-model: $(STAMP)
	$(VENV)/bin/thighseg phantom $(EVAL)/unseen/cases --cases 10 --seed 50000 --select train
	$(VENV)/bin/thighseg phantom $(EVAL)/template/cases --cases 10 --seed $(TEST_SEED) $(LEGACY)
	for r in $(REGIONS); do $(VENV)/bin/thighseg phantom $(EVAL)/holdout-$$r/cases --cases 3 --seed 60000 --select $$r; done
	for s in $(SETS); do for c in $(EVAL)/$$s/cases/case_*; do \
		$(VENV)/bin/thighseg segment $$c/ct.nii.gz --out $(EVAL)/$$s/pred/$$(basename $$c) --model $(MODEL) --overwrite --device $(DEVICE); done; done
	for s in $(SETS); do echo "== $$s: whole CT"; $(VENV)/bin/thighseg evaluate $(EVAL)/$$s/pred $(EVAL)/$$s/cases --out $(EVAL)/$$s/evaluation | grep "^| all"; \
		echo "== $$s: inside the fields"; $(VENV)/bin/thighseg evaluate $(EVAL)/$$s/pred $(EVAL)/$$s/cases --scope field --out $(EVAL)/$$s/evaluation-field | grep "^| all"; done
	$(MAKE) calibrate-quality-eval

# Where each muscle lies around the femur and beside each other one in other bodies (the quality flag's position prior,
# ThighMuscleSegLib/quality_positions.py), from the ground truth of phantoms used by nothing
# else: 12 bodies of the adult population (seeds 90000-90011) and 4 of the template body
# (seeds 9000-9003). Installs ThighMuscleSegLib/data/muscle_positions.json; run
# calibrate-quality after it.
POSITIONS := $(DATA)/muscle-positions
muscle-positions: $(STAMP)
	test -d $(POSITIONS)/population || $(VENV)/bin/thighseg phantom $(POSITIONS)/population --cases 12 --seed 90000
	test -d $(POSITIONS)/template || $(VENV)/bin/thighseg phantom $(POSITIONS)/template --cases 4 --seed 9000 $(LEGACY)
	$(PY) -m ThighMuscleSegLib.quality_positions $(POSITIONS)/population $(POSITIONS)/template \
		--out $(POSITIONS)/muscle_positions.json --install

# Calibrates the per-muscle quality flag (docs/quality.md) for MODEL on held-out phantoms used
# by nothing else: 16 of the adult population (seeds 70000-70015) and 8 of the one template
# body (generator 1.0, seeds 7000-7007: single muscles atrophied on one side, so that a real
# asymmetry is not taken for a failure). Each is segmented, 3 deliberately damaged copies of
# each thigh's prediction are added as extra failures, the logistic score is fitted and its
# threshold chosen on leave-one-case-out confidences, and the result is installed as
# ThighMuscleSegLib/data/quality_calibration.json (commit it with the model). ROC (roc.png,
# roc.json), summary.md and samples.csv go to $(QUALITY)/calibration. About 10 minutes on the
# shared 2-core CPU, phantoms included (2026-12-04).
QUALITY_SEED ?= 70000
QUALITY_CASES ?= 16
QUALITY_TEMPLATE_SEED ?= 7000
QUALITY_TEMPLATE_CASES ?= 8
QUALITY := $(DATA)/quality-$(QUALITY_SEED)
calibrate-quality: $(STAMP)
	test -d $(QUALITY)/cases || $(VENV)/bin/thighseg phantom $(QUALITY)/cases --cases $(QUALITY_CASES) --seed $(QUALITY_SEED)
	test -d $(QUALITY)/template || $(VENV)/bin/thighseg phantom $(QUALITY)/template --cases $(QUALITY_TEMPLATE_CASES) \
		--seed $(QUALITY_TEMPLATE_SEED) $(LEGACY)
	$(VENV)/bin/thighseg calibrate-quality $(QUALITY)/cases $(QUALITY)/template --model $(MODEL) --damage-per-thigh 3 \
		--seed 0 --device $(or $(DEVICE),auto) --out $(QUALITY)/calibration --install

# The installed quality flag scored, not refitted, on the phantoms evaluate-model made
# ($(DATA)/eval/*/cases): ROC, AUROC, sensitivity and false alarms at its threshold.
QUALITY_EVAL ?= $(wildcard $(DATA)/eval/*/cases)
calibrate-quality-eval: $(STAMP)
	$(VENV)/bin/thighseg calibrate-quality $(QUALITY_EVAL) --model $(MODEL) --damage-per-thigh 3 --seed 1 \
		--device $(or $(DEVICE),auto) --evaluate --out $(DATA)/eval/quality

# Each muscle's smallest detectable change (docs/repeatability.md), what `thighseg change`
# marks changes against: REPEAT_BODIES phantom bodies of the adult population (--select train,
# seeds from 80000, used by nothing else), each scanned twice (thighseg phantom --rescan),
# segmented with MODEL and compared; installs ThighMuscleSegLib/data/repeatability.json and
# docs/repeatability.md (commit them with the model). 24 bodies: 33 minutes on the shared 2-core CPU (2026-12-03, beside other runs).
REPEAT_SEED ?= 80000
REPEAT_BODIES ?= 24
repeatability: $(STAMP)
	$(PY) -m ThighMuscleSegLib.measure.repeatability_run --out $(DATA)/repeatability-$(REPEAT_SEED) \
		--seed $(REPEAT_SEED) --bodies $(REPEAT_BODIES) --model $(MODEL) --device $(DEVICE) --install
