#!/usr/bin/env bash
# Installs the host packages Xenolith's build and tests need on Debian 12 (as root):
# QEMU >= 10 (from bookworm-backports), the GRUB rescue-ISO tools (grub-pc-bin, grub-common,
# xorriso, mtools), binutils and procps; with --bochs also what only the tests use: Bochs and
# cpio.
# Idempotent: skips work that is already done. Usage: install-host-deps.sh [--bochs]
set -euo pipefail

bochs=0
for arg in "$@"; do
    case "$arg" in
        --bochs) bochs=1 ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-host-deps.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

export DEBIAN_FRONTEND=noninteractive

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
# The QEMU harness kills QEMU's process group with kill(1).
[ -x /usr/bin/kill ] || [ -x /bin/kill ] || pkgs+=(procps)
if [ "$bochs" = 1 ] && ! command -v bochs >/dev/null 2>&1; then
    pkgs+=(bochs bochsbios vgabios bochs-term)
fi
# GNU cpio reads the generated initramfs back in a host test.
if [ "$bochs" = 1 ] && ! command -v cpio >/dev/null 2>&1; then
    pkgs+=(cpio)
fi

if qemu_ok && [ ${#pkgs[@]} -eq 0 ]; then
    qemu-system-x86_64 --version | head -1
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    missing="${pkgs[*]}"
    qemu_ok || missing="qemu-system-x86 (>= 10, bookworm-backports) $missing"
    echo "install-host-deps.sh: missing: $missing" >&2
    echo "install-host-deps.sh: run me as root: sudo bash $0 $*" >&2
    exit 1
fi

need_update=0
sources=/etc/apt/sources.list.d/debian.sources
backports=/etc/apt/sources.list.d/xenolith-backports.sources
if ! qemu_ok && [ ! -f "$backports" ]; then
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
    need_update=1
fi

# Refresh the package lists if they were never fetched or a source was just added.
if [ "$need_update" = 1 ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
    apt-get update -q
fi
if ! qemu_ok; then
    apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86; }
fi
if [ ${#pkgs[@]} -gt 0 ]; then
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${pkgs[@]}"; }
fi
qemu_ok || { echo "install-host-deps.sh: QEMU >= 10 is still not installed" >&2; exit 1; }
qemu-system-x86_64 --version | head -1
