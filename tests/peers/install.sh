#!/usr/bin/env bash
# Installs the real peers the tests run against (../shared/PEERS.md): apt packages, and NTPsec's
# ntpd/ntpq extracted from their .deb (the ntpsec package conflicts with chrony, so it is not
# installed). Idempotent and quiet when everything is present. Needs root (CI and these machines run as root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
peers_dir=${APPLIANCE_PEERS_DIR:-$here/../../.peers}
mkdir -p "$peers_dir"

# prometheus brings promtool (rules, metrics); chromium loads the status page headless; apparmor brings
# apparmor_parser (the profile's test) and systemd systemd-analyze (the unit's); python3-pytest runs the
# benchmark scripts' own tests (Debian's /usr/bin/python3, JUnit XML for .ci/run's counts).
packages=(chrony ntpsec-ntpdig ntpsec-ntpdate iproute2 openssl python3 curl libcap2-bin gpsd linuxptp strace prometheus chromium fonts-dejavu-core apparmor systemd python3-pytest)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "peers: installing ${missing[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$peers_dir/ntpsec-root/usr/bin/ntpq" ]; then
  echo "peers: extracting NTPsec ntpd/ntpq into $peers_dir/ntpsec-root"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq ntpsec >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq ntpsec; })
  dpkg -x "$tmp"/ntpsec_*.deb "$peers_dir/ntpsec-root"
  rm -rf "$tmp"
fi
echo "peers: ready ($(chronyd -v | head -1 | cut -d' ' -f1-4); ntpdig; gpsd $(gpsd -V 2>&1 | cut -d' ' -f2); ptp4l; prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3); $(chromium --version 2>/dev/null | cut -d' ' -f1-2); ntpq in $peers_dir/ntpsec-root)"
