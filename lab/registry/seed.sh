#!/bin/sh
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
# Push the TensorRT-LLM stand-in into a lab registry under NVIDIA's repository name:
#   <registry>/nvidia/tensorrt-llm/release:spark-single-gpu-dev   the stand-in as built
#   <registry>/nvidia/tensorrt-llm/release:1.2.0rc6               a distinct, newer image
#                                                                 (ENV TRTLLM_STANDIN_VERSION=1.2.0rc6)
#   <registry>/nvidia/tensorrt-llm/release:lab-crash-on-load      a stand-in whose server exits while loading
#                                                                 (ENV TRTLLM_STANDIN_CRASH_WHILE_LOADING=1)
# usage: lab/registry/seed.sh [REGISTRY] [SOURCE_IMAGE]
#   REGISTRY      default 127.0.0.1:${LAB_REGISTRY_PORT:-5000} (loopback registries are insecure-by-default
#                 for dockerd, so no TLS is needed to push from this machine)
#   SOURCE_IMAGE  default ${LAB_REGISTRY_SOURCE_IMAGE:-sparkfleet-lab/trtllm-standin:latest}
#   LAB_REGISTRY_REPOSITORY  default nvidia/tensorrt-llm/release
#   LAB_REGISTRY_OLD_TAG / LAB_REGISTRY_NEW_TAG / LAB_REGISTRY_CRASH_TAG
#                 default spark-single-gpu-dev / 1.2.0rc6 / lab-crash-on-load
# The local tags named after the registry are removed after the push (each lab registry has its own port,
# so keeping them would leave a tag per lab ever started).
# Log in first (docker login REGISTRY) when the registry has htpasswd auth on.
set -eu
registry=${1:-127.0.0.1:${LAB_REGISTRY_PORT:-5000}}
source_image=${2:-${LAB_REGISTRY_SOURCE_IMAGE:-sparkfleet-lab/trtllm-standin:latest}}
repository=${LAB_REGISTRY_REPOSITORY:-nvidia/tensorrt-llm/release}
old_tag=${LAB_REGISTRY_OLD_TAG:-spark-single-gpu-dev}
new_tag=${LAB_REGISTRY_NEW_TAG:-1.2.0rc6}
new_version=${LAB_REGISTRY_NEW_VERSION:-$new_tag}
crash_tag=${LAB_REGISTRY_CRASH_TAG:-lab-crash-on-load}

if ! docker image inspect "$source_image" >/dev/null 2>&1; then
    echo "seed: source image $source_image not found; build it first (lab/images/build-image trtllm-standin)" \
         "or pass another image as the second argument" >&2
    exit 2
fi
if ! curl -fsS -o /dev/null -m 5 "http://$registry/v2/" 2>/dev/null; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://$registry/v2/" || true)
    if [ "$code" != "401" ]; then
        echo "seed: no registry answers on http://$registry/v2/ (HTTP ${code:-none}); start it with lab/registry/start.sh" >&2
        exit 2
    fi
fi

old_ref=$registry/$repository:$old_tag
new_ref=$registry/$repository:$new_tag
docker tag "$source_image" "$old_ref"
docker push "$old_ref"

# The newer tag is a distinct image: one ENV layer on top of the stand-in (legacy builder, no context).
printf 'FROM %s\nENV TRTLLM_STANDIN_VERSION=%s\nLABEL sparkfleet.lab.standin.tag=%s\n' \
    "$source_image" "$new_version" "$new_tag" |
    DOCKER_BUILDKIT=0 docker build -q -t "$new_ref" - >/dev/null
docker push "$new_ref"

crash_ref=$registry/$repository:$crash_tag
printf 'FROM %s\nENV TRTLLM_STANDIN_VERSION=%s TRTLLM_STANDIN_CRASH_WHILE_LOADING=1\nLABEL sparkfleet.lab.standin.tag=%s\n' \
    "$source_image" "$crash_tag" "$crash_tag" |
    DOCKER_BUILDKIT=0 docker build -q -t "$crash_ref" - >/dev/null
docker push "$crash_ref"

for ref in "$old_ref" "$new_ref" "$crash_ref"; do
    echo "seeded $ref ($(docker image inspect -f '{{.Id}}' "$ref"))"
done
docker rmi "$old_ref" "$new_ref" "$crash_ref" >/dev/null
