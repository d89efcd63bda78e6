//! The model catalog from the command line: `glint model list`, `glint model path NAME`, a catalog
//! name as `--model`, and a fetch started inside a hostile repository, which must not run the
//! repository's `pip/__main__.py` or `sitecustomize.py`. No network: fetches here fail offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use glint_engine::catalog;

const GLINT: &str = env!("CARGO_BIN_EXE_glint-e2e");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("glint-catalog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs glint with `cache` as `XDG_CACHE_HOME`, in `cwd`, with `env` on top.
fn glint(args: &[&str], cache: &Path, cwd: &Path, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(GLINT);
    command.args(args).current_dir(cwd).env("XDG_CACHE_HOME", cache);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run glint");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The cells of the `glint model list` row for `name`.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    let line = table.lines().find(|l| l.split_whitespace().next() == Some(name));
    line.unwrap_or_else(|| panic!("no row for {name} in:\n{table}")).split_whitespace().collect()
}

/// A file of the catalog size but no content: enough for `list` to call it installed.
fn sparse(path: &Path, size: u64) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::File::create(path).and_then(|f| f.set_len(size)).expect("a sparse file");
}

#[test]
fn model_list_shows_the_catalog_the_default_and_what_is_installed() {
    let dir = scratch("list");
    let models = dir.join("glint/models");
    let run = glint(&["model", "list"], &dir, &dir, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let header: Vec<_> = run.stdout.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "LICENCE", "FIM", "INSTALLED", "DEFAULT", "PATH"]);
    // The default's row ends with the marker, whichever model it is.
    let cells = |name: &str, cells: &[&'static str]| {
        let mut cells = cells.to_vec();
        if name == catalog::DEFAULT_MODEL {
            cells.push("*");
        }
        cells
    };
    assert_eq!(
        row(&run.stdout, "qwen2.5-coder-0.5b"),
        cells("qwen2.5-coder-0.5b", &["qwen2.5-coder-0.5b", "491.4", "MB", "Apache-2.0", "yes", "no"])
    );
    assert_eq!(
        row(&run.stdout, "qwen2.5-coder-1.5b"),
        cells("qwen2.5-coder-1.5b", &["qwen2.5-coder-1.5b", "1.12", "GB", "Apache-2.0", "yes", "no"])
    );
    assert_eq!(row(&run.stdout, "smollm2-135m")[3..5], ["Apache-2.0", "no"]);
    // Exactly one row carries the default marker, and it is DEFAULT_MODEL's.
    let marked: Vec<_> = run.stdout.lines().filter(|l| l.split_whitespace().any(|c| c == "*")).collect();
    assert_eq!(marked.len(), 1, "{}", run.stdout);
    assert!(marked[0].starts_with(catalog::DEFAULT_MODEL), "{}", run.stdout);
    assert!(run.stdout.contains("Qwen2.5-Coder, Copyright 2024 Alibaba Cloud, Apache License 2.0"), "{}", run.stdout);
    assert!(run.stdout.contains(&models.display().to_string()), "{}", run.stdout);

    // One model installed, one with an interrupted fetch.
    let qwen = catalog::find("qwen2.5-coder-0.5b").expect("in the catalog");
    sparse(&models.join(qwen.file_name), qwen.size);
    std::fs::create_dir_all(models.join(".qwen2.5-coder-1.5b.parts")).expect("mkdir");
    std::fs::write(models.join(".qwen2.5-coder-1.5b.parts/part-01.bin"), "x").expect("write");
    let run = glint(&["model", "list"], &dir, &dir, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let installed = row(&run.stdout, "qwen2.5-coder-0.5b");
    assert_eq!(installed[5], "yes", "{}", run.stdout);
    assert_eq!(installed.last().copied(), Some(models.join(qwen.file_name).to_str().unwrap_or_default()));
    assert_eq!(row(&run.stdout, "qwen2.5-coder-1.5b")[5..], ["no", "(1/22", "parts)"], "{}", run.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn model_path_names_a_catalog_model_or_the_default() {
    let dir = scratch("path");
    let models = dir.join("glint/models");
    let run = glint(&["model", "path", "qwen2.5-coder-1.5b"], &dir, &dir, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), models.join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").display().to_string());
    let run = glint(&["model", "path"], &dir, &dir, &[]);
    assert_eq!(run.stdout.trim(), models.join(catalog::DEFAULT.file_name).display().to_string());
    let run = glint(&["model", "path", "gpt-5"], &dir, &dir, &[]);
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("no model `gpt-5` in the catalog") && run.stderr.contains("qwen2.5-coder-0.5b"),
        "{}",
        run.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_catalog_name_as_model_resolves_to_its_file_or_says_how_to_fetch_it() {
    let dir = scratch("resolve");
    let source = dir.join("a.py");
    std::fs::write(&source, "def f():\n    \n").expect("write");
    let location = format!("{}:2:5", source.display());
    let args = ["complete", &location, "--engine", "local", "--model", "qwen2.5-coder-0.5b", "--no-fetch"];
    let run = glint(&args, &dir, &dir, &[]);
    assert_ne!(run.code, Some(0));
    // `glint model fetch` alone fetches the default; another model is named.
    let fetch = if catalog::DEFAULT_MODEL == "qwen2.5-coder-0.5b" {
        "run `glint model fetch` to get the default model (qwen2.5-coder-0.5b)"
    } else {
        "run `glint model fetch qwen2.5-coder-0.5b`"
    };
    assert!(run.stderr.contains(fetch), "{}", run.stderr);

    // Once its file is there, the name loads that file (this one is not a real model, so the load
    // fails and the error names the catalog file).
    let qwen = catalog::find("qwen2.5-coder-0.5b").expect("in the catalog");
    let file = dir.join("glint/models").join(qwen.file_name);
    sparse(&file, qwen.size);
    let run = glint(&args, &dir, &dir, &[]);
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains(&file.display().to_string()), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fetch_in_a_hostile_repository_runs_none_of_its_python() {
    let dir = scratch("hostile");
    let repo = dir.join("repo");
    let marker = dir.join("pwned");
    std::fs::create_dir_all(repo.join("pip")).expect("mkdir");
    let payload = format!("open({:?}, 'a').write('ran\\n')\n", marker.display().to_string());
    std::fs::write(repo.join("pip/__main__.py"), &payload).expect("write");
    std::fs::write(repo.join("pip/__init__.py"), "").expect("write");
    std::fs::write(repo.join("sitecustomize.py"), &payload).expect("write");

    // The trap works: a plain `python3 -m pip` started in the repository runs its code.
    match Command::new("python3").args(["-m", "pip", "--version"]).current_dir(&repo).output() {
        Ok(_) if marker.exists() => {}
        Ok(_) => panic!("the hostile pip did not run for a plain `python3 -m pip`; the test proves nothing"),
        Err(_) => {
            println!("SKIP: no python3 here; the hostile repository test needs one");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    }
    std::fs::remove_file(&marker).expect("remove the marker");

    // Offline on purpose: pip finds no package, and the fetch fails cleanly.
    let cache = dir.join("cache");
    let run = glint(&["model", "fetch"], &cache, &repo, &[("PIP_NO_INDEX", "1")]);
    assert!(!marker.exists(), "the repository's Python ran during the fetch: {}", run.stderr);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    let package = catalog::DEFAULT.parts[0].package();
    assert!(run.stderr.contains(package), "the error names the package: {}", run.stderr);
    assert!(run.stderr.contains("part 1/"), "progress names the part: {}", run.stderr);
    assert!(!cache.join("glint/models").join(catalog::DEFAULT.file_name).exists());
    let _ = std::fs::remove_dir_all(&dir);
}
