#!/bin/sh
# Backs up the notebooks volume ($DATA, mounted read-only) into the restic repository ($RESTIC_REPOSITORY,
# encrypted with $RESTIC_PASSWORD), creating the repository on first use, then applies the retention policy.
# Every snapshot carries the same host name ($BACKUP_HOST), so retention groups all runs together whatever
# the pod is called. On failure: a one-line reason on stderr and in the termination log, exit 1.
# Needs restic >= 0.17 (its exit codes 10: no repository, 12: wrong password).
set -u
: "${DATA:?}" "${RESTIC_REPOSITORY:?}" "${BACKUP_HOST:?}"
ACTION=backup
. "$(dirname "$0")/lib.sh"

open_repository
if [ "$REPO_STATE" = missing ]; then
  echo "no repository at $RESTIC_REPOSITORY yet: creating it"
  restic init >/dev/null || fail "cannot create a repository at $RESTIC_REPOSITORY"
fi

[ -d "$DATA" ] || fail "$DATA is not mounted"
restic backup --host "$BACKUP_HOST" --tag notebooks --one-file-system --exclude-caches "$DATA"
rc=$?
case $rc in
  0) ;;
  3) fail "restic backup of $DATA saved a snapshot but could not read some files (see the log above)" ;;
  *) fail "restic backup of $DATA ended with status $rc" ;;
esac
restic forget --host "$BACKUP_HOST" --tag notebooks --prune --keep-last "${KEEP_LAST:-3}" \
  --keep-daily "${KEEP_DAILY:-7}" --keep-weekly "${KEEP_WEEKLY:-4}" --keep-monthly "${KEEP_MONTHLY:-6}" \
  || fail "restic forget/prune ended with an error (see the log above)"
echo "backup done at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
