#!/usr/bin/env bash
# Installs the real programs that integration tests and benchmarks drive:
# rsyslog (with its RELP and TLS modules), syslog-ng and loggen, logger,
# clickhouse-server (the ClickHouse sink's tests run a private instance), and systemd
# for systemd-analyze (the unit file's check; no service is started).
# Idempotent; run as root on Debian 12 (CI does, via `make test`).
#
# rsyslog and syslog-ng-core conflict as Debian packages, so syslog-ng is
# installed normally and rsyslog is unpacked into $PROGRAMS_DIR/rsyslog and
# run from there with its own configuration (tests never use the system one).
set -euo pipefail

PROGRAMS_DIR=${PROGRAMS_DIR:-"$(cd "$(dirname "$0")/.." && pwd)/.programs"}
RSYSLOG_DIR="$PROGRAMS_DIR/rsyslog"
export DEBIAN_FRONTEND=noninteractive

fail() { echo "install-programs: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    fail "must run as root to install Debian packages (CI runs as root; locally use sudo make test)"
fi
command -v apt-get >/dev/null || fail "apt-get not found: the integration tests need a Debian machine"

packages=(syslog-ng-core bsdutils libestr0 libfastjson4 liblognorm5 librelp0 libgnutls30 libzstd1 libuuid1
          clickhouse-server systemd)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-programs: installing ${missing[*]}"
    apt-get update -qq || fail "apt-get update failed: no package mirror reachable?"
    # No service may start at install time: tests run their own private instances.
    apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null \
        || fail "apt-get install ${missing[*]} failed"
fi

if [ ! -x "$RSYSLOG_DIR/usr/sbin/rsyslogd" ] || [ ! -f "$RSYSLOG_DIR/usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so" ] || [ ! -f "$RSYSLOG_DIR/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so" ]; then
    echo "install-programs: unpacking rsyslog into $RSYSLOG_DIR"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && apt-get download rsyslog rsyslog-relp rsyslog-gnutls >/dev/null) \
        || (apt-get update -qq && cd "$work" && apt-get download rsyslog rsyslog-relp rsyslog-gnutls >/dev/null) \
        || fail "apt-get download rsyslog failed"
    mkdir -p "$RSYSLOG_DIR"
    for deb in "$work"/*.deb; do dpkg -x "$deb" "$RSYSLOG_DIR"; done
fi

# Prove each program runs; a test that needs one must never quietly skip.
"$RSYSLOG_DIR/usr/sbin/rsyslogd" -v | head -n 1
syslog-ng --version | head -n 1
loggen --help >/dev/null 2>&1 || fail "loggen does not run"; echo "loggen (syslog-ng-core)"
logger --version | head -n 1
# Debian's clickhouse-server service never starts here (tests run private instances). Its 18.16
# binary has no --version: it answers "Unknown option" with status 78 (EX_CONFIG), which still
# proves it loads; newer ones answer 0. The version comes from dpkg.
ch_rc=0; ch_out=$(clickhouse-server --version 2>&1) || ch_rc=$?
case "$ch_rc" in 0|78) ;; *) fail "clickhouse-server does not run (status $ch_rc): $ch_out" ;; esac
echo "clickhouse-server $(dpkg-query -W -f='${Version}' clickhouse-server)"
# systemd-analyze checks systemd/receiver.service (nothing starts systemd here).
systemd-analyze --version | head -n 1
