# Helix 25.01 (Debian trixie's hx in a private root) driven in tmux: the shipped languages.toml
# starts glint next to the language's own server, a completion item (C-x) is accepted, and the
# saved file holds the suggested text; Glint code actions picked from `Space a` (the doc comment,
# the rewrite) are applied and saved. Sourced by editors/test.sh.
# shellcheck source=debroot.sh
. "$EDITORS/tests/debroot.sh"

# Completion requests Helix has sent to glint and not yet had answered, read from the wire as a
# recording shim saw it (IN: what glint read, OUT: what it wrote; Helix's own log is written late).
hx_in_flight() { # IN OUT
  python3 - "$EDITORS/tests" "$1" "$2" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from final_answer import messages
sent = {m["id"] for m in messages(sys.argv[2]) if m.get("method") == "textDocument/completion"}
answered = {m.get("id") for m in messages(sys.argv[3]) if "method" not in m}
print(len(sent - answered))
PY
}

# Waits up to 5 s until Helix's statusline shows MODE (NOR, INS, SEL) on the screen of SESSION.
hx_wait_mode() { # SESSION MODE
  local i
  for i in $(seq 1 50); do
    tmx capture-pane -p -t "$1" | grep -qE "^ $2 " && return 0
    sleep 0.1
  done
  return 1
}

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
  # Tab selects (and inserts) the first item; Escape leaves insert mode keeping it; then save once
  # Helix shows normal mode.
  tmx send-keys -t "$session" Tab
  sleep 0.3
  tmx send-keys -t "$session" Escape
  hx_wait_mode "$session" NOR
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

