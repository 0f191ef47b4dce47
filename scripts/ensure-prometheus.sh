#!/usr/bin/env bash
# Installs Debian's prometheus package (promtool + server) when missing, for the rules tests and
# the scrape integration test. Best effort: without it those tests skip and say so loudly.
set -u
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "NOTE: promtool/prometheus not found and apt-get unavailable: Prometheus tests will be SKIPPED" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "NOTE: not root and no sudo: cannot install prometheus; Prometheus tests will be SKIPPED" >&2
    exit 0
  fi
fi
echo "installing Debian package 'prometheus' for promtool and the scrape test..."
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq >/dev/null && \
       $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
  echo "NOTE: installing prometheus failed: Prometheus tests will be SKIPPED" >&2
fi
# The package's init script may start a server on :9090; the tests start their own.
if command -v service >/dev/null 2>&1; then $SUDO service prometheus stop >/dev/null 2>&1 || true; fi
exit 0
