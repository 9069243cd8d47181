"""pytest plugin: make KubeSpawner's own test suite run against ProfileKubeSpawner.

Loaded with `-p` before KubeSpawner's tests import `from kubespawner import KubeSpawner`,
it puts our subclass in that name, so every spawner those tests build is ours.
Used by run-kubespawner-tests.sh; not collected by `make test`.
"""

import kubespawner
import kubespawner.spawner

from twoi2c_hub.spawners.kube import ProfileKubeSpawner

kubespawner.KubeSpawner = ProfileKubeSpawner
kubespawner.spawner.KubeSpawner = ProfileKubeSpawner
