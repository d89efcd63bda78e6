//! Synthetic but realistic source files of a given size, for benchmarks.

/// About `lines` lines of plausible code in `language` (`rust`, `python`, `typescript`).
pub fn source(language: &str, lines: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.lines().count() < lines {
        out.push_str(&unit(language, i));
        i += 1;
    }
    out
}

fn unit(language: &str, i: usize) -> String {
    match language {
        "rust" => format!(
            "/// Computes the weighted score of item {i}.\npub fn score_{i}(items: &[Item], weight: f64) -> Option<f64> {{\n    let mut total = 0.0;\n    for item in items.iter().filter(|it| it.id % {m} == 0) {{\n        total += item.value * weight + {i} as f64;\n    }}\n    if total > 0.0 {{ Some(total) }} else {{ None }}\n}}\n\n",
            m = i % 7 + 1
        ),
        "python" => format!(
            "def score_{i}(items, weight=1.0):\n    \"\"\"Computes the weighted score of item {i}.\"\"\"\n    total = 0.0\n    for item in items:\n        if item.id % {m} == 0:\n            total += item.value * weight + {i}\n    return total if total > 0 else None\n\n\n",
            m = i % 7 + 1
        ),
        _ => format!(
            "/** Computes the weighted score of item {i}. */\nexport function score{i}(items: Item[], weight: number = 1): number | undefined {{\n  let total = 0;\n  for (const item of items.filter((it) => it.id % {m} === 0)) {{\n    total += item.value * weight + {i};\n  }}\n  return total > 0 ? total : undefined;\n}}\n\n",
            m = i % 7 + 1
        ),
    }
}
