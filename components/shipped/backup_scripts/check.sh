#!/bin/sh
# Verifies the repository: its structure, and a rotating ${CHECK_SUBSET:-5%} of the stored data read back.
set -u
: "${RESTIC_REPOSITORY:?}"
log=${TERMINATION_LOG:-/dev/termination-log}
restic check --read-data-subset "${CHECK_SUBSET:-5%}" && exit 0
rc=$?
echo "repository check failed (restic check status $rc) for $RESTIC_REPOSITORY" | tee "$log" >&2
exit 1
