# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all lint bench demo train clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The exact pin takes the local CPU wheel; a looser spec would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

# The default run: every correctness test (slow-marked tests, if any, run with `make test-all`).
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(VENV)/bin/moc bench attention --out runs/bench

# The main job: the shipped checkpoint generates the shipped 8-shot example scene (with revisits) and writes
# the video, the contact sheet and the routing map that shows which other shots each shot retrieved.
demo: $(STAMP)
	$(VENV)/bin/moc generate --script src/moc/world/examples/the_return.toml --out runs/demo
	@echo "demo outputs in runs/demo: scene.mp4, scene.gif, contact_sheet.png, routing_map.png, summary.json"

# Reproduce the shipped checkpoint (thirty stages, about 45 + 30 + 60 + 40 + 30 + 30 + 30 + 20 + 20 + 50 min
# on one core, then about 40 + 20 + 65 + 20 + 80 + 40 + 45 + 75 + 51 + 30 + 53 + 51 + 40 + 46 min on two and 58 + 44 on one, then 31 + 21 + 20 + 25 on two): MoC for stages 1-4, dense for stages
# 6-10, then MoC fine-tuned from the dense weights with half-frame chunks and routed captions (stage 11), as the
# paper trains dense and then sparsifies, a pixel decoder trained on the frozen stage-11 model (stage 12), the
# whole model trained on stage 12's noise levels (stage 13), self-conditioning (stage 14), sprites weighed over
# their boxes (stage 15), told looks (stage 16), the auxiliary shape loss (stages 17-19) and told paint (stages
# 20-21), told scenery (stage 22), a frame refiner trained on the frozen stage-22 model (stage 23), some
# places left untold (stage 24), rollout steps (stage 25), deeper rollouts (stage 26), low noise levels weighted up (stage 27), a pseudo-Huber term in the pixel error (stage 28), a frame cleaner trained on the frozen stage-28 model's final estimates (stage 29), trained longer (stage 30) and on estimates from higher up the grid (stage 31). Stage 5 and the MoC stages 6-10 were experiments the chain skips
# (docs/training.md). Stages 15-31 keep the run names they were measured under (runs/box_weight ...
# runs/cleaner_high). Then
# cp runs/cleaner_high/model.safetensors src/moc/checkpoints/default.safetensors
train: $(STAMP)
	$(VENV)/bin/moc train configs/default.toml
	$(VENV)/bin/moc train configs/default_stage2.toml
	$(VENV)/bin/moc train configs/default_stage3.toml
	$(VENV)/bin/moc train configs/default_stage4.toml
	$(VENV)/bin/moc train configs/dense_stage6.toml
	$(VENV)/bin/moc train configs/dense_stage7.toml
	$(VENV)/bin/moc train configs/dense_stage8.toml
	$(VENV)/bin/moc train configs/dense_stage9.toml
	$(VENV)/bin/moc train configs/dense_stage10.toml
	$(VENV)/bin/moc train configs/default_stage11.toml
	$(VENV)/bin/moc train configs/default_stage12.toml
	$(VENV)/bin/moc train configs/default_stage13.toml
	$(VENV)/bin/moc train configs/default_stage14.toml
	$(VENV)/bin/moc train configs/default_stage15.toml
	$(VENV)/bin/moc train configs/default_stage16.toml
	$(VENV)/bin/moc train configs/default_stage17.toml
	$(VENV)/bin/moc train configs/default_stage18.toml
	$(VENV)/bin/moc train configs/default_stage19.toml
	$(VENV)/bin/moc train configs/default_stage20.toml
	$(VENV)/bin/moc train configs/default_stage21.toml
	$(VENV)/bin/moc train configs/default_stage22.toml
	$(VENV)/bin/moc train configs/default_stage23.toml
	$(VENV)/bin/moc train configs/default_stage24.toml
	$(VENV)/bin/moc train configs/default_stage25.toml
	$(VENV)/bin/moc train configs/default_stage26.toml
	$(VENV)/bin/moc train configs/default_stage27.toml
	$(VENV)/bin/moc train configs/default_stage28.toml
	$(VENV)/bin/moc train configs/default_stage29.toml
	$(VENV)/bin/moc train configs/default_stage30.toml
	$(VENV)/bin/moc train configs/default_stage31.toml

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
