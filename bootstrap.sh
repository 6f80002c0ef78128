#!/usr/bin/env bash
# Installs what knit needs on Debian 12, idempotently: apt packages, .venv, default kernel.
# Safe to run before every command; a second run does nothing but check.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(qemu-system-x86 busybox-static iproute2 iputils-ping iperf3 tcpdump kmod file
              binutils procps ethtool make gcc python3-venv libbpf-tools
              clang llvm bpftool libbpf-dev bpfcc-tools iptables
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

# Kernel package names come from apt's lists: make sure they exist.
if ! apt-cache show 'linux-headers-amd64' >/dev/null 2>&1; then apt-get update -q; fi

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

.venv/bin/knit kernels fetch "${KNIT_KERNEL:-debian-6.12}"
