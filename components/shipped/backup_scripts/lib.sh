# Shared by backup.sh and restore.sh (sourced): a one-line failure, and opening the repository.
# shellcheck shell=sh

# fail WHAT...: the reason on stderr and in the termination log (kubectl shows it), exit 1.
fail() {
  echo "$ACTION failed: $*" >&2
  echo "$ACTION failed: $*" > "${TERMINATION_LOG:-/dev/termination-log}" 2>/dev/null || true
  exit 1
}

# open_repository: sets REPO_STATE to ok or missing, or fails with the reason. restic retries an
# unreachable backend, a refused key and an S3 bucket that does not exist yet for minutes, so give up after
# OPEN_TIMEOUT seconds and report the last error it retried on.
open_repository() {
  out=$(timeout "${OPEN_TIMEOUT:-60}" restic cat config 2>&1 >/dev/null)
  rc=$?
  last=$(echo "$out" | sed -n 's/.*returned error, retrying after [^:]*: //p' | tail -n 1)
  case $last in *"bucket does not exist"*) rc=10 ;; esac
  case $rc in
    0) REPO_STATE=ok ;;
    10) REPO_STATE=missing ;;
    12) fail "wrong password for the repository at $RESTIC_REPOSITORY (backup.password)" ;;
    124 | 143)
      fail "repository at $RESTIC_REPOSITORY not reachable within ${OPEN_TIMEOUT:-60}s${last:+ (last error: $last)}" ;;
    *) fail "cannot open the repository at $RESTIC_REPOSITORY: $(echo "$out" | tail -n 2 | tr '\n' ' ')" ;;
  esac
}
