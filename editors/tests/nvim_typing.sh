# Typing in Neovim's TUI (tmux), the way users meet streaming: open sign.py, wait 5 s as a reader
# does, type `if n` one key every 100 ms in the empty body of `sign`, and let the ghost text
# settle. It must become the server's final answer for that position (read from the wire by a
# recording shim in front of glint) and stay so; <Tab> must insert exactly it. Prints the time
# from the last key to the first ghost text and to the final text. Sourced by editors/test.sh
# (needs tmx, pass, fail, skip, $WORK, $LOGS, $EDITORS).

# Usage: nvim_typing NAME NVIM MODE VIMRUNTIME GLINT_BINARY SETTINGS_JSON
#   MODE: glint.nvim's ghost_text ('auto': Neovim 0.12's own inline completion; 'plugin').
nvim_typing() {
  local name="$1" nvim="$2" mode="$3" runtime="$4" bin="$5" settings="$6"
  local dir="$WORK/$name" session="glint-$name-$$" start=$SECONDS i key
  rm -rf "$dir"
  mkdir -p "$dir/home"
  printf 'def sign(n):\n    \n\n\nprint(sign(-2))\n' >"$dir/sign.py"
  printf '#!/bin/sh\ntee -a %s | %s "$@" | tee -a %s\n' "'$dir/in.log'" "'$bin'" "'$dir/out.log'" >"$dir/glint-shim"
  chmod +x "$dir/glint-shim"
  tmx kill-session -t "$session" 2>/dev/null
  tmx new-session -d -s "$session" -x 100 -y 20 \
    "cd '$dir' && env -u VIMRUNTIME HOME='$dir/home' XDG_CONFIG_HOME='$dir/config' XDG_DATA_HOME='$dir/data' XDG_STATE_HOME='$dir/state' ${runtime:+VIMRUNTIME='$runtime'} GLINT_GHOST='$mode' GLINT_CMD='$dir/glint-shim lsp' GLINT_SETTINGS='$settings' GLINT_EDITORS='$EDITORS' GLINT_WORK='$dir' '$nvim' -i NONE -n -u '$EDITORS/tests/nvim_typing_init.lua' sign.py 2>'$dir/stderr.txt'"
  for i in $(seq 1 100); do
    [ -s "$dir/attached.txt" ] && break
    sleep 0.1
  done
  # Into the empty body of `sign`, then read for a while as people do.
  tmx send-keys -t "$session" 2G A
  sleep 5
  local typed_ms
  for key in i f ' ' n; do
    [ -n "${typed_ms:-}" ] && sleep 0.1
    tmx send-keys -t "$session" -l "$key"
    typed_ms=$(date +%s%3N)
  done
  local answer="" shown=""
  for i in $(seq 1 150); do
    answer="$(python3 "$EDITORS/tests/final_answer.py" "$dir/in.log" "$dir/out.log" 1 8)"
    shown="$(tail -n 1 "$dir/ghosts.txt" 2>/dev/null | cut -f2-)"
    if [ -n "$answer" ] && python3 -c 'import json,sys; s=lambda t: "".join(t.split()); sys.exit(0 if s(json.loads(sys.argv[1])["text"]) == s(json.loads(sys.argv[2])) else 1)' "$answer" "${shown:-\"\"}"; then
      break
    fi
    sleep 0.1
  done
  # A stale text must not come back.
  sleep 1.5
  # An early answer's final text may have come meanwhile.
  answer="$(python3 "$EDITORS/tests/final_answer.py" "$dir/in.log" "$dir/out.log" 1 8)"
  tmx capture-pane -p -t "$session" >"$dir/screen-ghost.txt"
  local tab_ms
  tab_ms=$(date +%s%3N)
  tmx send-keys -t "$session" Tab
  sleep 0.3
  tmx send-keys -t "$session" Escape ":wq" Enter
  for i in $(seq 1 30); do
    tmx has-session -t "$session" 2>/dev/null || break
    sleep 0.1
  done
  tmx kill-session -t "$session" 2>/dev/null
  python3 - "$dir" "$typed_ms" "$tab_ms" "${answer:-null}" <<'PY' >"$dir/verdict.txt"
import json, sys
dir, typed, tab, answer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) - int(sys.argv[2]), json.loads(sys.argv[4])
ghosts = []
for line in open(f"{dir}/ghosts.txt"):
    at, text = line.rstrip("\n").split("\t", 1)
    ghosts.append((int(at) - typed, json.loads(text)))
squash = lambda t: "".join(t.split())
# From the last key to <Tab>; what was on screen before the last key belongs to earlier requests.
after = [(t, g) for t, g in ghosts if 0 <= t < tab]
before_tab = [g for t, g in ghosts if t < tab]
first = next((t for t, g in after if g), None)
final = answer["text"] if answer else None
final_at = next((t for t, g in after if final and squash(g) == squash(final)), None)
settled = bool(before_tab) and final is not None and squash(before_tab[-1]) == squash(final)
saved = open(f"{dir}/sign.py").read()
want = "def sign(n):\n    if n" + (final or "") + "\n\n\nprint(sign(-2))\n"
print(f"timing last key to first ghost text {first if first is not None else '-'} ms, to the final text "
      f"{final_at if final_at is not None else '-'} ms; {answer['progress'] if answer else 0} streamed updates; "
      f"on screen: {json.dumps([g for _, g in after if g])}")
print(("ok   " if final else "FAIL ") + f"the server answered at the cursor: {json.dumps(final)}")
print(("ok   " if settled else "FAIL ") + "the ghost text settles on the server's final answer")
print(("ok   " if final and saved == want else "FAIL ") + f"<Tab> inserts exactly the final answer: {json.dumps(saved)}")
PY
  sed 's/^/    /' "$dir/verdict.txt"
  {
    cat "$dir/verdict.txt"
    echo "== screen"
    cat "$dir/screen-ghost.txt"
    echo "== ghost text over time (epoch ms)"
    cat "$dir/ghosts.txt"
    echo "== stderr"
    cat "$dir/stderr.txt"
  } >"$LOGS/$name.log"
  if ! grep -q '^FAIL' "$dir/verdict.txt"; then
    pass "$name" "$((SECONDS - start)) s"
  else
    fail "$name" "typing in the Neovim TUI" "$LOGS/$name.log"
  fi
}
