# sparkfleet.trtllm: one place for the commands the README promises.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
LAB_HOSTS ?= 2

.PHONY: help deps venv lab-up lab-down site demo test unit sanity lint lab-test molecule lab-suites build changelog-lint clean

help:
	@echo "make demo      - bring up the lab ($(LAB_HOSTS) simulated Sparks) and run site.yml against it"
	@echo "make test      - run every test (unit, sanity, lint, lab, molecule)"
	@echo "make lab-up | lab-down | site | unit | sanity | lint | lab-test | molecule | build"

deps:
	tools/install-deps.sh

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed

lab-up: deps venv
	lab/lab up $(LAB_HOSTS)

lab-down:
	lab/lab down

site: venv
	$(VENV)/bin/ansible-playbook -i inventory/lab/hosts.yml site.yml -e @lab/demo-vars.yml

# README command 1
demo: lab-up site

unit: venv
	$(PY) -m pytest -q tests/unit

sanity: venv
	tools/sanity.sh

lint: venv
	$(VENV)/bin/ansible-lint --profile production

changelog-lint: venv
	$(VENV)/bin/antsibull-changelog lint

# Tests marked pending are skipped with their reason (-rs lists them); RUN_PENDING=1 make lab-test runs them too.
lab-test: venv
	$(PY) -m pytest -q -rs tests/integration

molecule: venv
	tools/molecule.sh

build: venv
	tools/build_and_install.sh

# README command 2
# The lab tests and the molecule scenarios run side by side (tools/lab-suites.sh; LAB_SUITES_SERIAL=1 for one
# after the other).
lab-suites: venv
	tools/lab-suites.sh

test: deps unit sanity lint changelog-lint build lab-suites

clean: lab-down
	rm -rf $(VENV) .cache
