#!/usr/bin/env bash
# Installs the Debian packages flowstore needs to build and test, and only
# those that are missing; a second run changes nothing. Needs root (or sudo)
# only when something is missing.
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config
	clang llvm libclang-rt-14-dev libbpf-dev bpftool libelf-dev zlib1g-dev
	libuv1-dev libsqlite3-dev libcmocka-dev libhttp-parser-dev libedit-dev curl
	sqlite3 iproute2 procps iputils-ping
)

installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

if ! command -v dpkg-query >/dev/null; then
	echo "deps.sh: this is not a Debian-like system (no dpkg-query); install by hand:" >&2
	echo "  ${PACKAGES[*]}" >&2
	exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps.sh: all dependencies present"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	as_root() { "$@"; }
elif command -v sudo >/dev/null; then
	as_root() { sudo "$@"; }
else
	echo "deps.sh: missing packages: ${missing[*]}" >&2
	echo "deps.sh: installing them needs root, and sudo is not installed; as root run:" >&2
	echo "  apt-get install ${missing[*]}" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]}"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps.sh: installed ${missing[*]}"
