#!/usr/bin/env bash
# Headless Chromium for the report's browser test (tests/test_report.py skips without it).
# Installs Debian's chromium when it is missing; never fails the caller.
command -v chromium >/dev/null 2>&1 && exit 0
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
{ $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } \
  || echo "setup: could not install chromium; the browser test will be skipped" >&2
exit 0
