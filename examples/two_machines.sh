#!/usr/bin/env bash
# Two workers sharing one study through PostgreSQL (see docs/distributed.md).
# On two machines, run the `advisor tune` line on each; here both run on this machine.
#   STORAGE=postgresql://user:pass@db.example:5432/optuna bash examples/two_machines.sh
set -euo pipefail
: "${STORAGE:?set STORAGE to a postgresql:// URL both workers reach}"
STUDY=${STUDY:-two-machines-$(date +%s)}
ARGS=(--study "$STUDY" --storage "$STORAGE" --budget "${BUDGET:-2m}" --quiet --format json "${@}")
advisor tune "${ARGS[@]}" --out runs/worker-a > runs-worker-a.json &
advisor tune "${ARGS[@]}" --out runs/worker-b > runs-worker-b.json &
wait
advisor report --study "$STUDY" --storage "$STORAGE"
