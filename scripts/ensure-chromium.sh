#!/usr/bin/env bash
# Installs Debian's chromium when missing, for the tests that render the printable pages (reviews,
# improvement reports) headless, print them to PDF and keep a screenshot. Best effort: without
# it those tests skip and say so loudly.
set -u
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "NOTE: chromium not found and apt-get unavailable: the page-rendering tests will be SKIPPED" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "NOTE: not root and no sudo: cannot install chromium; the page-rendering tests will be SKIPPED" >&2
    exit 0
  fi
fi
echo "installing Debian package chromium (headless rendering of the printable pages)..."
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq >/dev/null && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
  echo "NOTE: installing chromium failed: the page-rendering tests will be SKIPPED" >&2
fi
exit 0
