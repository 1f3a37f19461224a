# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each creates (or refreshes, when pyproject.toml changes) the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-slow test-collect test-ray bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,launchers]"
	# auto_LiRPA 0.3 declares torch<1.13 but works on torch 2.13 with verifiers/lirpa_compat.py.
	$(PY) -m pip install -q --no-deps "auto_LiRPA==0.3"
	touch $(STAMP)

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
	$(PYTHON) -m venv $(RAY_VENV)
	$(RAY_PY) -m pip install -q --upgrade pip
	$(RAY_PY) -m pip install -q torch==2.13.0
	$(RAY_PY) -m pip install -q -e ".[dev,launchers,ray]"
	$(RAY_PY) -m pip install -q --no-deps "auto_LiRPA==0.3"
	touch $(RAY_STAMP)

test-ray: $(RAY_STAMP)
	$(RAY_PY) -m pytest -m ray tests/test_ray_launcher.py -p no:cacheprovider -q

clean:
	rm -rf $(VENV) $(RAY_VENV) outputs multirun
