#!/usr/bin/env bash
# Installs the host packages Xenolith's build and tests need on Debian 12 (as root).
# Idempotent: skips work that is already done. Usage: install-host-deps.sh [--bochs]
set -euo pipefail

need_apt=0
export DEBIAN_FRONTEND=noninteractive

sources=/etc/apt/sources.list.d/debian.sources
backports=/etc/apt/sources.list.d/xenolith-backports.sources
if [ ! -f "$backports" ]; then
    # Copy the URIs of the machine's own Debian entry (may be a mirror or snapshot).
    uris=$(awk '/^URIs:/ {print $2; exit}' "$sources" 2>/dev/null || true)
    [ -n "$uris" ] || uris=http://deb.debian.org/debian
    cat >"$backports" <<EOS
Types: deb
URIs: $uris
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
    need_apt=1
fi

qemu_ok() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 || return 1
    local v
    v=$(qemu-system-x86_64 --version | awk 'NR==1 {print $4}')
    [ "${v%%.*}" -ge 10 ] 2>/dev/null
}

pkgs=()
command -v grub-mkrescue >/dev/null 2>&1 || pkgs+=(grub-common)
[ -d /usr/lib/grub/i386-pc ] || pkgs+=(grub-pc-bin)
command -v xorriso >/dev/null 2>&1 || pkgs+=(xorriso)
command -v mformat >/dev/null 2>&1 || pkgs+=(mtools)
command -v readelf >/dev/null 2>&1 || pkgs+=(binutils)
if [ "${1:-}" = "--bochs" ] && ! command -v bochs >/dev/null 2>&1; then
    pkgs+=(bochs bochsbios vgabios bochs-term)
fi

if ! qemu_ok || [ ${#pkgs[@]} -gt 0 ] || [ "$need_apt" = 1 ]; then
    apt-get update -q
fi
if ! qemu_ok; then
    apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86
fi
if [ ${#pkgs[@]} -gt 0 ]; then
    apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi
qemu-system-x86_64 --version | head -1
