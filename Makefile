# Two commands do everything: `make demo` (set up + run the benchmark on bundled data) and
# `make test` (set up + run the whole test suite, notebook included). Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tivit-installed

.PHONY: demo test install kernels clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[data,dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job, offline: a tiny RANDOM-WEIGHTS ViT (labelled as such in every output) and MiniRocket
# on three bundled UCR datasets. Swap --weights random for pretrained once the weights are cached.
# --resume: a second `make demo` reuses the finished run and prints its table again.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/tivit bench --datasets GunPoint,Coffee,ArrowHead \
		--encoder vit_small_patch16_224 --encoder-args img_size=64,depth=6 --weights random \
		--baselines minirocket --out demo-out --resume

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n 2 --durations=15 tests

clean:
	rm -rf $(VENV) build dist *.egg-info demo-out
