#!/bin/sh
# Restores one user's directory ($RESTORE_USER), or the whole volume (RESTORE_USER='*'), as of a snapshot
# ($RESTORE_SNAPSHOT: an ID of 8 or 64 hex characters, or 'latest'), into a NEW directory next to the live
# one on the notebooks volume:
#   $DATA/<user>.restored-<snapshot>-<UTC time>   or   $DATA/.restored-<snapshot>-<UTC time>/
# or, with RESTORE_INTO=home, inside the user's own folder (which they see): $DATA/<user>/restored-<...>
# It never writes into an existing directory. Prints the directory it created.
#
# restic only ever writes below a new top-level directory whose name has a '.', which no user's folder
# has (KubeSpawner's user slugs are [a-z0-9-]), so no user pod mounts it. A restore into a home is restored
# there first and then renamed into place in one step: the user, whose server may be running, can change
# anything inside their folder meanwhile, and `mv -T` renames without following a link they put there.
set -u
: "${DATA:?}" "${RESTIC_REPOSITORY:?}" "${BACKUP_HOST:?}" "${RESTORE_USER:?}"
ACTION=restore
. "$(dirname "$0")/lib.sh"
snapshot=${RESTORE_SNAPSHOT:-latest}
case $RESTORE_USER in
  */* | .* | '') fail "RESTORE_USER must be a user name or '*' (got '$RESTORE_USER')" ;;
esac
# it reaches restic's command line: '--anything' would be a flag
case $snapshot in
  latest) ;;
  *[!0-9a-f]* | '') fail "RESTORE_SNAPSHOT must be a snapshot ID (8 or 64 hex characters) or latest" ;;
  *) [ ${#snapshot} -eq 8 ] || [ ${#snapshot} -eq 64 ] ||
    fail "RESTORE_SNAPSHOT must be a snapshot ID (8 or 64 hex characters) or latest" ;;
esac

open_repository
[ "$REPO_STATE" = ok ] || fail "no repository at $RESTIC_REPOSITORY"

# The snapshot's short ID names the directory, so two restores never collide and the source is visible.
id=$(restic snapshots --host "$BACKUP_HOST" --tag notebooks --json -- "$snapshot" 2>/dev/null |
  sed -n 's/.*"short_id":"\([0-9a-f]*\)".*/\1/p' | tail -n 1)
[ -n "$id" ] || fail "no snapshot '$snapshot' of $BACKUP_HOST in $RESTIC_REPOSITORY"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
final=
if [ "$RESTORE_USER" = '*' ]; then
  source_path=$DATA
  dest=$DATA/.restored-$id-$stamp
else
  source_path=$DATA/$RESTORE_USER
  dest=$DATA/$RESTORE_USER.restored-$id-$stamp
  if [ "${RESTORE_INTO:-beside}" = home ]; then
    [ -d "$source_path" ] || fail "$source_path does not exist; restore beside it instead"
    final=$source_path/restored-$id-$stamp
    dest=$DATA/.restore-$RESTORE_USER-$id-$stamp
  fi
fi
[ -e "$dest" ] && fail "$dest exists; nothing restored"
mkdir "$dest" || fail "cannot create $dest"
restic restore "$id:$source_path" --target "$dest" || fail "restic restore of $id:$source_path ended with status $?"
if [ -n "$final" ]; then
  # one rename(2); -T: $final is the new name, never a folder (or a link to one) to move into
  mv -T "$dest" "$final" ||
    fail "cannot move the restored files to $final (something appeared there); they are in $dest"
  dest=$final
fi
echo "restored $id:$source_path into $dest"
