# Container targets, included from the Makefile (after its variables: VENV, PY, setup).
# Docker where a daemon answers, else podman (AIMI_ENGINE=docker|podman overrides); containers/build-images.sh --help.
HADOLINT_FILES := Dockerfile.base containers/model.Dockerfile.in $(wildcard models/*/Dockerfile)

.PHONY: images container-test compose-check hadolint

# The base image and every model image with the Zenodo weights (each checked against its manifest's sha256).
images:
	containers/build-images.sh

# One model image (and its cached base): make image-bamf_nnunet_ct_kidney. Tiny test weights: make image-NAME TEST=1
image-%:
	containers/build-images.sh $(if $(TEST),--test-weights) $*

# CI's check (root, no Docker engine, no registry): podman, a local stand-in for the CUDA base, every image with tiny
# test weights, then each container run as a user would run it (tests/containers).
container-test: setup
	containers/container-test.sh

# docker-compose 1.29 validates the file offline, GPU reservations included.
compose-check:
	@command -v docker-compose >/dev/null || (apt-get update -qq && apt-get install -y -qq docker-compose)
	docker-compose -f docker-compose.yml config -q

hadolint: setup
	$(VENV)/bin/hadolint --failure-threshold error $(HADOLINT_FILES)
