#!/usr/bin/env bash
# Runs the workspace tests for aarch64 (the NEON kernels) on an x86-64 Debian 12 host: cross-built
# with Debian's rustc (which ships an arm64 std), run under qemu-user on two emulated cores.
#
#   scripts/test-aarch64.sh [extra cargo test arguments, e.g. -- dwconv]
#
# - Installs what it needs when missing (as root, or through sudo): arm64 as a foreign architecture,
#   rustc-web (Debian's rustc, 1.96 in bookworm-security), libstd-rust-web-dev:arm64 (its aarch64 std,
#   which also pulls in the arm64 libc that qemu loads), the cross gcc used as linker, qemu-user.
# - Builds once and runs the tests twice: QEMU_CPU=max (every feature qemu emulates, FP16 and BF16
#   included; the whole workspace) and QEMU_CPU=cortex-a53 (an in-order ARMv8.0 core; the kernel
#   and conformance test binaries of the first build, run directly). Nothing is built twice. Then the kernels' aarch64
#   tests once more under QEMU_CPU=cortex-a76 (FP16 without BF16), where the f16 kernels run and
#   bf16 must be refused.
#   KERNELS_ISA is unset for both, so dispatch picks the widest tier (neon); a last step checks that
#   NEON is detected inside qemu and that KERNELS_ISA=neon is accepted.
# - With AARCH64_CLIPPY=1, also runs clippy for aarch64 (installing Debian's rust-web-clippy if needed).
# - BUILD_PROFILE (default: test) picks the cargo profile; CI passes `ci` (Cargo.toml), which
#   scripts/bench-aarch64.sh then reuses instead of building the workspace a second time.
# - Artefacts go to $AARCH64_TARGET_DIR (default target/aarch64-debian), apart from the host (rustup)
#   build, so the two compilers never invalidate each other's artefacts.
#
# The linker and the runner (`qemu-aarch64`, without -L on purpose: the arm64 libc installed with
# libstd-rust-web-dev:arm64 must be the one loaded; the cross sysroot's loader hangs at the first
# thread) are set in .cargo/config.toml.
#
# Doctests are included: cargo cross-compiles them and runs them through the same runner, and they
# pass. Should a future toolchain fail to run doctests cross, pass `--lib --bins --tests` instead.
set -euo pipefail

readonly TARGET=aarch64-unknown-linux-gnu
readonly RUSTC_DEB=/usr/bin/rustc
readonly RUSTDOC_DEB=/usr/bin/rustdoc
PACKAGES=(rustc-web cargo-web "libstd-rust-web-dev:arm64" gcc-aarch64-linux-gnu
    libc6-dev-arm64-cross qemu-user)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

log() { printf '\n==> %s\n' "$*" >&2; }

# True when the toolchain is complete: Debian's rustc with an aarch64 std, the cross linker, qemu and
# the arm64 dynamic loader.
have_toolchain() {
    [[ -x $RUSTC_DEB && -x $RUSTDOC_DEB ]] || return 1
    local sysroot
    sysroot=$("$RUSTC_DEB" --print sysroot) || return 1
    compgen -G "$sysroot/lib/rustlib/$TARGET/lib/libstd-*.rlib" >/dev/null || return 1
    command -v aarch64-linux-gnu-gcc >/dev/null || return 1
    command -v qemu-aarch64 >/dev/null || return 1
    [[ -e /lib/ld-linux-aarch64.so.1 ]] || return 1
}

install_toolchain() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || {
            echo "error: packages missing and not root (no sudo): ${PACKAGES[*]}" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    log "installing ${PACKAGES[*]}"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        "${sudo[@]}" dpkg --add-architecture arm64
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}"
}

if have_toolchain; then
    log "toolchain present, skipping install"
else
    install_toolchain
    have_toolchain || {
        echo "error: toolchain still incomplete after install" >&2
        exit 1
    }
fi

# cargo: the one on PATH (rustup's, if installed), else Debian's (cargo-web). Either drives
# Debian's rustc through RUSTC; Cargo.lock is left as it is.
CARGO=${CARGO:-$(command -v cargo || echo /usr/bin/cargo)}
export RUSTC=$RUSTC_DEB RUSTDOC=$RUSTDOC_DEB
export CARGO_TARGET_DIR=${AARCH64_TARGET_DIR:-$repo/target/aarch64-debian}
# Tests that start the `repvit` binary run it through the same emulator (no binfmt handler needed,
# and the same arm64 loader as the test itself).
export REPVIT_TEST_RUNNER=qemu-aarch64
# A loader prefix would make qemu load the cross sysroot's libc (see above).
unset QEMU_LD_PREFIX
profile=(--profile "${BUILD_PROFILE:-test}")
log "$("$RUSTC" --version) for $TARGET, $("$CARGO" --version), target dir $CARGO_TARGET_DIR, ${profile[*]}"

run_tests() {
    local cpu=$1
    shift
    log "cargo test $* --target $TARGET under QEMU_CPU=$cpu"
    env -u KERNELS_ISA QEMU_CPU="$cpu" \
        "$CARGO" test "${profile[@]}" --locked --target "$TARGET" "$@"
}

