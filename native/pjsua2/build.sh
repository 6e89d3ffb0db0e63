#!/usr/bin/env bash
# Build the project's own pjsua2 Python binding and install it into a Python environment.
#
#   native/pjsua2/build.sh PYTHON
#
# Source: by default the pjproject tree (Jami's fork of 2.12.1) inside Debian's `ring`
# source package, with Debian's CVE patches for it applied. Set PJPROJECT_TARBALL to an
# upstream pjproject release tarball (e.g. pjproject-2.12.1.tar.gz) to build from that instead.
#
# Two cached stages under $CALLCENTER_CACHE (default ~/.cache/callcenter):
#   pjproject/<lib key>/   the configured, compiled pjproject tree   (source + config_site.h)
#   wheels/<wheel key>/    the pjsua2 wheel                            (lib key + binding files + Python)
# so a second set-up or CI run on the same machine only reinstalls the cached wheel.
set -euo pipefail

PY=${1:?usage: build.sh PYTHON}
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CALLCENTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/callcenter}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$CACHE/src" "$CACHE/wheels" "$CACHE/pjproject"

log() { printf '[pjsua2] %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }
hash16() { sha256sum | cut -c1-16; }

# ---- the source ----------------------------------------------------------------------------
if [[ -n "${PJPROJECT_TARBALL:-}" ]]; then
    [[ -f "$PJPROJECT_TARBALL" ]] || die "PJPROJECT_TARBALL=$PJPROJECT_TARBALL: no such file"
    src_key=$(hash16 < "$PJPROJECT_TARBALL")
else
    if ! ls "$CACHE"/src/ring_*.orig.tar.* >/dev/null 2>&1; then
        log "downloading Debian's ring source package (about 30 MB)"
        (cd "$CACHE/src" && apt-get source --download-only ring >&2) \
            || die "apt-get source ring failed: is there a deb-src line for the Debian mirror?"
    fi
    orig=$(ls "$CACHE"/src/ring_*.orig.tar.* | tail -n1)
    debtar=$(ls "$CACHE"/src/ring_*.debian.tar.* | tail -n1)
    src_key=$(cat "$orig" "$debtar" | hash16)
fi
lib_key="$src_key-$(cat "$HERE/config_site.h" "$HERE/configure-flags" "$HERE"/patches/*.patch | hash16)"
py_tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
bind_key=$(cd "$HERE" && find . -type f \( -name '*.py' -o -name '*.i' -o -name '*.cpp' -o -name '*.hpp' \) \
    -not -path './build/*' | LC_ALL=C sort | xargs cat | hash16)
wheel_dir="$CACHE/wheels/$lib_key-$bind_key-$py_tag"
tree="$CACHE/pjproject/$lib_key"

# ---- stage 1: pjproject libraries ------------------------------------------------------------
build_pjproject() {
    rm -rf "$tree" && mkdir -p "$tree"
    log "unpacking pjproject into $tree"
    if [[ -n "${PJPROJECT_TARBALL:-}" ]]; then
        tar xf "$PJPROJECT_TARBALL" -C "$tree"
        pj=$(ls -d "$tree"/pjproject-*/ | head -n1)
    else
        local top
        top=$( (tar tf "$orig" || true) | head -n1 | cut -d/ -f1)
        tar xf "$orig" -C "$tree" --wildcards "$top/daemon/contrib/tarballs-unpacked/pjproject-*"
        pj=$(ls -d "$tree/$top"/daemon/contrib/tarballs-unpacked/pjproject-*/pjproject-*/ | head -n1)
        tar xf "$debtar" -C "$tree" debian/patches
        for p in "$tree"/debian/patches/CVE-*; do
            [[ -e "$p" ]] || continue
            log "applying $(basename "$p")"
            # Paths in Debian's patch start at the ring tree: strip them to the pjproject root.
            patch -d "$pj" -p6 --forward --batch < "$p" >&2
        done
    fi
    pj=${pj%/}
    for p in "$HERE"/patches/*.patch; do  # the project's own fixes (each file says why)
        log "applying $(basename "$p")"
        patch -d "$pj" -p1 --forward --batch < "$p" >&2
    done
    cp "$HERE/config_site.h" "$pj/pjlib/include/pj/config_site.h"
    log "configuring: $(tr '\n' ' ' < "$HERE/configure-flags")"
    # shellcheck disable=SC2046
    (cd "$pj" && CFLAGS="-O2 -fPIC" CXXFLAGS="-O2 -fPIC" ./configure $(cat "$HERE/configure-flags") \
        >"$tree/configure.log" 2>&1) || { tail -n 30 "$tree/configure.log" >&2; exit 1; }
    log "compiling pjproject with $JOBS jobs (about 4 minutes on 2 cores; log: $tree/make.log)"
    (cd "$pj" && make dep >"$tree/make.log" 2>&1 && make -j"$JOBS" lib >>"$tree/make.log" 2>&1) \
        || { tail -n 40 "$tree/make.log" >&2; exit 1; }
    echo "$pj" > "$tree/.built"
}

# ---- stage 2: the SWIG binding as a wheel ---------------------------------------------------
build_wheel() {
    [[ -f "$tree/.built" ]] || build_pjproject
    local pj stage
    pj=$(cat "$tree/.built")
    stage="$tree/stage-$bind_key"
    rm -rf "$stage" && mkdir -p "$stage/wheel"
    log "generating the SWIG binding (GIL released around every call: -threads)"
    cp "$HERE/setup.py" "$HERE"/tap/* "$HERE"/guard/* "$stage/"
    # pjproject's interface plus the project's media tap (tap/) and SIP guard (guard/), one module.
    { cat "$pj/pjsip-apps/src/swig/pjsua2.i"; printf '\n%%include "media_tap.i"\n%%include "sip_guard.i"\n'; } \
        > "$stage/pjsua2.i"
    (cd "$pj/pjsip-apps/src/swig/python" && swig -I.. -I"$stage" -I../../../../pjlib/include \
        -I../../../../pjlib-util/include -I../../../../pjmedia/include -I../../../../pjsip/include \
        -I../../../../pjnath/include \
        -c++ -w312 -threads -python -outdir "$stage" -o "$stage/pjsua2_wrap.cpp" "$stage/pjsua2.i") \
        >"$stage/swig.log" 2>&1 || { tail -n 20 "$stage/swig.log" >&2; exit 1; }
    log "compiling the binding (about 2 minutes)"
    PJDIR="$pj" "$PY" -m pip wheel --no-build-isolation --no-deps -w "$stage/wheel" "$stage" \
        >"$stage/wheel.log" 2>&1 || { tail -n 40 "$stage/wheel.log" >&2; exit 1; }
    rm -rf "$wheel_dir.tmp" && mkdir -p "$wheel_dir.tmp"
    cp "$stage"/wheel/*.whl "$wheel_dir.tmp/" && mv "$wheel_dir.tmp" "$wheel_dir"
    rm -rf "$stage"
    log "built and cached $(basename "$wheel_dir")"
}

if ls "$wheel_dir"/*.whl >/dev/null 2>&1; then
    log "using cached build $(basename "$wheel_dir")"
else
    build_wheel
fi
"$PY" -m pip install --force-reinstall --no-deps --quiet "$wheel_dir"/*.whl
"$PY" -c 'import pjsua2; print("[pjsua2] installed", pjsua2.__file__)' >&2