# Typing as people do: in the body of `average`, type `return total` one key every 100 ms; Helix asks
# by itself after each key (config.toml), the server drops the stale requests (Helix never cancels),
# and the menu's AI item reads as the text it inserts. Tab takes it, `:write` saves exactly that line.
#
# Helix ignores the automatic trigger of a key typed while one of its completion requests is in
# flight (CompletionHandler::handle_event keeps no trigger while `in_flight` is set; the next key
# asks again). When that key is the last one, Helix never asks for the final text by itself: the
# menu does not come, as if the key was lost. So before the last key the harness waits until Helix
# has no completion request in flight (read from its log), then checks that Helix asks by itself.
# The time from the last key to the first AI item on screen and to the item of the server's final
# answer (read from the wire by a recording shim) is printed.
#
# With READ_MENU set, the user reads the menu before the last key: the harness types `a` with no
# request in flight too, waits until the AI item for `tota` is on screen, then types `l`. Helix
# 25.01 keeps a menu open and filters it while an item still matches what is typed, asking again
# only once it is empty; so the item for `tota` must stop matching `total` unless it goes on with
# `l` (the server filters items by the word they complete), or the menu shows a stale item and
# Helix never asks for the final text.
# Usage: helix_typing NAME GLINT_BINARY ENGINE_ARGS SETTINGS EXPECTED_LABEL [READ_MENU]
#   ENGINE_ARGS: extra `glint lsp` arguments (TOML list items); SETTINGS: extra settings (TOML);
#   EXPECTED_LABEL: what the AI item must read, or "" for any (the real model's).
helix_typing() {
  local name="$1" bin="$2" engine_args="$3" settings="$4" expected_label="$5" read_menu="${6:-}"
  local root="$CACHE/helix-25.01" hx
  hx="$root/usr/lib/hx/hx"
  if ! HELIX_RUNTIME="$root/usr/lib/hx/runtime" "$hx" --version 2>/dev/null | grep -q '^helix 25\.01'; then
    skip "$name" "Helix 25.01 is not installed (the helix check installs it)"
    return
  fi
  local dir="$WORK/$name" start=$SECONDS session="glint-$name-$$" i key
  mkdir -p "$dir/config/helix" "$dir/home"
  printf '#!/bin/sh\ntee -a %s | %s "$@" | tee -a %s\n' "'$dir/in.log'" "'$bin'" "'$dir/out.log'" >"$dir/glint-shim"
  chmod +x "$dir/glint-shim"
  sed -e "s|^command = \"glint\"|command = \"$dir/glint-shim\"|" \
    -e "s|^args = \\[\"lsp\"\\]|args = [\"lsp\"$engine_args]|" \
    -e "s|engine = \"local\" }|engine = \"local\"$settings }|" \
    "$EDITORS/helix/languages.toml" >"$dir/config/helix/languages.toml"
  cp "$EDITORS/helix/config.toml" "$dir/config/helix/config.toml"
  printf 'def average(numbers):\n    total = sum(numbers)\n    \n' >"$dir/mean.py"
  printf 'def average(numbers):\n    total = sum(numbers)\n    return total\n' >"$dir/typed.py"
  printf 'def average(numbers):\n    total = sum(numbers)\n    return tota\n' >"$dir/typed-tota.py"
  tmx kill-session -t "$session" 2>/dev/null
  tmx new-session -d -s "$session" -x 120 -y 30 \
    "cd '$dir' && env HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' HELIX_RUNTIME='$root/usr/lib/hx/runtime' '$hx' -v --log '$dir/helix.log' mean.py:3"
  for i in $(seq 1 100); do
    grep -q '"serverInfo"' "$dir/helix.log" 2>/dev/null && break
    sleep 0.1
  done
  # Reading for a moment, as people do (and a local model loads).
  sleep 3
  tmx send-keys -t "$session" A
  hx_wait_mode "$session" INS
  local typed=0 waited=0
  for key in r e t u r n ' ' t o t a l; do
    typed=$((typed + 1))
    [ $typed -gt 1 ] && sleep 0.1
    # The last key: not while a completion request is in flight (see above). The 100 ms since the
    # previous key are more than Helix's debounce (completion-timeout, 50 ms), so the request that
    # key may start has been sent by now.
    while { [ $typed -eq 12 ] || { [ $typed -eq 11 ] && [ -n "$read_menu" ]; }; } &&
      [ "$(hx_in_flight "$dir/in.log" "$dir/out.log")" != 0 ] && [ $waited -lt 200 ]; do
      sleep 0.05
      waited=$((waited + 1))
    done
    if [ $typed -eq 12 ] && [ -n "$read_menu" ]; then
      for i in $(seq 1 60); do
        tmx capture-pane -p -t "$session" | sed -n '4,$p' | grep -q ' snippet' && break
        sleep 0.05
      done
      tmx capture-pane -p -t "$session" >"$dir/screen-before-last.txt"
    fi
    tmx send-keys -t "$session" -l "$key"
  done
  local typed_ms first_ms="" final_ms="" answer="" label="" screen now through kept_through=""
  # A completion request at the end of `return total`, as Helix logs it.
  local after_last='"position":{"character":16,"line":2}'
  typed_ms=$(date +%s%3N)
  # The screen every 50 ms: the first AI item (Glint's items are snippets; Python has no other
  # server here), then the item of the final answer.
  for i in $(seq 1 400); do
    screen="$(tmx capture-pane -p -t "$session")"
    now=$(date +%s%3N)
    if [ -z "$first_ms" ] && sed -n '4,$p' <<<"$screen" | grep -q ' snippet'; then
      first_ms=$((now - typed_ms))
    fi
    if [ -n "$first_ms" ] && [ -z "$answer" ]; then
      answer="$(python3 "$EDITORS/tests/final_answer.py" --completion "$dir/in.log" "$dir/out.log" 2 16 "$dir/typed.py")"
      # Not asked again after a second: Helix kept the item answered for `tota`. That is right
      # only when it goes on with `l` (its filter text is `total`); then it is the final answer.
      if [ -z "$answer" ] && [ $((now - typed_ms)) -gt 1000 ] &&
        ! grep -q "$after_last" "$dir/helix.log"; then
        through="$(python3 "$EDITORS/tests/final_answer.py" --completion "$dir/in.log" "$dir/out.log" 2 15 "$dir/typed-tota.py")"
        if [ -n "$through" ] && [ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["filter"])' "$through")" = total ]; then
          answer="$through"
          kept_through=1
        fi
      fi
      [ -n "$answer" ] && label="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["label"])' "$answer")"
    fi
    if [ -n "$label" ] && grep -qF -- "$label" <<<"$screen"; then
      final_ms=$((now - typed_ms))
      break
    fi
    sleep 0.05
  done
  # A kept item was on screen from the first look; the wait above was only to be sure.
  [ -n "$kept_through" ] && [ -n "$final_ms" ] && final_ms="$first_ms"
  printf '%s\n' "$screen" >"$dir/screen-menu.txt"
  local expected_line=""
  if [ -n "$answer" ]; then
    python3 -c 'import json,sys; sys.stdout.write(json.loads(sys.argv[1])["file"])' "$answer" >"$dir/expected.py"
    expected_line="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["line"])' "$answer")"
  fi
  tmx send-keys -t "$session" Tab
  # Tab shows the item's text in the line; then Escape, and :write once Helix is back in normal mode.
  for i in $(seq 1 30); do
    tmx capture-pane -p -t "$session" | grep -qF -- "${expected_line#    }" && break
    sleep 0.1
  done
  tmx send-keys -t "$session" Escape
  hx_wait_mode "$session" NOR
  tmx send-keys -t "$session" ":write" Enter
  for i in $(seq 1 30); do
    # Helix saves by renaming a new file into place, so the file may be missing for a moment.
    cmp -s "$dir/mean.py" "$dir/expected.py" 2>/dev/null && break
    sleep 0.1
  done
  tmx send-keys -t "$session" ":quit!" Enter
  sleep 0.2
  tmx kill-session -t "$session" 2>/dev/null
  cp "$dir/helix.log" "$LOGS/$name.log" 2>/dev/null
  {
    echo "== screen with the completion menu"
    cat "$dir/screen-menu.txt"
    echo "== final answer"
    echo "$answer"
    echo "== file"
    cat "$dir/mean.py"
  } >>"$LOGS/$name.log"
  local ok=1 asked asked_last
  asked="$(grep -c '"method":"textDocument/completion"' "$dir/helix.log")"
  asked_last="$(grep '"method":"textDocument/completion"' "$dir/helix.log" | grep -c "$after_last")"
  echo "    timing last key to first AI item ${first_ms:--} ms, to the final answer's item ${final_ms:--} ms (waited $((waited * 50)) ms for Helix's request in flight before the last key)"
  if [ "$asked" -ge 2 ] && [ "$asked_last" -ge 1 ]; then
    echo "    ok   Helix asked by itself while typing ($asked completion requests), also after the last key"
  elif [ "$asked" -ge 2 ] && [ -n "$kept_through" ]; then
    echo "    ok   Helix asked by itself while typing ($asked completion requests); after the last key it kept the item for \`tota\`, which goes on with \`l\`"
  else
    echo "    FAIL Helix asked $asked times, $asked_last after the last key"
    ok=0
  fi
  if [ -n "$read_menu" ]; then
    if sed -n '4,$p' "$dir/screen-before-last.txt" | grep -q ' tota.* snippet'; then
      echo "    ok   before the last key, the menu showed the AI item for \`tota\`"
    else
      echo "    FAIL before the last key, no AI item for \`tota\` on screen: $(sed -n '3,6p' "$dir/screen-before-last.txt" | tr -s ' ' | tr '\n' '|')"
      ok=0
    fi
  fi
  if [ -n "$label" ] && grep -qF -- "$label" "$dir/screen-menu.txt" && { [ -z "$expected_label" ] || [ "$label" = "$expected_label" ]; }; then
    echo "    ok   the menu's AI item reads as what it inserts: $label"
  else
    echo "    FAIL no item reading '${expected_label:-${label:-?}}' in the menu (the server's final answer: ${answer:-none})"
    ok=0
  fi
  if [ -n "$answer" ] && cmp -s "$dir/mean.py" "$dir/expected.py"; then
    echo "    ok   Tab takes it and :write saves exactly it"
  else
    echo "    FAIL the saved file is $(head -c 300 "$dir/mean.py" | tr '\n' '|'), not $(head -c 300 "$dir/expected.py" 2>/dev/null | tr '\n' '|')"
    ok=0
  fi
  if [ $ok -eq 1 ]; then
    pass "$name" "$((SECONDS - start)) s"
  else
    fail "$name" "typing in Helix" "$LOGS/$name.log"
  fi
}
# The scripted engine streams its answer 3 characters at a time.
helix_typing helix-typing "$GLINT" ', "--engine", "fake+delay=20: / len(numbers)"' "" "total / len(numbers)"
# The user reads the menu for `tota`, then types `l`: the stale item goes, Helix asks again.
helix_typing helix-typing-read "$GLINT" ', "--engine", "fake+delay=20: / len(numbers)"' "" "total / len(numbers)" 1
# The same, with a suggestion for `tota` that goes on with `l`: typing `l` keeps it, Tab inserts it.
helix_typing helix-typing-through "$GLINT" ', "--engine", "fake+delay=20:l / len(numbers)"' "" "total / len(numbers)" 1
# The real default model (Qwen2.5-Coder 0.5B, a release build if any), when installed; a short answer.
HELIX_MODEL="${GLINT_MODEL:-$HOME/.cache/glint/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}"
if [ -f "$HELIX_MODEL" ]; then
  helix_model_bin="$GLINT"
  [ -x "$CARGO_TARGET_DIR/release/glint" ] && helix_model_bin="$CARGO_TARGET_DIR/release/glint"
  helix_typing helix-typing-model "$helix_model_bin" "" ", model = \"$HELIX_MODEL\", maxTokens = 24" ""
