#!/usr/bin/env bash
# Installs the Debian 12 packages Castor needs to build and test, if missing.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config clang libmicrohttpd-dev libjansson-dev
      libpcre2-dev libsqlite3-dev libstb-dev libwebp-dev curl ca-certificates nodejs npm)
pkgs+=(libpq-dev postgresql haproxy) # the PostgreSQL store and its replica tests
# MuPDF (PDF documents): Debian 12's libmupdf-dev is static-only and declares no dependencies;
# these are the libraries its mupdf.pc links against (Libs.private) plus harfbuzz
pkgs+=(libmupdf-dev libmujs-dev libgumbo-dev libopenjp2-7-dev libjbig2dec0-dev libjpeg-dev zlib1g-dev
       libfreetype-dev libharfbuzz-dev)
pkgs+=(chromium) # the playground's e2e test (headless, puppeteer-core)
pkgs+=(libcurl4-openssl-dev) # castor pull
# make test-arm64 (part of make test): cross compiler, qemu and the arm64
# -dev packages of the engine's libraries (multiarch)
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libpcre2-dev:arm64 libjansson-dev:arm64
         libwebp-dev:arm64)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    if [ "$(id -u)" -eq 0 ]; then dpkg --add-architecture arm64; else sudo dpkg --add-architecture arm64; fi
  fi
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# a node from elsewhere (e.g. /usr/local/bin) satisfies nodejs/npm
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -ra missing <<<"${missing[*]}"
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
