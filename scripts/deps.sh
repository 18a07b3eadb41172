#!/usr/bin/env bash
# Installs everything proxy-wasm-c needs on a fresh Debian 12 machine.
# Debian packages through apt; libnode (V8) unpacked under deps/libnode
# when the system has no libnode-dev (see ../shared/PLATFORM.md);
# AssemblyScript SDK from npm under deps/npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/deps"
mkdir -p "$deps"

pkgs="clang lld wasi-libc libclang-rt-14-dev-wasm32 libclang-rt-14-dev wabt libnghttp2-dev
      python3-pytest libcmocka-dev libicu72 libc-ares2 libbrotli1 libuv1
      libnghttp2-14 libssl3 make gcc g++ pkg-config
      nginx nginx-dev libnginx-mod-http-lua libnginx-mod-http-js
      wrk hyperfine curl python3-grpcio procps valgrind"
missing=""
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # installing nginx must not start the system service on port 80:
    # our tests run their own nginx on loopback ports with their own prefix
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"
        added_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
    [ "$added_policy" = 1 ] && rm -f "$policy"
fi

# libnode: the system copy if libnode-dev is installed, else unpack the .debs
if dpkg -s libnode-dev >/dev/null 2>&1; then
    echo "deps: using system libnode-dev"
elif [ ! -f "$deps/libnode/usr/lib/x86_64-linux-gnu/libnode.so.108" ]; then
    echo "deps: unpacking libnode108 and libnode-dev into deps/libnode"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download libnode108 libnode-dev)
    mkdir -p "$deps/libnode"
    for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$deps/libnode"; done
    rm -rf "$tmp"
fi

# AssemblyScript SDK (a third-party SDK our tests build plugins with)
if [ ! -d "$deps/npm/node_modules/@solo-io/proxy-runtime" ]; then
    echo "deps: installing AssemblyScript SDK from npm"
    mkdir -p "$deps/npm"
    (cd "$deps/npm" && [ -f package.json ] || echo '{"name":"pw-deps","private":true}' > "$deps/npm/package.json")
    (cd "$deps/npm" && npm install --no-audit --no-fund --silent \
        assemblyscript@0.14.13 @solo-io/proxy-runtime@0.1.8)
fi
echo "deps: ok"
