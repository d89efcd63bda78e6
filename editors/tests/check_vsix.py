"""Checks that a packaged .vsix holds what VS Code needs to run the extension offline."""
import json
import os
import re
import sys
import zipfile

path = sys.argv[1]
with zipfile.ZipFile(path) as vsix:
    names = set(vsix.namelist())
    manifest = json.loads(vsix.read("extension/package.json"))
    readme = vsix.read("extension/readme.md").decode("utf-8") if "extension/readme.md" in names else ""
required = [
    "extension.vsixmanifest",
    "extension/package.json",
    "extension/readme.md",
    "extension/out/extension.js",
    "extension/out/streaming.js",
    "extension/node_modules/vscode-languageclient/package.json",
    "extension/node_modules/vscode-languageclient/lib/node/main.js",
]
missing = [name for name in required if name not in names]
# The README's screenshots are relative links (VS Code resolves them in the installed extension),
# so the images must be packaged next to it.
images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
missing += [f"extension/{image} (an image of the README)" for image in images
            if "://" not in image and f"extension/{image}" not in names]
leaked = sorted(n for n in names if n.startswith("extension/src/") or n.startswith("extension/node_modules/typescript/"))
print(f"{os.path.basename(path)}: {len(names)} files, {os.path.getsize(path) // 1024} KB, v{manifest['version']}")
for name in missing:
    print(f"missing: {name}")
for name in leaked[:5]:
    print(f"should not be packaged: {name}")
if manifest.get("main") != "./out/extension.js":
    print(f"unexpected main: {manifest.get('main')}")
    missing.append("main")
sys.exit(1 if missing or leaked else 0)
