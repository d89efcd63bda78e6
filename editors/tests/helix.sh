# Helix 25.01 (Debian trixie's hx in a private root) driven in tmux: the shipped languages.toml
# starts glint next to the language's own server, a completion item (C-x) is accepted, and the
# saved file holds the suggested text. Sourced by editors/test.sh.
# shellcheck source=debroot.sh
. "$EDITORS/tests/debroot.sh"

helix_check() {
  local root="$CACHE/helix-25.01" hx
  hx="$root/usr/lib/hx/hx"
  if ! HELIX_RUNTIME="$root/usr/lib/hx/runtime" "$hx" --version 2>/dev/null | grep -q '^helix 25\.01'; then
    if ! debroot trixie "$root" hx libc6 libgcc-s1 >"$LOGS/helix-install.log" 2>&1 ||
      ! patch_root_binary "$root" "$hx" >>"$LOGS/helix-install.log" 2>&1; then
      rm -rf "$root"
      skip helix "could not download Helix 25.01 from Debian trixie"
      return
    fi
  fi
  if ! command -v tmux >/dev/null && ! apt_install tmux; then
    skip helix "tmux is not installable here"
    return
  fi
  local dir="$WORK/helix" start=$SECONDS
  local session="glint-hx-$$"
  mkdir -p "$dir/config/helix" "$dir/home"
  # The shipped snippet, pointed at this build and the scripted engine.
  sed -e "s|^command = \"glint\"|command = \"$GLINT\"|" \
    -e 's|^args = \["lsp"\]|args = ["lsp", "--engine", "fake:print(add(1, 2))"]|' \
    "$EDITORS/helix/languages.toml" >"$dir/config/helix/languages.toml"
  cp "$EDITORS/helix/config.toml" "$dir/config/helix/config.toml"
  if ! grep -q "fake:print" "$dir/config/helix/languages.toml"; then
    fail helix "could not point languages.toml at the test server"
    return
  fi
  printf 'def add(a, b):\n    return a + b\n\n' >"$dir/add.py"
  tmx kill-session -t "$session" 2>/dev/null
  tmx new-session -d -s "$session" -x 120 -y 30 \
    "cd '$dir' && env HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' HELIX_RUNTIME='$root/usr/lib/hx/runtime' '$hx' -v --log '$dir/helix.log' add.py:3"
  # Wait until glint has answered initialize.
  local i
  for i in $(seq 1 100); do
    grep -q '"serverInfo"' "$dir/helix.log" 2>/dev/null && break
    sleep 0.1
  done
  sleep 0.3
  tmx send-keys -t "$session" i C-x
  for i in $(seq 1 50); do
    tmx capture-pane -p -t "$session" | grep -q 'print(add(1, 2))' && break
    sleep 0.1
  done
  tmx capture-pane -p -t "$session" >"$dir/screen-menu.txt"
  # Tab selects (and inserts) the first item; Escape leaves insert mode keeping it; then save.
  tmx send-keys -t "$session" Tab
  sleep 0.3
  tmx send-keys -t "$session" Escape
  sleep 0.2
  tmx send-keys -t "$session" ":write" Enter
  for i in $(seq 1 30); do
    grep -q 'print(add(1, 2))' "$dir/add.py" && break
    sleep 0.1
  done
  tmx capture-pane -p -t "$session" >"$dir/screen-saved.txt"
  tmx send-keys -t "$session" ":quit!" Enter
  sleep 0.2
  tmx kill-session -t "$session" 2>/dev/null
  cp "$dir/helix.log" "$LOGS/helix.log" 2>/dev/null
  {
    echo "== screen with the completion menu"
    cat "$dir/screen-menu.txt"
    echo "== file"
    cat "$dir/add.py"
  } >>"$LOGS/helix.log"
  local ok=1
  if grep -q 'glint' "$dir/helix.log" && grep -q '"serverInfo"' "$dir/helix.log"; then
    echo "    ok   glint started by the shipped languages.toml"
  else
    echo "    FAIL glint did not start"
    ok=0
  fi
  if grep -q 'print(add(1, 2))' "$dir/screen-menu.txt"; then
    echo "    ok   the AI item is in the completion menu"
  else
    echo "    FAIL no AI item in the completion menu"
    ok=0
  fi
  if [ "$(sed -n 3p "$dir/add.py")" = "print(add(1, 2))" ]; then
    echo "    ok   accepted and saved: line 3 is print(add(1, 2))"
  else
    echo "    FAIL line 3 of the saved file is '$(sed -n 3p "$dir/add.py")'"
    ok=0
  fi
  if [ $ok -eq 1 ]; then
    pass helix "$((SECONDS - start)) s"
  else
    fail helix "Helix did not complete, accept and save" "$LOGS/helix.log"
  fi
}
helix_check
