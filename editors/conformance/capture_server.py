#!/usr/bin/env python3
"""A tiny stdio language server that records what an editor sends when it starts a server.

It writes the `initialize` params, and the `initialized` and `workspace/didChangeConfiguration`
notifications, as one JSON object to the file named by $GLINT_CAPTURE_OUT (rewritten after each
message, so a killed editor still leaves a complete capture). It answers `initialize` with a
minimal result (text document sync only), answers any other request with `null`, and exits on
`exit` (or when stdin closes). Plain Python, no dependencies; arguments are ignored, so an editor
configured to run `glint lsp ...` can run this script instead.
"""

import json
import os
import sys


def read_message(stream):
    """One JSON-RPC message from Content-Length framed input, or None at end of input."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line:
            break
        name, _, value = line.decode("ascii", "replace").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        return None
    body = stream.read(length)
    if len(body) < length:
        return None
    return json.loads(body.decode("utf-8"))


def write_message(stream, message):
    body = json.dumps(message).encode("utf-8")
    stream.write(b"Content-Length: %d\r\n\r\n" % len(body))
    stream.write(body)
    stream.flush()


def save(path, captured):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(captured, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def main():
    out = os.environ.get("GLINT_CAPTURE_OUT", "")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    captured = {"initialize": None, "initialized": None, "didChangeConfiguration": [], "methods": []}
    while True:
        message = read_message(stdin)
        if message is None:
            break
        method = message.get("method")
        has_id = "id" in message
        if method:
            captured["methods"].append(method)
        if method == "initialize":
            captured["initialize"] = message.get("params")
            write_message(
                stdout,
                {
                    "jsonrpc": "2.0",
                    "id": message["id"],
                    "result": {
                        "capabilities": {"textDocumentSync": {"openClose": True, "change": 2}},
                        "serverInfo": {"name": "glint-capture", "version": "0"},
                    },
                },
            )
        elif method == "initialized":
            captured["initialized"] = message.get("params")
        elif method == "workspace/didChangeConfiguration":
            captured["didChangeConfiguration"].append(message.get("params"))
        elif method == "exit":
            save(out, captured)
            return 0
        elif method and has_id:
            write_message(stdout, {"jsonrpc": "2.0", "id": message["id"], "result": None})
        save(out, captured)
    save(out, captured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
