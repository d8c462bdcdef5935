#!/bin/sh
# Restores one user's directory ($RESTORE_USER), or the whole volume (RESTORE_USER='*'), as of a snapshot
# ($RESTORE_SNAPSHOT: an ID or 'latest'), into a NEW directory next to the live one on the notebooks volume:
#   $DATA/<user>.restored-<snapshot>-<UTC time>   or   $DATA/.restored-<snapshot>-<UTC time>/
# or, with RESTORE_INTO=home, inside the user's own folder (which they see): $DATA/<user>/restored-<...>
# It never writes into an existing directory. Prints the directory it created.
set -u
: "${DATA:?}" "${RESTIC_REPOSITORY:?}" "${BACKUP_HOST:?}" "${RESTORE_USER:?}"
ACTION=restore
. "$(dirname "$0")/lib.sh"
snapshot=${RESTORE_SNAPSHOT:-latest}
case $RESTORE_USER in
  */* | .* | '') fail "RESTORE_USER must be a user name or '*' (got '$RESTORE_USER')" ;;
esac

open_repository
[ "$REPO_STATE" = ok ] || fail "no repository at $RESTIC_REPOSITORY"

# The snapshot's short ID names the directory, so two restores never collide and the source is visible.
id=$(restic snapshots --host "$BACKUP_HOST" --tag notebooks --json "$snapshot" 2>/dev/null |
  sed -n 's/.*"short_id":"\([0-9a-f]*\)".*/\1/p' | tail -n 1)
[ -n "$id" ] || fail "no snapshot '$snapshot' of $BACKUP_HOST in $RESTIC_REPOSITORY"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [ "$RESTORE_USER" = '*' ]; then
  source_path=$DATA
  dest=$DATA/.restored-$id-$stamp
else
  source_path=$DATA/$RESTORE_USER
  dest=$DATA/$RESTORE_USER.restored-$id-$stamp
  if [ "${RESTORE_INTO:-beside}" = home ]; then
    [ -d "$source_path" ] || fail "$source_path does not exist; restore beside it instead"
    dest=$source_path/restored-$id-$stamp
  fi
fi
[ -e "$dest" ] && fail "$dest exists; nothing restored"
mkdir "$dest" || fail "cannot create $dest"
restic restore "$id:$source_path" --target "$dest" || fail "restic restore of $id:$source_path ended with status $?"
echo "restored $id:$source_path into $dest"
