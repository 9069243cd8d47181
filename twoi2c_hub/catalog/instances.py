"""Capacity of common cloud instance types, and what a user pod can really get of it.

A node never offers its whole capacity to pods: the kubelet, the container runtime and
the eviction threshold are reserved first ("node allocatable"), and the daemonsets that
run on every node (kube-proxy, logging and monitoring agents, the CSI driver) take their
requests from what is left. Node-share choices are computed from that remainder.

Sources for the reservations:
- GKE: "Node allocatable resources" in the GKE documentation, cloud.google.com/kubernetes-engine/
  docs/concepts/plan-node-sizes (memory: 25% of the first 4 GiB, 20% of the next 4, 10% of the
  next 8, 6% of the next 112, 2% above 128 GiB, plus a 100 MiB eviction threshold; CPU: 6% of
  the first core, 1% of the second, 0.5% of the next two, 0.25% of every core above four).
- EKS: the Amazon EKS optimized AMI bootstrap (`kube-reserved` memory = 255 MiB + 11 MiB per
  pod the node may run, 110 pods assumed here; CPU as GKE) plus the 100 MiB eviction threshold.
- AKS: "Resource reservations" in the AKS documentation, learn.microsoft.com/azure/aks/
  node-resource-reservations (Kubernetes 1.29+: memory 20 MiB per pod + 50 MiB, 30 pods by
  default, plus a 100 MiB eviction threshold; CPU as GKE).

Sizes: the provider's published machine-type tables (GCP "General-purpose machine family",
AWS "Amazon EC2 instance types", Azure "Sizes for virtual machines"). GCP's "GB" of memory
are GiB, as are AWS's and Azure's.

An operator adds or corrects instance types in the community config
(`instance_types:` section); measured figures always win over these computed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1024**3
MiB = 1024**2

EVICTION_THRESHOLD_BYTES = 100 * MiB


@dataclass(frozen=True)
class InstanceType:
    """What a node offers to user pods, after the system and daemonsets took their share."""

    name: str
    provider: str
    cpu: float  # vCPUs on the machine
    memory_bytes: int  # memory on the machine
    # measured allocatable figures, when an operator gave them; computed otherwise
    allocatable_cpu: float | None = None
    allocatable_memory_bytes: int | None = None
    gpu_count: int = 0
    gpu_type: str | None = None
    # the value of node.kubernetes.io/instance-type on its nodes, when not its name
    node_label: str | None = None

    @property
    def label_value(self) -> str:
        """Where its pods are pinned: `node.kubernetes.io/instance-type` = this."""
        return self.node_label or self.name

    def allocatable(self) -> tuple[float, int]:
        """(cores, bytes) the kubelet offers to pods."""
        cpu = self.allocatable_cpu
        if cpu is None:
            cpu = self.cpu - reserved_cpu(self.cpu)
        memory = self.allocatable_memory_bytes
        if memory is None:
            memory = self.memory_bytes - reserved_memory_bytes(self.provider, self.memory_bytes)
        return cpu, int(memory)

    def __deepcopy__(self, memo: dict) -> InstanceType:
        # immutable, so shared: traitlets deep-copies a configured value into every
        # spawner, and JupyterHub builds a spawner at every start (the catalog's ~50 types
        # copied took ~20 KiB and ~0.5 ms a spawner)
        return self


def reserved_cpu(cores: float) -> float:
    """CPU the kubelet reserves on a node of `cores` cores (GKE's published tiers)."""
    tiers = [(1, 0.06), (1, 0.01), (2, 0.005), (float("inf"), 0.0025)]
    reserved, left = 0.0, cores
    for size, fraction in tiers:
        part = min(left, size)
        reserved += part * fraction
        left -= part
        if left <= 0:
            break
    return reserved


def reserved_memory_bytes(provider: str, memory_bytes: int) -> int:
    """Memory reserved for the system and eviction on a node of this provider."""
    if provider == "aws":
        return 255 * MiB + 11 * MiB * 110 + EVICTION_THRESHOLD_BYTES
    if provider == "azure":
        return 20 * MiB * 30 + 50 * MiB + EVICTION_THRESHOLD_BYTES
    # GKE's tiers, also the default for unknown providers
    if memory_bytes < 1 * GiB:
        return 255 * MiB + EVICTION_THRESHOLD_BYTES
    tiers = [(4 * GiB, 0.25), (4 * GiB, 0.20), (8 * GiB, 0.10), (112 * GiB, 0.06), (float("inf"), 0.02)]
    reserved, left = 0.0, float(memory_bytes)
    for size, fraction in tiers:
        part = min(left, size)
        reserved += part * fraction
        left -= part
        if left <= 0:
            break
    return int(reserved) + EVICTION_THRESHOLD_BYTES


def _family(provider: str, sizes: dict[str, tuple[int, int]]) -> dict[str, InstanceType]:
    return {
        name: InstanceType(name=name, provider=provider, cpu=cpu, memory_bytes=gib * GiB)
        for name, (cpu, gib) in sizes.items()
    }


# name: (vCPUs, GiB)
INSTANCE_TYPES: dict[str, InstanceType] = {
    **_family(
        "gcp",
        {
            "n2-standard-2": (2, 8),
            "n2-standard-4": (4, 16),
            "n2-standard-8": (8, 32),
            "n2-standard-16": (16, 64),
            "n2-standard-32": (32, 128),
            "n2-highmem-2": (2, 16),
            "n2-highmem-4": (4, 32),
            "n2-highmem-8": (8, 64),
            "n2-highmem-16": (16, 128),
            "n2-highmem-32": (32, 256),
            "n2-highmem-64": (64, 512),
            "e2-standard-2": (2, 8),
            "e2-standard-4": (4, 16),
            "e2-standard-8": (8, 32),
            "e2-standard-16": (16, 64),
            "e2-highmem-2": (2, 16),
            "e2-highmem-4": (4, 32),
            "e2-highmem-8": (8, 64),
            "e2-highmem-16": (16, 128),
            "n1-standard-4": (4, 15),
            "n1-standard-8": (8, 30),
            "n1-standard-16": (16, 60),
            "n1-highmem-4": (4, 26),
            "n1-highmem-8": (8, 52),
            "n1-highmem-16": (16, 104),
        },
    ),
    **_family(
        "aws",
        {
            "m5.large": (2, 8),
            "m5.xlarge": (4, 16),
            "m5.2xlarge": (8, 32),
            "m5.4xlarge": (16, 64),
            "r5.large": (2, 16),
            "r5.xlarge": (4, 32),
            "r5.2xlarge": (8, 64),
            "r5.4xlarge": (16, 128),
            "r5.8xlarge": (32, 256),
            "r5.16xlarge": (64, 512),
            "m6i.xlarge": (4, 16),
            "m6i.2xlarge": (8, 32),
            "r6i.xlarge": (4, 32),
            "r6i.2xlarge": (8, 64),
        },
    ),
    **_family(
        "azure",
        {
            "Standard_D2s_v5": (2, 8),
            "Standard_D4s_v5": (4, 16),
            "Standard_D8s_v5": (8, 32),
            "Standard_D16s_v5": (16, 64),
            "Standard_E2s_v5": (2, 16),
            "Standard_E4s_v5": (4, 32),
            "Standard_E8s_v5": (8, 64),
            "Standard_E16s_v5": (16, 128),
            "Standard_E32s_v5": (32, 256),
        },
    ),
}

# GPU machines: (vCPUs, GiB, GPUs, GPU type as the node selector names it)
for _name, _provider, (_cpu, _gib, _gpus, _gpu_type) in [
    ("g2-standard-4", "gcp", (4, 16, 1, "nvidia-l4")),
    ("g2-standard-8", "gcp", (8, 32, 1, "nvidia-l4")),
    ("g4dn.xlarge", "aws", (4, 16, 1, "nvidia-tesla-t4")),
    ("g4dn.2xlarge", "aws", (8, 32, 1, "nvidia-tesla-t4")),
    ("Standard_NC4as_T4_v3", "azure", (4, 28, 1, "nvidia-tesla-t4")),
]:
    INSTANCE_TYPES[_name] = InstanceType(
        name=_name,
        provider=_provider,
        cpu=_cpu,
        memory_bytes=_gib * GiB,
        gpu_count=_gpus,
        gpu_type=_gpu_type,
    )
