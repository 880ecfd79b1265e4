#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (run as root, or with sudo available):
# the real registry, clients and engine the tests check ocify's output with, and the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  docker-registry skopeo umoci docker.io containerd busybox-static \
  tar gzip xz-utils bzip2 zstd pigz openssl time curl ca-certificates bsdutils \
  fakeroot pseudo libcap2-bin attr libarchive-tools >/dev/null
npm install --no-audit --no-fund
