#!/usr/bin/env python3
"""Turns a raw capture (capture_server.py's output) into a committed fixture.

Machine-specific values become placeholders: the workspace path (in paths and file URIs, wherever it
occurs) becomes `$WORKSPACE` and its folder name `$WORKSPACE_NAME`, any other path under the capture
directory becomes `$CAPTURE_DIR`, and `processId` becomes null (the tests fill in their own).
Fails if a machine path is left.

Usage: normalize_capture.py RAW.json FIXTURE.json --editor "Neovim 0.7.2" --workspace DIR
"""

import argparse
import json
import os
import re
import sys
import urllib.parse


def replace_strings(value, replace):
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, list):
        return [replace_strings(v, replace) for v in value]
    if isinstance(value, dict):
        return {k: replace_strings(v, replace) for k, v in value.items()}
    return value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("fixture")
    parser.add_argument("--editor", required=True)
    parser.add_argument("--workspace", required=True)
    args = parser.parse_args()

    with open(args.raw, encoding="utf-8") as f:
        raw = json.load(f)
    if not isinstance(raw.get("initialize"), dict):
        sys.exit(f"{args.raw}: no initialize params recorded")

    workspace = os.path.realpath(args.workspace)
    capture_dir = os.path.dirname(workspace)
    name = os.path.basename(workspace)
    pairs = [
        (workspace, "$WORKSPACE"),
        (urllib.parse.quote(workspace), "$WORKSPACE"),
        (capture_dir, "$CAPTURE_DIR"),
        (urllib.parse.quote(capture_dir), "$CAPTURE_DIR"),
    ]

    def replace(text):
        if text == name:
            return "$WORKSPACE_NAME"
        for old, new in pairs:
            text = text.replace(old, new)
        return text

    params = replace_strings(raw["initialize"], replace)
    if "processId" in params:
        params["processId"] = None
    fixture = {
        "editor": args.editor,
        "initialize": params,
        "initialized": raw.get("initialized"),
        "didChangeConfiguration": replace_strings(raw.get("didChangeConfiguration") or [], replace),
    }
    text = json.dumps(fixture, indent=2, sort_keys=True) + "\n"
    leftover = re.findall(r"/(?:tmp|home|root)/[^\"]*", text)
    if leftover:
        sys.exit(f"{args.raw}: machine paths left after normalizing: {leftover[:5]}")
    with open(args.fixture, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
