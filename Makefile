# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each creates (or refreshes, when pyproject.toml changes) the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
COMMA := ,

.PHONY: run test test-slow test-collect test-ray bench clean

# $(call install_venv,<folder>,<extras>): one environment with the project and its pinned tools.
define install_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q torch==2.13.0
	$(1)/bin/python -m pip install -q -e ".[$(2)]"
	# auto_LiRPA 0.3 declares torch<1.13 but works on torch 2.13 with verifiers/lirpa_compat.py.
	$(1)/bin/python -m pip install -q --no-deps "auto_LiRPA==0.3"
	touch $(1)/.installed
endef

$(STAMP): pyproject.toml
	$(call install_venv,$(VENV),dev$(COMMA)launchers)

run: $(STAMP)
	$(PY) -m vpals_jax.train

test: $(STAMP)
	$(PY) -m pytest -q -n 2

# The README's slow commands (paper sweeps, certified experiments, benchmarks) and a wheel install:
# minutes each, left out of `make test`.
test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "slow and not services"

# The collector against the real tools (tests marked `services`, left out of `make test`).
# As root on Debian/Ubuntu: installs the servers, their benchmark clients and stress-ng.
test-collect: $(STAMP)
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y stress-ng redis-server redis-tools nginx wrk mariadb-server sysbench
	$(PY) -m pytest -q -m services tests/collect

# hydra/launcher=ray: a two-job sweep on a local Ray cluster, in an environment of its own,
# .venv-ray (the ray extra needs joblib<1.6, which .venv does not have: see pyproject.toml).
RAY_VENV := .venv-ray
RAY_PY := $(RAY_VENV)/bin/python
RAY_STAMP := $(RAY_VENV)/.installed

$(RAY_STAMP): pyproject.toml
	$(call install_venv,$(RAY_VENV),dev$(COMMA)launchers$(COMMA)ray)

test-ray: $(RAY_STAMP)
	$(RAY_PY) -m pytest -m ray tests/test_ray_launcher.py -p no:cacheprovider -q

clean:
	rm -rf $(VENV) $(RAY_VENV) outputs multirun
