#!/usr/bin/env bash
# Installs Debian's prometheus (promtool + server) and prometheus-alertmanager (amtool) packages
# when missing, for the rules tests and the scrape integration test. Best effort: without them
# those tests skip and say so loudly.
set -u
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
   && command -v amtool >/dev/null 2>&1; then
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
echo "installing Debian packages prometheus, prometheus-alertmanager (promtool, amtool, server)..."
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq >/dev/null && \
       $SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null; }; then
  echo "NOTE: installing prometheus failed: Prometheus tests will be SKIPPED" >&2
fi
# The package's init script may start a server on :9090; the tests start their own.
if command -v service >/dev/null 2>&1; then
  for svc in prometheus prometheus-alertmanager; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
fi
exit 0
