#!/usr/bin/env bash
# `make image`: the appliance's Debian 12 disk image from Debian's packages (docs/deploying.md).
#
#   out/image/appliance.img   ext4 root filesystem (label appliance-root), sparse
#   out/image/vmlinuz         Debian's kernel and initramfs beside it, booted directly by the
#   out/image/initrd.img      hypervisor (QEMU/libvirt -kernel/-initrd); see cmdline
#   out/image/cmdline         the kernel command line to boot it with
#
# Steps: the cached base tree (base-tree.sh: debootstrap, ~4-10 min the first time, seconds after),
# a copy of it with the appliance laid in (binary, units, sysusers, AppArmor profile, config,
# sysctl, network), then mkfs.ext4 -d, which needs no loop device and no mount.
# Needs root (chown to the service user, debootstrap) and out/bin/appliance (`make publish`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
root=$(cd "$src/.." && pwd)
out=${IMAGE_OUT:-$root/out/image}
binary=${APPLIANCE_BINARY:-$root/out/bin/appliance}
size=${IMAGE_SIZE:-2G}

log() { printf '[image %(%T)T] %s\n' -1 "$*" >&2; }
start=$(date +%s)

[[ $(id -u) == 0 ]] || { echo "make image: needs root (debootstrap, file owners in the image)" >&2; exit 1; }
[[ -x $binary ]] || { echo "make image: no $binary: run make publish first" >&2; exit 1; }

# The build's own tools, from Debian's packages.
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v systemd-sysusers >/dev/null || need+=(systemd)
if ((${#need[@]})); then
  log "installing ${need[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tree=$("$here/base-tree.sh")

stage=$out/rootfs
log "laying the appliance into a copy of the base tree"
rm -rf "$stage" "$out/appliance.img"
mkdir -p "$out"
cp -a --reflink=auto "$tree" "$stage"
rm -f "$stage/.complete"

# The binary, its units, its user, its profile, its sysctl settings.
install -m 0755 "$binary" "$stage/usr/bin/appliance"
# libsodium, which make publish puts beside the binary (NSec's Ed25519: Roughtime signs and verifies with it).
install -D -m 0644 "$(dirname "$binary")/libsodium.so" "$stage/usr/lib/appliance/libsodium.so"
install -m 0644 "$src/systemd/appliance.service" "$src/systemd/appliance-firstboot.service" "$stage/usr/lib/systemd/system/"
install -D -m 0755 "$src/firstboot/appliance-firstboot" "$stage/usr/lib/appliance/appliance-firstboot"
install -D -m 0644 "$src/sysusers.d/appliance.conf" "$stage/usr/lib/sysusers.d/appliance.conf"
install -D -m 0644 "$src/sysctl.d/60-appliance.conf" "$stage/usr/lib/sysctl.d/60-appliance.conf"
install -D -m 0644 "$src/apparmor/usr.bin.appliance" "$stage/etc/apparmor.d/usr.bin.appliance"
install -D -m 0644 "$root/docs/deploying.md" "$stage/usr/share/doc/appliance/deploying.md"
# The drop-in for a software-clock appliance, to copy into /etc/systemd/system/appliance.service.d/.
install -D -m 0644 "$src/systemd/software-clock.conf" "$stage/usr/share/doc/appliance/software-clock.conf"
# The shipped configuration, and a pristine copy of it for reference after local edits.
install -D -m 0644 "$src/etc/appliance.yaml" "$stage/usr/share/doc/appliance/appliance.yaml"

# The user now, so that files can be given to its group (systemd-sysusers runs again at boot).
systemd-sysusers --root="$stage" >/dev/null
install -d -m 0755 "$stage/etc/appliance"
install -m 0640 -o root -g "$(awk -F: '$1 == "appliance" { print $3 }' "$stage/etc/group")" \
  "$src/etc/appliance.yaml" "$stage/etc/appliance/appliance.yaml"

# Networking: DHCP on every wired interface (systemd-networkd), DNS through systemd-resolved.
cat > "$stage/etc/systemd/network/80-wired.network" <<'EOF'
# Every wired interface by DHCP; replace with a static address for a production time server.
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
ln -sf ../run/systemd/resolve/stub-resolv.conf "$stage/etc/resolv.conf"
echo appliance > "$stage/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tappliance\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$stage/etc/hosts"
echo 'LABEL=appliance-root / ext4 defaults,errors=remount-ro 0 1' > "$stage/etc/fstab"

# Units: the appliance and its first boot, the network; no other time daemon may discipline the
# clock (timesyncd is masked even where it is not installed, so a later apt install stays inert).
systemctl --root="$stage" --quiet enable appliance.service appliance-firstboot.service \
  systemd-networkd.service systemd-resolved.service apparmor.service
systemctl --root="$stage" --quiet mask systemd-timesyncd.service chrony.service ntpsec.service ntp.service
for daemon in chronyd ntpd systemd-timesyncd; do
  if [[ -e $stage/usr/sbin/$daemon || -e $stage/lib/systemd/$daemon ]]; then
    echo "make image: $daemon is in the image: another time daemon" >&2
    exit 1
  fi
done

# The units as systemd reads them in the image, with the image's own units and binaries.
systemd-analyze verify --root="$stage" appliance.service appliance-firstboot.service

# Root: locked (no password can log in, on the console or anywhere); docs/deploying.md says how an
# operator gives access before the first boot.
sed -i 's/^root:[^:]*:/root:!*:/' "$stage/etc/shadow"
# Every copy of the image gets its own machine id at its first boot.
: > "$stage/etc/machine-id"
rm -f "$stage/var/lib/dbus/machine-id"
# Nothing of the build host stays behind.
rm -rf "$stage/var/cache/apt/"*.bin "$stage/var/log/"*.log "$stage/tmp/"* "$stage/root/.bash_history"

kernel=$(ls "$stage"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$stage"/boot/initrd.img-* | sort -V | tail -1)
install -m 0644 "$kernel" "$out/vmlinuz"
install -m 0644 "$initrd" "$out/initrd.img"
echo "root=LABEL=appliance-root rw console=ttyS0" > "$out/cmdline"

log "mkfs.ext4 -d ($size, sparse)"
mkfs.ext4 -q -F -L appliance-root -d "$stage" "$out/appliance.img" "$size"
rm -rf "$stage"
used=$(du -h "$out/appliance.img" | cut -f1)
log "out/image/appliance.img: $size ($used used); kernel $(basename "$kernel"); $(( $(date +%s) - start )) s"
