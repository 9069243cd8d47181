#!/bin/sh
# A GKE cluster for examples/kube-community.yaml: a core pool for the hub, the proxy and
# PostgreSQL, and a user pool for each instance type the profiles' node selectors name
# (node.kubernetes.io/instance-type) and for the GPU profile's accelerator
# (cloud.google.com/gke-accelerator). User pools scale from 0. Read it, set the names,
# then run it (or run its commands one by one). Walk-through: docs/deploy-kubernetes.md.
set -eu
CLUSTER=example-collab
ZONE=us-central1-a

# Dataplane V2 enforces the chart's network policies
gcloud container clusters create "$CLUSTER" --zone "$ZONE" \
  --release-channel regular --enable-dataplane-v2 \
  --machine-type n2-standard-4 --num-nodes 1 \
  --node-labels hub.jupyter.org/node-purpose=core

# the shared-node profile's node shares: n2-highmem-4, and n2-highmem-16 (its measured
# type's node_label)
gcloud container node-pools create user-n2-highmem-4 --cluster "$CLUSTER" --zone "$ZONE" \
  --machine-type n2-highmem-4 \
  --enable-autoscaling --min-nodes 0 --max-nodes 20 \
  --node-labels hub.jupyter.org/node-purpose=user \
  --node-taints hub.jupyter.org_dedicated=user:NoSchedule

gcloud container node-pools create user-n2-highmem-16 --cluster "$CLUSTER" --zone "$ZONE" \
  --machine-type n2-highmem-16 \
  --enable-autoscaling --min-nodes 0 --max-nodes 10 \
  --node-labels hub.jupyter.org/node-purpose=user \
  --node-taints hub.jupyter.org_dedicated=user:NoSchedule

# the GPU profile: one T4 per server. GKE installs the NVIDIA driver and runs its own
# device plugin, labels the nodes cloud.google.com/gke-accelerator=nvidia-tesla-t4 and
# taints them nvidia.com/gpu=present:NoSchedule, which only the GPU profile tolerates. (Not
# the user pools' taint: the profile's tolerations replace the chart's.)
gcloud container node-pools create user-gpu-t4 --cluster "$CLUSTER" --zone "$ZONE" \
  --machine-type n1-standard-8 \
  --accelerator type=nvidia-tesla-t4,count=1,gpu-driver-version=default \
  --enable-autoscaling --min-nodes 0 --max-nodes 4 \
  --node-labels hub.jupyter.org/node-purpose=user

gcloud container clusters get-credentials "$CLUSTER" --zone "$ZONE"
