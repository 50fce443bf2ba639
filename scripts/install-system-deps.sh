#!/usr/bin/env bash
# Installs the OS packages the tests need (Debian): nats-server (JetStream tests, demo),
# clickhouse-server (transport and outage tests of the HTTP path), the NATS C client with a C
# compiler (libnats-dev, gcc: the outside-client check in test/interop), openssl (the TLS tests
# make their certificates with it) and chromium (the report test opens the report in a headless
# browser). Every new machine starts without them, so the test command runs this first. Idempotent.
set -euo pipefail
need=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server)
[ -f /usr/include/nats/nats.h ] || need+=(libnats-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core) # text in the report screenshots
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else
  echo "cxstream tests need the Debian package(s): ${need[*]}" >&2
  echo "install them as root: apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing ${need[*]} (apt-get) ..." >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# The packages try to start their services; there is no init system here, which is fine: tests start their own.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
