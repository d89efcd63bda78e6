# Neovim in tmux, the real TUI. nvim012: Debian sid's Neovim 0.12 in a private root (a failed sid
# download is a SKIP); glint.nvim's setup starts glint through lsp/glint.lua, Neovim's own
# vim.lsp.inline_completion shows the ghost text, <Tab> accepts it. nvim011-tui: Neovim 0.11.4 with
# the plugin's own streamed ghost text, asked for with <M-\>. nvim012 also types into a function
# body key by key (nvim_typing.sh), in both ghost-text modes, and runs the plugin's early-answer
# test headless (nvim_early.lua). Sourced by editors/test.sh.
# shellcheck source=debroot.sh
. "$EDITORS/tests/debroot.sh"
# shellcheck source=nvim_typing.sh
. "$EDITORS/tests/nvim_typing.sh"

# Runs Neovim's TUI in tmux on add.py: enter insert mode on the empty line 3 (and press TRIGGER if
# given), wait for the ghost text on screen, <Tab>, :wq, and check the file. MODE is glint.nvim's
# ghost_text option. Usage: nvim_tui NAME NVIM MODE TRIGGER_KEY [VIMRUNTIME]
nvim_tui() {
  local name="$1" nvim="$2" mode="$3" trigger="$4" runtime="${5:-}"
  local dir="$WORK/$name" start=$SECONDS session="glint-$name-$$" i
  mkdir -p "$dir/home"
  printf 'def add(a, b):\n    return a + b\n\n' >"$dir/add.py"
  tmx kill-session -t "$session" 2>/dev/null
  tmx new-session -d -s "$session" -x 100 -y 20 \
    "cd '$dir' && env -u VIMRUNTIME HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' XDG_DATA_HOME='$dir/data' XDG_STATE_HOME='$dir/state' ${runtime:+VIMRUNTIME='$runtime'} GLINT_GHOST='$mode' GLINT_BIN='$GLINT' GLINT_EDITORS='$EDITORS' GLINT_WORK='$dir' '$nvim' -i NONE -n -u '$EDITORS/tests/nvim_tui_init.lua' add.py 2>'$dir/stderr.txt'"
  for i in $(seq 1 100); do
    [ -s "$dir/attached.txt" ] && break
    sleep 0.1
  done
  sleep 0.2
  # Line 3 is empty: entering insert mode there asks for an inline completion (0.12), or the
  # trigger key does (the plugin).
  tmx send-keys -t "$session" G
  sleep 0.2
  tmx send-keys -t "$session" i
  if [ -n "$trigger" ]; then
    sleep 0.2
    tmx send-keys -t "$session" "$trigger"
  fi
  for i in $(seq 1 50); do
    [ -s "$dir/marks.txt" ] && tmx capture-pane -p -t "$session" | grep -q 'print(add(1, 2))' && break
    sleep 0.1
  done
  tmx capture-pane -p -t "$session" >"$dir/screen-ghost.txt"
  tmx send-keys -t "$session" Tab
  sleep 0.3
  tmx send-keys -t "$session" Escape ":wq" Enter
  for i in $(seq 1 30); do
    tmx has-session -t "$session" 2>/dev/null || break
    sleep 0.1
  done
  tmx kill-session -t "$session" 2>/dev/null
  {
    echo "== screen with ghost text"
    cat "$dir/screen-ghost.txt"
    echo "== extmarks"
    cat "$dir/marks.txt" 2>/dev/null
    echo "== stderr"
    cat "$dir/stderr.txt" 2>/dev/null
    echo "== file"
    cat "$dir/add.py"
  } >"$LOGS/$name.log"
  local ok=1
  if grep -q 'enabled=true' "$dir/marks.txt" 2>/dev/null && grep -q 'print(add(1, 2))' "$dir/marks.txt"; then
    echo "    ok   ghost text is an extmark ($mode)"
  else
    echo "    FAIL no ghost-text extmark"
    ok=0
  fi
  if grep -q 'print(add(1, 2))' "$dir/screen-ghost.txt"; then
    echo "    ok   the TUI shows the ghost text"
  else
    echo "    FAIL the ghost text is not on screen"
    ok=0
  fi
  if [ "$(sed -n 3p "$dir/add.py")" = "print(add(1, 2))" ]; then
    echo "    ok   <Tab> accepted it and :wq saved it"
  else
    echo "    FAIL line 3 of the saved file is '$(sed -n 3p "$dir/add.py")'"
    ok=0
  fi
  if [ $ok -eq 1 ]; then
    pass "$name" "$("$nvim" --version | head -1 | cut -d' ' -f2), $((SECONDS - start)) s"
  else
    fail "$name" "ghost text in the Neovim TUI" "$LOGS/$name.log"
  fi
}

nvim012_check() {
  local root="$CACHE/nvim-0.12" nvim
  nvim="$root/usr/bin/nvim"
  local runtime="$root/usr/share/nvim/runtime"
  if ! "$nvim" --version 2>/dev/null | head -1 | grep -q 'v0\.12\.'; then
    if ! debroot sid "$root" neovim neovim-runtime libc6 libgcc-s1 libluajit-5.1-2 libluajit-5.1-common \
      libtree-sitter0.26 libunibilium4 libutf8proc3 libuv1t64 lua-lpeg lua-luv >"$LOGS/nvim012-install.log" 2>&1 ||
      ! patch_root_binary "$root" "$nvim" >>"$LOGS/nvim012-install.log" 2>&1 ||
      ! "$nvim" --version 2>/dev/null | head -1 | grep -q 'v0\.12\.'; then
      rm -rf "$root"
      skip nvim012 "could not install Neovim 0.12 from Debian sid (it moves daily)"
      return
    fi
  fi
  if ! command -v tmux >/dev/null && ! apt_install tmux; then
    skip nvim012 "tmux is not installable here"
    return
  fi
  nvim_tui nvim012 "$nvim" auto "" "$runtime"
  # Typing one key at a time, with Neovim's own ghost text and with glint.nvim's: a streaming
  # scripted engine, then the real default model when it is installed (a release build if any).
  local mode model="${GLINT_MODEL:-$HOME/.cache/glint/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}" model_bin="$GLINT"
  [ -x "$CARGO_TARGET_DIR/release/glint" ] && model_bin="$CARGO_TARGET_DIR/release/glint"
  for mode in auto plugin; do
    nvim_typing "nvim012-typing-$mode" "$nvim" "$mode" "$runtime" "$GLINT" '{"engine":"fake+delay=40: <= 0:"}'
    if [ -f "$model" ]; then
      nvim_typing "nvim012-typing-$mode-model" "$nvim" "$mode" "$runtime" "$model_bin" "{\"model\":\"$model\"}"
    else
      skip "nvim012-typing-$mode-model" "no model at $model (glint model fetch)"
    fi
  done
  # Headless on the same binary: code actions, and glint.rewrite through glint.nvim's command glue.
  run_nvim nvim012-actions "$nvim" nvim_actions.lua VIMRUNTIME="$runtime" GLINT_REWRITE=1
  run_nvim nvim012-controls "$nvim" nvim_controls.lua VIMRUNTIME="$runtime"
  run_nvim nvim012-early "$nvim" nvim_early.lua VIMRUNTIME="$runtime"
  nvim_model_check nvim012-model "$nvim" "$runtime"
}
