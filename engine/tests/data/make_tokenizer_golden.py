"""Regenerates a tokenizer golden file: llama.cpp's token ids for code samples in several languages.

Run with a Python that has llama-cpp-python installed, once per tokenizer:
    python3 engine/tests/data/make_tokenizer_golden.py ~/.cache/glint/models/SmolLM2-135M-Instruct.Q4_1.gguf
    python3 engine/tests/data/make_tokenizer_golden.py \
        ~/.cache/glint/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf tokenizer_golden_qwen2.json
"""
import hashlib
import json
import pathlib
import sys

import llama_cpp

SAMPLES = {
    "python": 'def fibonacci(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\n\nprint([fibonacci(i) for i in range(10)])  # 0, 1, 1, 2, 3, 5\n',
    "rust": 'use std::collections::HashMap;\n\nfn main() {\n    let mut counts: HashMap<&str, usize> = HashMap::new();\n    for word in "a b a c".split_whitespace() {\n        *counts.entry(word).or_insert(0) += 1;\n    }\n    println!("{counts:?} {}", 1_000_000u64);\n}\n',
    "javascript": "export async function fetchJson(url, { retries = 3 } = {}) {\n\tfor (let i = 0; i < retries; i++) {\n\t\tconst res = await fetch(url);\n\t\tif (res.ok) return res.json();\n\t}\n\tthrow new Error(`failed after ${retries} tries`);\n}\n",
    "typescript": "interface Point { x: number; y: number }\nconst norm = (p: Point): number => Math.sqrt(p.x ** 2 + p.y ** 2);\ntype Maybe<T> = T | null | undefined;\n",
    "go": 'package main\n\nimport (\n\t"fmt"\n\t"strings"\n)\n\nfunc main() {\n\ts := strings.Repeat("ab", 3)\n\tfmt.Printf("%s %d\\n", s, len(s))\n}\n',
    "c": "#include <stdio.h>\n\nint main(int argc, char **argv) {\n    for (int i = 0; i < argc; ++i) {\n        printf(\"%d: %s\\n\", i, argv[i]);\n    }\n    return 0x7f & 255;\n}\n",
    "java": "public final class Greeter {\n    private static final String NAME = \"Wörld\";\n\n    public static void main(String[] args) {\n        System.out.println(\"Hello, \" + NAME + \"!\");\n    }\n}\n",
    "html": '<!DOCTYPE html>\n<html lang="en">\n  <body class="main">\n    <p>Caf\u00e9 &amp; cr\u00e8me \u2014 \u65e5\u672c\u8a9e \U0001F600</p>\n  </body>\n</html>\n',
    "whitespace_crlf": "if x:\r\n\tpass\r\n\r\n    \n   \n        y = 12345678901234567890\n",
    "special_looking_text": "text = '<|endoftext|>' + \"<|im_start|>user\" + '<fim_prefix>' + '<|fim_middle|>'\n",
    "numbers_and_unicode": "let π = 3.14159_26535; // über à la carte, 中文, 🚀 x1000000 0xDEADBEEF\n",
}


def main() -> None:
    path = pathlib.Path(sys.argv[1])
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    cases = []
    for name, text in SAMPLES.items():
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        cases.append({"name": name, "text": text, "ids": ids})
    golden = {
        "model": path.name,
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "generator": f"llama-cpp-python {llama_cpp.__version__}, tokenize(add_bos=False, special=False)",
        "cases": cases,
    }
    out = pathlib.Path(__file__).with_name(sys.argv[2] if len(sys.argv) > 2 else "tokenizer_golden.json")
    out.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
