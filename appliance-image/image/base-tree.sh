#!/usr/bin/env bash
# The cached Debian 12 base tree for the image: debootstrap of appliance-image/image/packages, then the
# point releases and security updates. Prints the tree's path on stdout (progress goes to stderr).
#
# The tree is cached under out/image-cache/ keyed by the package list, the suite and this script, so a
# second `make image` skips the ~8 minutes of debootstrap. A tree is only published (renamed into place)
# once complete: an interrupted build leaves a *.partial directory that the next run removes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
suite=bookworm
cache=${IMAGE_CACHE:-$root/out/image-cache}

log() { printf '[image %(%T)T] %s\n' -1 "$*" >&2; }

# Bump when a step below changes what the tree holds (the package list is hashed by itself).
tree_version=2

# The mirror apt on this machine already uses for suite $1 (deb822 or one-line format), so the build
# reaches the same registry as every other install here; $2 when none names it.
mirror() {
  local uri
  uri=$(awk -v s="$1" '
    /^URIs:/ { u = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) { print u; exit } }
  ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [[ -z $uri ]]; then
    uri=$(awk -v s="$1" '$1 == "deb" && $3 == s { print $2; exit }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  fi
  echo "${uri:-$2}"
}

packages=$(grep -v '^\s*#' "$here/packages" | grep -v '^\s*$' | paste -sd, -)
key=$( { echo "$suite minbase $tree_version"; echo "$packages"; } | sha256sum | cut -c1-16)
tree=$cache/$suite-$key

if [[ -f $tree/.complete ]]; then
  log "base tree cached: $tree"
  echo "$tree"
  exit 0
fi

m=$(mirror "$suite" http://deb.debian.org/debian)
mkdir -p "$cache"
rm -rf "$tree.partial"
log "debootstrap $suite from $m (first build: ~3-10 min, by the mirror; cached afterwards under $cache)"
# Progress: a line every 25 packages retrieved, then debootstrap's own phase lines; the whole log is
# kept beside the tree for when it fails.
debootstrap --variant=minbase --include="$packages" "$suite" "$tree.partial" "$m" 2>&1 \
  | tee "$cache/debootstrap.log" \
  | awk '/^I: Retrieving / { if (++n % 25 == 0) { printf "[image] retrieved %d packages\n", n; fflush() } next }
         /^I: (Extracting|Unpacking|Configuring|Installing) / { p = $2; if (p != last) { print "[image] " p " ..."; fflush(); last = p } next }
         /^(I: Base system|E:|W:)/ { print; fflush() }' >&2

# Point-release and security updates: debootstrap only reads the release suite. The sources list stays
# in the image so `apt-get upgrade` works on a deployed appliance as on any Debian host.
sec=$(mirror "$suite-security" http://deb.debian.org/debian-security)
cat > "$tree.partial/etc/apt/sources.list" <<EOF
deb $m $suite main
deb $m $suite-updates main
deb $sec $suite-security main
EOF
log "applying $suite-updates and $suite-security"
# No service may start inside the build chroot (Debian's policy-rc.d convention), and the chroot
# resolves names as the host does (systemd-resolved's stub is not running there).
printf '#!/bin/sh\nexit 101\n' > "$tree.partial/usr/sbin/policy-rc.d"
chmod 755 "$tree.partial/usr/sbin/policy-rc.d"
rm -f "$tree.partial/etc/resolv.conf"
cp -L /etc/resolv.conf "$tree.partial/etc/resolv.conf"
in_tree() { chroot "$tree.partial" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
# apt's output goes to a log beside the tree; its tail is shown when a step fails.
apt_log=$cache/apt.log
: > "$apt_log"
in_apt() {
  in_tree apt-get -q -y -o Dpkg::Options::=--force-confold "$@" >> "$apt_log" 2>&1 \
    || { tail -20 "$apt_log" >&2; echo "base-tree: apt-get $* failed (log: $apt_log)" >&2; exit 1; }
}
in_apt --error-on=any update
in_apt dist-upgrade
log "$(grep -c '^Unpacking ' "$apt_log" || true) packages updated"
# A kernel from the updates replaces the release's: keep only the newest, the one the image boots.
old_kernels=$(in_tree dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-image-[0-9]*' \
  | awk '$1 == "ii" { print $2 }' | sort -V | head -n -1)
if [[ -n $old_kernels ]]; then
  log "removing superseded kernels: $old_kernels"
  # shellcheck disable=SC2086
  in_apt purge $old_kernels
fi
in_apt clean
rm -f "$tree.partial/usr/sbin/policy-rc.d" "$tree.partial/etc/resolv.conf"
ln -s ../run/systemd/resolve/stub-resolv.conf "$tree.partial/etc/resolv.conf"
rm -rf "$tree.partial/var/lib/apt/lists/"*
touch "$tree.partial/.complete"
mv "$tree.partial" "$tree"
# Older trees (another package list) are dead weight: keep only this one.
find "$cache" -mindepth 1 -maxdepth 1 -name "$suite-*" ! -name "$suite-$key" -exec rm -rf {} +
log "base tree ready: $tree ($(du -sh "$tree" | cut -f1))"
echo "$tree"
