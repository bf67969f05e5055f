#!/bin/sh
# Rebuilds resize.wasm from resize.c. Needs clang and lld with the WebAssembly target
# (Debian: apt-get install clang lld). The .wasm is committed, so neither the hub nor CI needs them.
set -eu
cd "$(dirname "$0")"
clang --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib \
  -Wl,--no-entry -Wl,--import-memory -Wl,--export=__heap_base -Wl,--strip-all \
  -o resize.wasm resize.c
