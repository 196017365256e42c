#!/bin/bash
# deps.sh - make sure the Debian 12 packages pointsd needs are installed.
# Owns the one list of packages. As root it installs only what is missing;
# as any other user it never installs: it prints the apt-get line and fails.
set -euo pipefail

# build: compiler, pkg-config and the -dev packages of the libraries we link
PTS_PKGS_BUILD=(gcc make pkg-config libssl-dev libpq-dev libevent-dev
	libjansson-dev check)
# run and test: PostgreSQL 15 server binaries (we run a private cluster, never
# the system service the package installs), clients and test tools
PTS_PKGS_RUNTIME=(postgresql-15 postgresql-client-15 openssl curl jq faketime
	socat stunnel4 hledger prometheus slowhttptest testssl.sh clang-14
	libclang-rt-14-dev procps)

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps: dpkg-query not found: not a Debian system, skipping the package check" >&2
	echo "deps: needed: ${PTS_PKGS_BUILD[*]} ${PTS_PKGS_RUNTIME[*]}" >&2
	exit 0
fi

missing=()
for pkg in "${PTS_PKGS_BUILD[@]}" "${PTS_PKGS_RUNTIME[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != installed ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: run this as root, then run make again:" >&2
	echo "apt-get install -y ${missing[*]}"
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps: installing ${missing[*]}" >&2
apt-get update
apt-get install -y "${missing[@]}"
