#!/usr/bin/env bash
# Installs what tianwang needs and is missing: Debian packages (mosquitto, influxdb,
# victoria-metrics, postgresql) and a virtualenv in .venv with the project and its test tools.
# Idempotent; fast when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# openssl makes the broker's test CA and certificate (tianwang/pki.py, broker-config
# --tls-self-signed); mosquitto_passwd (package mosquitto) hashes the broker's passwords.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Debian's chromium for the officer console's browser test (Playwright drives it; no
# `playwright install` download).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# A CJK font, so that the console's Chinese labels render in its screenshots.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || need_apt+=(influxdb)
# The InfluxDB v2 write API for the v2 sink's tests (Debian has no InfluxDB 2).
command -v victoria-metrics >/dev/null 2>&1 || [ -x /usr/bin/victoria-metrics ] ||
  need_apt+=(victoria-metrics)
# PostgreSQL for the incident store's tests and benchmark: each starts a private cluster
# (initdb + postgres on a free port; as the package's user "postgres" when run as root).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need_apt+=(postgresql)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install.sh: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # The packages' own services are not wanted: tianwang starts private instances.
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp=".venv/.tianwang-installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "install.sh: creating .venv with the project"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.tianwang-installed-*
  touch "$stamp"
fi
