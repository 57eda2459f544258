#!/usr/bin/env bash
# Peer comparison: RepViT on our engine (repvit-rs) against ONNX Runtime, OpenVINO and PyTorch eager,
# all timed in one run. Sets up (or reuses) a Python venv with pinned peer packages, then hands every
# other argument to peers.py (see `run.sh --help` and bench-suite/peers/README.md).
#
#   bash bench-suite/peers/run.sh                      # m1_0 at 1 and nproc threads
#   bash bench-suite/peers/run.sh --variant all --quick
#   bash bench-suite/peers/run.sh --venv /work/venv    # reuse an existing venv (missing packages are added)
#
# Environment:
#   PEERS_VENV             venv folder (default: <repo>/target/peers/venv); --venv DIR overrides it
#   PEERS_LITERT_VENV      venv of the LiteRT engine (litert-torch pins its own torch, so it cannot
#                          share PEERS_VENV; default: <repo>/target/peers/venv-litert)
#   PEERS_LITERT=0         skip the LiteRT (XNNPACK) engine and its venv
#   PEERS_PYTHON           interpreter that creates the venv (default: python3)
#   PEERS_TORCH_INDEX_URL  pip index to take torch from first, e.g. PyTorch's CPU-only wheel index
#                          (default: empty = PyPI, whose Linux x86-64 torch also pulls the CUDA libraries)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${PEERS_VENV:-$root/target/peers/venv}"
litert_venv="${PEERS_LITERT_VENV:-$root/target/peers/venv-litert}"
python="${PEERS_PYTHON:-python3}"
torch_index="${PEERS_TORCH_INDEX_URL:-}"

args=()
while (($#)); do
    case "$1" in
    --venv)
        if (($# < 2)); then
            echo "run.sh: --venv needs a folder" >&2
            exit 2
        fi
        venv="$2"
        shift 2
        ;;
    --venv=*)
        venv="${1#--venv=}"
        shift
        ;;
    *)
        args+=("$1")
        shift
        ;;
    esac
done

log() { echo "[peers] $*" >&2; }

# 1. The venv: create it once, reuse it afterwards.
if [[ ! -x "$venv/bin/python" ]]; then
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "run.sh: $python not found; install Python 3 (3.11 tested) or set PEERS_PYTHON" >&2
        exit 1
    fi
    # Debian splits venv/ensurepip into python3-venv; install it only when we may (root).
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing python3-venv with apt-get"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        else
            echo "run.sh: $python cannot create a venv (no ensurepip/venv module);" \
                "install python3-venv (as root: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
    log "creating venv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"

# 2. The packages: install when requirements.txt or the torch index changed since the last install
# (a stamp in the venv records both), so a rerun starts at once.
req="$here/requirements.txt"
stamp="$venv/.peers-requirements"
want="$(cat "$req"; echo "torch-index=$torch_index")"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
    log "installing peer packages into $venv (first run: a few minutes, torch is large)"
    if [[ -n "$torch_index" ]]; then
        "$vpy" -m pip install --quiet --index-url "$torch_index" "$(grep -E '^torch==' "$req")"
    fi
    "$vpy" -m pip install --quiet -r "$req"
    printf '%s' "$want" >"$stamp"
else
    log "venv $venv is up to date"
fi

# 3. LiteRT (XNNPACK) in a venv of its own, the same way: created once, packages by stamp.
if [[ "${PEERS_LITERT:-1}" != 0 ]]; then
    if [[ ! -x "$litert_venv/bin/python" ]]; then
        log "creating venv $litert_venv"
        mkdir -p "$(dirname "$litert_venv")"
        "$python" -m venv "$litert_venv"
    fi
    lreq="$here/requirements-litert.txt"
    lstamp="$litert_venv/.peers-requirements"
    if [[ ! -f "$lstamp" ]] || [[ "$(cat "$lstamp")" != "$(cat "$lreq")" ]]; then
        log "installing LiteRT packages into $litert_venv (first run: a few minutes)"
        "$litert_venv/bin/python" -m pip install --quiet -r "$lreq"
        cat "$lreq" >"$lstamp"
    else
        log "venv $litert_venv is up to date"
    fi
    export PEERS_LITERT_PYTHON="$litert_venv/bin/python"
fi

# 4. The run itself (peers.py builds the repvit binary once before any timing).
cd "$root"
exec "$vpy" "$here/peers.py" "${args[@]+"${args[@]}"}"
