#!/usr/bin/env bash
# Debian packages the tests use, installed when missing (one apt-get run, quiet): chromium for
# the report's browser test, postgresql for the storage and cluster tests (they start their
# own throwaway server with initdb in a temporary folder, and skip, saying why, without it).
# Never fails the caller: a test whose package is missing is skipped and says so.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
log=$(mktemp "${TMPDIR:-/tmp}/sweeper-apt.XXXXXX.log")
echo "setup: installing ${need[*]} (Debian packages; log: $log)"
if { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
  "${need[@]}"; } >"$log" 2>&1; then
  rm -f "$log"
else
  tail -n 5 "$log" >&2
  echo "setup: could not install ${need[*]}; the tests that need them will be skipped" >&2
fi
exit 0
