#!/usr/bin/env bash
# PostgreSQL for the storage tests (tests/test_storage.py starts its own throwaway server
# from these binaries and skips, saying why, without them). Installs Debian's postgresql
# when no initdb/pg_ctl is found; never fails the caller. The package's own cluster is not
# needed: the tests run initdb in a temporary folder.
if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
{ $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql; } \
  || echo "setup: could not install postgresql; the PostgreSQL storage tests will be skipped" >&2
exit 0
