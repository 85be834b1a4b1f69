# aimachine: one playbook turns a GPU box into a verified private coding-model endpoint.
# Quick start: `make demo` (CPU, local container, tiny model) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INVENTORY ?= inventories/workstation
# Longest first: two run at a time (scripts/molecule-parallel.sh), so the lanes stay even.
SCENARIOS ?= gateway default debian13 resilience ray nvidia_driver
MOLECULE_JOBS ?= 2
# `make test`: the scenarios, the two pytest suites and the lint as jobs of the same two lanes,
# longest first (each job keeps about one core busy): the suites fill a lane beside a scenario
# instead of running before all of them, and never more than two jobs share the 2 cores.
# Measured 2026-12-03 on the loaded 2-core dev machine: gateway 872 s, resilience 353 s, ray 234 s,
# pytest tests 360 s (lab VM tests skipped there), lint 61 s; each job's time is printed in CI.
CI_JOBS ?= gateway default debian13 'pytest-roles=$(MAKE) -s pytest-roles' resilience ray \
	'pytest-scripts=$(MAKE) -s pytest-scripts' nvidia_driver 'lint=$(MAKE) -s lint'
# The pinned vLLM, installed into a throwaway venv only to check the rendered config's keys.
VLLM_VERSION := $(shell sed -n 's/^llm_server_vllm_version: "\(.*\)"/\1/p' roles/llm_server/defaults/main.yml)
VLLM_VENV ?= /var/tmp/aimachine-vllm-$(VLLM_VERSION)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help host-deps host-deps-demo setup lint pytest pytest-roles pytest-scripts vllm-venv images molecule test demo demo-destroy deploy check clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

host-deps: ## Install and start what the tests need on this machine (Debian packages, dockerd)
	scripts/bootstrap-host.sh test

host-deps-demo: ## The same for the demo only
	scripts/bootstrap-host.sh demo

$(BIN)/.stamp: requirements.txt scripts/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e scripts
	touch $@

setup: $(BIN)/.stamp ## Create .venv with the pinned controller toolchain

$(BIN)/.stamp-lab: requirements-lab.txt $(BIN)/.stamp
	$(BIN)/pip install -q -r requirements-lab.txt
	touch $@

lint: setup ## yamllint, ansible-lint (production profile), ruff
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(VLLM_VENV)/.stamp: roles/llm_server/defaults/main.yml | setup
	$(BIN)/uv venv -q --allow-existing --python $(PYTHON) $(VLLM_VENV)
	$(BIN)/uv pip install -q --python $(VLLM_VENV)/bin/python vllm==$(VLLM_VERSION)
	touch $@

vllm-venv: $(VLLM_VENV)/.stamp ## The pinned vLLM in a throwaway venv (its config-key check)

# Two processes: the roles' tests import Ansible, whose sys.intern patch breaks a later torch
# import in the same interpreter. They share no port (each server binds a free one) or directory.
pytest: pytest-roles pytest-scripts ## Unit and end-to-end tests of the Python and the roles' data

pytest-roles: setup $(BIN)/.stamp-lab vllm-venv ## The roles' and playbooks' tests (tests/)
	AIMACHINE_VLLM_PYTHON=$(VLLM_VENV)/bin/python $(BIN)/pytest tests --durations=15

pytest-scripts: setup ## The Python tools' tests (scripts/tests)
	$(BIN)/pytest scripts/tests --durations=15

images: ## Build the systemd base images for molecule (debootstrap; only when their recipe changed)
	molecule/images/build.sh bookworm trixie

molecule: setup images ## Molecule scenarios: converge, idempotence, check, verify
	MOLECULE=$(BIN)/molecule scripts/molecule-parallel.sh -j $(MOLECULE_JOBS) $(SCENARIOS)

test: host-deps setup $(BIN)/.stamp-lab vllm-venv images ## Everything CI runs: lint, pytest, molecule (one set of lanes)
	MOLECULE=$(BIN)/molecule scripts/molecule-parallel.sh -j $(MOLECULE_JOBS) $(CI_JOBS)

demo: host-deps-demo setup ## Deploy the whole appliance into a local systemd container (CPU, tiny model)
	molecule/images/build.sh bookworm
	$(BIN)/molecule create -s demo
	$(BIN)/molecule prepare -s demo --force
	$(BIN)/molecule converge -s demo
	@scripts/demo-summary.sh

demo-destroy: setup ## Remove the demo container (its reports/ and secrets/ stay; prints what is left)
	$(BIN)/molecule destroy -s demo
	@scripts/demo-summary.sh --destroyed

deploy: setup ## Deploy to INVENTORY (default inventories/workstation)
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml

check: setup ## Dry run against INVENTORY: what would change
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml --check --diff

clean: ## Remove the venv and caches (models and images are kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache
