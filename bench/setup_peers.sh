#!/usr/bin/env bash
# Install the benchmark peers into bench/.peers/ (git-ignored). Idempotent: a peer whose
# pinned version is already installed is left alone.
#
#   bash bench/setup_peers.sh [miniflare] [dbos]      (no argument: both)
#
# Miniflare comes from the npm registry at the exact version in bench/peers/miniflare/package.json
# (the newest release whose `engines` still accepts Node.js 20, which is what this machine has;
# later releases ask for Node.js >= 22). DBOS Transact comes from PyPI into its own venv at
# the version pinned in bench/peers/dbos/requirements.txt.
# Exit status: 0 when every peer asked for is installed; otherwise 1, with one line per failure
# on stderr naming the peer and the reason, so the runner can report "skipped: <reason>".
set -u
here="$(cd "$(dirname "$0")" && pwd)"
peers="$here/.peers"
mkdir -p "$peers"
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(miniflare dbos)
status=0

setup_miniflare() {
    local dest="$peers/miniflare" src="$here/peers/miniflare"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "miniflare: node and npm are not installed (apt-get install nodejs npm)" >&2; return 1
    fi
    mkdir -p "$dest"
    if [ -f "$dest/.stamp" ] && cmp -s "$src/package.json" "$dest/.stamp" \
        && [ -d "$dest/node_modules/miniflare" ]; then
        return 0
    fi
    cp "$src/package.json" "$dest/package.json"
    if ! (cd "$dest" && npm install --no-audit --no-fund --loglevel=error --package-lock=false \
            >"$dest/npm-install.log" 2>&1); then
        echo "miniflare: npm install failed: $(tail -n 3 "$dest/npm-install.log" | tr '\n' ' ')" >&2
        return 1
    fi
    cp "$src/package.json" "$dest/.stamp"
}

setup_dbos() {
    local dest="$peers/dbos-venv" req="$here/peers/dbos/requirements.txt"
    local py="${PYTHON:-python3}"
    if [ -f "$dest/.stamp" ] && cmp -s "$req" "$dest/.stamp" && [ -x "$dest/bin/python" ]; then
        return 0
    fi
    if ! "$py" -m venv "$dest" >"$peers/dbos-install.log" 2>&1; then
        echo "dbos: cannot create a venv with $py: $(tail -n 2 "$peers/dbos-install.log" | tr '\n' ' ')" >&2
        return 1
    fi
    if ! "$dest/bin/python" -m pip install -q -r "$req" >>"$peers/dbos-install.log" 2>&1; then
        echo "dbos: pip install failed: $(tail -n 3 "$peers/dbos-install.log" | tr '\n' ' ')" >&2
        return 1
    fi
    cp "$req" "$dest/.stamp"
}

for peer in "${want[@]}"; do
    case "$peer" in
        miniflare) setup_miniflare || status=1 ;;
        dbos) setup_dbos || status=1 ;;
        *) echo "unknown peer '$peer' (expected miniflare or dbos)" >&2; status=1 ;;
    esac
done
exit $status
