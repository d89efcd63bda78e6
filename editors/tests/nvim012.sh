# Neovim 0.12 (Debian sid's, in a private root) in tmux: glint.nvim's setup starts glint through
# lsp/glint.lua, Neovim's own vim.lsp.inline_completion shows the suggestion as ghost text (an
# extmark, visible on screen), <Tab> accepts it, and the saved file holds it. A failed sid download
# is a SKIP. Sourced by editors/test.sh.
# shellcheck source=debroot.sh
. "$EDITORS/tests/debroot.sh"

nvim012_check() {
  local root="$CACHE/nvim-0.12" nvim
  nvim="$root/usr/bin/nvim"
  export VIMRUNTIME="$root/usr/share/nvim/runtime"
  if ! "$nvim" --version 2>/dev/null | head -1 | grep -q 'v0\.12\.'; then
    if ! debroot sid "$root" neovim neovim-runtime libc6 libgcc-s1 libluajit-5.1-2 libluajit-5.1-common \
      libtree-sitter0.26 libunibilium4 libutf8proc3 libuv1t64 lua-lpeg lua-luv >"$LOGS/nvim012-install.log" 2>&1 ||
      ! patch_root_binary "$root" "$nvim" >>"$LOGS/nvim012-install.log" 2>&1 ||
      ! "$nvim" --version 2>/dev/null | head -1 | grep -q 'v0\.12\.'; then
      rm -rf "$root"
      unset VIMRUNTIME
      skip nvim012 "could not install Neovim 0.12 from Debian sid (it moves daily)"
      return
    fi
  fi
  if ! command -v tmux >/dev/null && ! apt_install tmux; then
    unset VIMRUNTIME
    skip nvim012 "tmux is not installable here"
    return
  fi
  local dir="$WORK/nvim012" start=$SECONDS session="glint-nvim-$$" i
  mkdir -p "$dir/home"
  printf 'def add(a, b):\n    return a + b\n\n' >"$dir/add.py"
  tmux kill-session -t "$session" 2>/dev/null
  tmux new-session -d -s "$session" -x 100 -y 20 \
    "cd '$dir' && env HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' XDG_DATA_HOME='$dir/data' XDG_STATE_HOME='$dir/state' VIMRUNTIME='$VIMRUNTIME' GLINT_BIN='$GLINT' GLINT_EDITORS='$EDITORS' GLINT_WORK='$dir' '$nvim' -i NONE -n -u '$EDITORS/tests/nvim012_init.lua' add.py 2>'$dir/stderr.txt'"
  unset VIMRUNTIME
  for i in $(seq 1 100); do
    [ -s "$dir/attached.txt" ] && break
    sleep 0.1
  done
  sleep 0.2
  # Line 3 is empty: entering insert mode there asks for an inline completion.
  tmux send-keys -t "$session" G
  sleep 0.2
  tmux send-keys -t "$session" i
  for i in $(seq 1 50); do
    [ -s "$dir/marks.txt" ] && tmux capture-pane -p -t "$session" | grep -q 'print(add(1, 2))' && break
    sleep 0.1
  done
  tmux capture-pane -p -t "$session" >"$dir/screen-ghost.txt"
  tmux send-keys -t "$session" Tab
  sleep 0.3
  tmux send-keys -t "$session" Escape ":wq" Enter
  for i in $(seq 1 30); do
    tmux has-session -t "$session" 2>/dev/null || break
    sleep 0.1
  done
  tmux kill-session -t "$session" 2>/dev/null
  {
    echo "== screen with ghost text"
    cat "$dir/screen-ghost.txt"
    echo "== extmarks"
    cat "$dir/marks.txt" 2>/dev/null
    echo "== stderr"
    cat "$dir/stderr.txt" 2>/dev/null
    echo "== file"
    cat "$dir/add.py"
  } >"$LOGS/nvim012.log"
  local ok=1
  if grep -q 'enabled=true' "$dir/marks.txt" 2>/dev/null && grep -q 'print(add(1, 2))' "$dir/marks.txt"; then
    echo "    ok   ghost text is an extmark in nvim.lsp.inline_completion"
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
    pass nvim012 "$("$root/usr/bin/nvim" --version | head -1 | cut -d' ' -f2), $((SECONDS - start)) s"
  else
    fail nvim012 "ghost text in Neovim 0.12" "$LOGS/nvim012.log"
  fi
}
nvim012_check
