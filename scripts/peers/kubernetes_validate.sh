#!/usr/bin/env bash
# Real peer: kubernetes-validate (PyPI), which checks the manifests of
# deploy/kubernetes/ against the Kubernetes API's JSON schemas, offline (the
# schemas ship in the package). .ci/run runs it on every manifest.
#
# Installs idempotently into .cache/peers/kubernetes-validate and prints, on
# stdout, only:
#   export KUBERNETES_VALIDATE=<the venv's kubernetes-validate command>
# Progress goes to stderr.
set -euo pipefail
source "$(dirname "$0")/lib/pip_command.bash"
pip_command_peer kubernetes-validate "kubernetes-validate==1.37.0" kubernetes-validate kubernetes-validate KUBERNETES_VALIDATE