else
  skip helix-typing-model "no model at $HELIX_MODEL (glint model fetch)"
fi

# Code actions in a Rust file: `Space a` opens the menu with Glint's actions; picking one resolves
# it (Helix sends codeAction/resolve, or runs the action's command when that fails) and applies the
# edit; `:write` saves exactly the expected file. The scripted engine answers FAKE to everything.
# Usage: helix_action NAME FAKE POSITION SELECT_KEYS TITLE EXPECTED_FILE
helix_action() {
  local name="$1" fake="$2" position="$3" select_keys="$4" title="$5" expected="$6"
  local root="$CACHE/helix-25.01" hx
  hx="$root/usr/lib/hx/hx"
  if ! HELIX_RUNTIME="$root/usr/lib/hx/runtime" "$hx" --version 2>/dev/null | grep -q '^helix 25\.01'; then
    skip "$name" "Helix 25.01 is not installed (the helix check installs it)"
    return
  fi
  local dir="$WORK/$name" start=$SECONDS session="glint-$name-$$" i
  mkdir -p "$dir/config/helix" "$dir/home"
  sed -e "s|^command = \"glint\"|command = \"$GLINT\"|" \
    -e "s|^args = \\[\"lsp\"\\]|args = [\"lsp\", \"--engine\", \"fake:$fake\"]|" \
    "$EDITORS/helix/languages.toml" >"$dir/config/helix/languages.toml"
  cp "$EDITORS/helix/config.toml" "$dir/config/helix/config.toml"
  printf 'pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n' >"$dir/lib.rs"
  printf '%s' "$expected" >"$dir/expected.rs"
  tmx kill-session -t "$session" 2>/dev/null
  tmx new-session -d -s "$session" -x 120 -y 30 \
    "cd '$dir' && env HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' HELIX_RUNTIME='$root/usr/lib/hx/runtime' '$hx' -v --log '$dir/helix.log' lib.rs:$position"
  for i in $(seq 1 100); do
    grep -q '"serverInfo"' "$dir/helix.log" 2>/dev/null && break
    sleep 0.1
  done
  sleep 0.3
  if [ -n "$select_keys" ]; then
    # shellcheck disable=SC2086 # one key per word
    tmx send-keys -t "$session" $select_keys
    sleep 0.2
  fi
  tmx send-keys -t "$session" Space a
  for i in $(seq 1 50); do
    tmx capture-pane -p -t "$session" | grep -qF "$title" && break
    sleep 0.1
  done
  tmx capture-pane -p -t "$session" >"$dir/screen-menu.txt"
  # The menu lists one action per line; move down to the wanted one and pick it.
  local index
  index="$(grep -o 'Glint: .*' "$dir/screen-menu.txt" | grep -nF "$title" | head -1 | cut -d: -f1)"
  for i in $(seq 2 "${index:-1}"); do
    tmx send-keys -t "$session" Down
    sleep 0.1
  done
  tmx send-keys -t "$session" Enter
  # Wait until the first line the edit adds is on screen.
  local added
  added="$(diff "$dir/lib.rs" "$dir/expected.rs" | grep '^>' | head -1 | cut -c3-)"
  for i in $(seq 1 50); do
    tmx capture-pane -p -t "$session" | grep -qF -- "$added" && break
    sleep 0.1
  done
  tmx capture-pane -p -t "$session" >"$dir/screen-applied.txt"
  tmx send-keys -t "$session" ":write" Enter
  for i in $(seq 1 30); do
    cmp -s "$dir/lib.rs" "$dir/expected.rs" && break
    sleep 0.1
  done
  tmx send-keys -t "$session" ":quit!" Enter
  sleep 0.2
  tmx kill-session -t "$session" 2>/dev/null
  cp "$dir/helix.log" "$LOGS/$name.log" 2>/dev/null
  {
    echo "== screen with the code action menu"
    cat "$dir/screen-menu.txt"
    echo "== screen after picking"
    cat "$dir/screen-applied.txt"
    echo "== file"
    cat "$dir/lib.rs"
  } >>"$LOGS/$name.log"
  local ok=1
  if grep -qF "$title" "$dir/screen-menu.txt"; then
    echo "    ok   Space a lists \"$title\""
  else
    echo "    FAIL \"$title\" is not in the code action menu"
    ok=0
  fi
  if grep -q 'codeAction/resolve' "$dir/helix.log"; then
    echo "    ok   Helix resolved the action (codeAction/resolve)"
  else
    echo "    FAIL Helix sent no codeAction/resolve"
    ok=0
  fi
  if cmp -s "$dir/lib.rs" "$dir/expected.rs"; then
    echo "    ok   the edit is applied and :write saved exactly the expected file"
  else
    echo "    FAIL the saved file is $(head -c 300 "$dir/lib.rs" | tr '\n' '|')"
    ok=0
  fi
  if [ $ok -eq 1 ]; then
    pass "$name" "$((SECONDS - start)) s"
  else
    fail "$name" "a Glint code action in Helix" "$LOGS/$name.log"
  fi
}
# The doc comment action on `add` (cursor on its name).
helix_action helix-actions "Returns the sum." 1:8 "" 'Glint: Write the doc comment of `add`' \
  $'/// Returns the sum.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n'
# The rewrite action on the selection `a + b`: Helix cannot ask for an instruction, so the command
# goes to the server as listed and the server's default rewrite is applied (workspace/applyEdit).
helix_action helix-rewrite "a.wrapping_add(b)" 2:5 "v l l l l" 'Glint: Rewrite the selection' \
  $'pub fn add(a: i32, b: i32) -> i32 {\n    a.wrapping_add(b)\n}\n'
