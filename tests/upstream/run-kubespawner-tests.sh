#!/usr/bin/env bash
# Run KubeSpawner's own tests that need no cluster twice: against KubeSpawner, then with
# ProfileKubeSpawner in its place, and compare test by test. A drop-in passes the same.
#
#   tests/upstream/run-kubespawner-tests.sh KUBESPAWNER_CHECKOUT [PYTHON]
#
# KUBESPAWNER_CHECKOUT: a checkout of jupyterhub/kubespawner at the tested tag (7.1.0);
# PYTHON: one with twoi2c-hub, `kubernetes` (their conftest uses the sync client) and
# pytest-asyncio installed. Not part of `make test`: the tests are not in KubeSpawner's
# wheel or sdist, and CI cannot fetch the repository.
set -uo pipefail
checkout=$(cd "$1" && pwd)
python=${2:-python}
here=$(cd "$(dirname "$0")" && pwd)
export KUBECONFIG="$here/../data/fake-kubeconfig.yaml"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
out=$(mktemp -d)
run() {
  (cd "$checkout" && timeout 900 "$python" -m pytest -q -p no:cacheprovider -o asyncio_mode=auto \
      "$@" tests/test_profile.py tests/test_spawner.py -rA 2>&1) |
    grep -E '^(PASSED|FAILED|ERROR) ' | sed 's/ - .*//' | sort
}
run -p no:randomly > "$out/kubespawner.txt"
run -p kubespawner_as_profile_spawner > "$out/profile.txt"
echo "KubeSpawner:        $(grep -c ^PASSED "$out/kubespawner.txt") passed, $(grep -vc ^PASSED "$out/kubespawner.txt") failed or errored"
echo "ProfileKubeSpawner: $(grep -c ^PASSED "$out/profile.txt") passed, $(grep -vc ^PASSED "$out/profile.txt") failed or errored"
if diff "$out/kubespawner.txt" "$out/profile.txt"; then
  echo "same result for every test"
else
  echo "results differ (above: < KubeSpawner, > ProfileKubeSpawner)"; exit 1
fi
