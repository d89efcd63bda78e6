"""The server's final answer to the last inline completion request at a position, from what a
recording shim saw the server read (IN) and write (OUT). Prints JSON {"text", "progress"}, or
nothing while the server has not given it. An early answer (progress for the position that extends
the response follows it) is final only with the progress marked `final`, whose text is then the
answer.
Usage: final_answer.py IN OUT LINE CHARACTER
With --completion (Helix): the AI item of the last textDocument/completion response at the
position, as JSON {"label", "filter", "file", "line"}: its label and filter text, the text of FILE
(as it was when asked) with the item's edit applied, and the edited line.
Usage: final_answer.py --completion IN OUT LINE CHARACTER FILE
"""

import json
import re
import sys


def messages(path):
    try:
        data = open(path, encoding="utf-8", errors="replace", newline="").read()
    except FileNotFoundError:
        return []
    out = []
    for body in re.split(r"Content-Length: \d+\r\n(?:[^\r\n]+\r\n)*\r\n", data):
        try:
            out.append(json.loads(body))
        except ValueError:
            pass
    return out


def at(message, line, character):
    position = message.get("params", {}).get("position", {})
    return position.get("line") == line and position.get("character") == character


def extends(longer, text):
    return len(longer) > len(text) and longer.startswith(text)


def completion(inp, outp, line, character, before):
    asked = [m for m in messages(inp) if m.get("method") == "textDocument/completion" and at(m, line, character)]
    if not asked:
        return
    written = messages(outp)
    response = next((m for m in written if m.get("id") == asked[-1]["id"] and "method" not in m), None)
    if response is None or "error" in response:
        return
    result = response.get("result") or []
    items = result if isinstance(result, list) else result.get("items", [])
    item = next((i for i in items if i.get("detail") == "Glint AI"), None)
    if item is None or "textEdit" not in item:
        return
    edit = item["textEdit"]
    where = edit.get("range") or edit.get("replace")
    lines = open(before, encoding="utf-8").read().split("\n")
    start, end = where["start"], where["end"]
    # ASCII text: LSP characters are string offsets.
    head = "\n".join(lines[: start["line"]] + [lines[start["line"]][: start["character"]]])
    tail = "\n".join([lines[end["line"]][end["character"] :]] + lines[end["line"] + 1 :])
    text = head + edit["newText"] + tail
    line = text.split("\n")[start["line"]]
    print(json.dumps({"label": item["label"], "filter": item.get("filterText"), "file": text, "line": line}))


def main():
    if sys.argv[1] == "--completion":
        completion(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        return
    inp, outp, line, character = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    asked = [m for m in messages(inp) if m.get("method") == "textDocument/inlineCompletion" and at(m, line, character)]
    written = messages(outp)
    progress = sum(1 for m in written if m.get("method") == "glint/inlineCompletionProgress" and at(m, line, character))
    for request in reversed(asked):
        index, response = next(
            (
                (i, m)
                for i, m in enumerate(written)
                if m.get("id") == request["id"] and "method" not in m and ("result" in m or "error" in m)
            ),
            (None, None),
        )
        if response is None:
            return
        if "error" in response:
            continue  # superseded by a later keystroke
        result = response.get("result") or []
        items = result if isinstance(result, list) else result.get("items", [])
        first = items[0].get("insertText", "") if items else ""
        text = first if isinstance(first, str) else first.get("value", "")
        # Progress after the response that extends it (or is final) continues an early answer;
        # one that does not was sent before the response and written after it.
        after = [
            m
            for m in written[index + 1 :]
            if m.get("method") == "glint/inlineCompletionProgress"
            and at(m, line, character)
            and (m["params"].get("final") or extends(m["params"].get("text", ""), text))
        ]
        if after:
            final = next((m for m in after if m["params"].get("final")), None)
            if final is None:
                return  # answered early; the model is still writing
            text = final["params"].get("text", "")
        print(json.dumps({"text": text, "progress": progress}))
        return


if __name__ == "__main__":
    main()