start=$SECONDS
# max: the whole workspace. cortex-a53 (Armv8.0, no FP16/BF16): the kernel crate and the
# conformance tests, i.e. every f32 kernel on a core without the half-precision extensions (an FP16
# instruction leaking into an f32 path would fault here) and the half-precision kernels refused.
# The model crate's tests run the same f32 kernels, so they run once, under max; cortex-a53 would
# add nothing to them but emulation time. Of the model crate, only the tests whose results go
# through the kernels run under qemu (its unit tests, the timm fixtures of every family, the
# precisions, and the variants' thread, batch-split and ISA agreement); its loading, naming, image
# and command-line tests (official_names, checkpoint_kinds, classify, bad_input, layers) are the
# same target-independent code the x86 run tests, and cost about a minute of emulation here
# (official_names alone 46 s, measured 2026-12-08).
run_tests max --workspace --exclude repvit "$@"
run_tests max -p repvit --lib --test timm_fixtures --test mobilenet_fixtures --test precision \
    --test variants "$@"

# cortex-a53: the kernel and conformance test binaries built above, run directly under qemu (as
# cargo's runner would, from their package's folder). Through `cargo test -p ...` instead, cargo
# would resolve the features of two packages rather than the workspace's and rebuild the kernel crate
# and its dependencies (9.5 of CI's minutes).
cargo_args=() test_args=()
for ((i = 1; i <= $#; i++)); do
    if [[ ${!i} == -- ]]; then
        test_args=("${@:i+1}")
        break
    fi
    cargo_args+=("${!i}")
done
log "kernel and conformance test binaries under QEMU_CPU=cortex-a53"
mapfile -t bins < <("$CARGO" test "${profile[@]}" --locked --target "$TARGET" --workspace --exclude repvit \
    "${cargo_args[@]}" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    if m["package_id"].split("#")[-1].split("@")[0] in ("mobile-cnn-kernels", "conformance"):
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
')
[[ ${#bins[@]} -ge 2 ]] || {
    echo "error: found ${#bins[@]} kernel and conformance test binaries, expected the lib's and the conformance tests'" >&2
    exit 1
}
for entry in "${bins[@]}"; do
    dir=${entry%%$'\t'*} bin=${entry#*$'\t'}
    printf '%s\n' "-- ${bin##*/}" >&2
    (cd "$dir" && env -u KERNELS_ISA QEMU_CPU=cortex-a53 qemu-aarch64 "$bin" "${test_args[@]}")
done

# A core with FEAT_FP16 but not FEAT_BF16 (Armv8.2-A): the f16 kernels run, and bf16 must be
# reported unavailable and refused (`half_precision_*` tests in kernels/src/aarch64). Only the lib
# tests of the aarch64 module: the binaries are those built above, and this takes about 15 s.
log "cargo test --workspace --lib -- aarch64:: under QEMU_CPU=cortex-a76 (FP16, no BF16)"
env -u KERNELS_ISA QEMU_CPU=cortex-a76 \
    "$CARGO" test "${profile[@]}" --workspace --locked --target "$TARGET" --lib -- aarch64::

# The tests above already fail if NEON is not detected; this shows it, per emulated core, and checks
# that KERNELS_ISA is honoured inside qemu (`--workspace`, as above, so nothing is rebuilt).
for cpu in cortex-a53 max; do
    out=$(QEMU_CPU=$cpu KERNELS_ISA=neon "$CARGO" test "${profile[@]}" -q --locked --workspace --lib \
        --target "$TARGET" -- --exact aarch64::tests::neon_is_detected_and_dispatched --nocapture 2>&1) || {
        printf '%s\n' "$out" >&2
        exit 1
    }
    line=$(grep "selected ISA = neon" <<<"$out") || {
        printf '%s\n' "$out" >&2
        echo "error: NEON was not selected under QEMU_CPU=$cpu" >&2
        exit 1
    }
    log "QEMU_CPU=$cpu, KERNELS_ISA=neon: $line"
done
log "all aarch64 tests passed under cortex-a53, max (and cortex-a76: fp16), NEON selected ($((SECONDS - start)) s)"

# Optional: clippy on the aarch64 build (the x86 clippy never sees the NEON code). rustup's clippy has
# no aarch64 std, so this uses Debian's cargo and clippy (package rust-web-clippy, same version as
# Debian's rustc), in a target dir of its own.
if [[ ${AARCH64_CLIPPY:-0} == 1 ]]; then
    if [[ ! -x /usr/bin/cargo-clippy || ! -x /usr/bin/clippy-driver || ! -x /usr/bin/cargo ]]; then
        PACKAGES=(rust-web-clippy cargo-web)
        install_toolchain
    fi
    log "clippy --workspace --all-targets --target $TARGET -D warnings (Debian's clippy)"
    PATH=/usr/bin:$PATH CARGO_TARGET_DIR=$CARGO_TARGET_DIR-clippy \
        /usr/bin/cargo clippy --workspace --all-targets --locked --target "$TARGET" -- -D warnings
fi
