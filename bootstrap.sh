#!/usr/bin/env bash
# Installs what knit needs, idempotently, on Debian 12 or Debian 13 hosts: the host
# packages that run VMs and build modules and root trees, .venv, the default guest
# userspace (a root tree of Debian 13's packages) and the default kernel.
# Safe to run before every command; a second run does nothing but check.
set -euo pipefail
cd "$(dirname "$0")"

if [ -r /etc/os-release ]; then
  . /etc/os-release
  case "${ID:-}:${VERSION_ID:-}" in
    debian:12|debian:13) ;;
    *) echo "bootstrap: ${PRETTY_NAME:-this host} is not Debian 12 or 13; installing anyway" >&2 ;;
  esac
fi

# The host runs qemu, builds root trees (mmdebstrap), BPF objects (clang) and source
# kernels (flex ... cpio). Tools the tests run live in the guest's root tree, not here.
APT_PACKAGES=(qemu-system-x86 python3-venv mmdebstrap debian-archive-keyring util-linux
              busybox-static kmod file binutils procps make gcc gcc-12 clang llvm libbpf-dev
              bpftool
              bc flex bison libelf-dev libssl-dev dwarves cpio)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  if [ "$(id -u)" != 0 ]; then echo "bootstrap: run as root to install packages" >&2; exit 1; fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
stamp=.venv/.knit-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: creating .venv" >&2
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

.venv/bin/knit rootfs build "${KNIT_USERSPACE:-trixie}"
.venv/bin/knit kernels fetch "${KNIT_KERNEL:-debian-6.12}"
