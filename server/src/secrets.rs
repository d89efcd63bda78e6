//! What a remote engine may see. Documents that look like secrets (`.env*`, `*.pem`, `*.key`,
//! `id_rsa*`, `.npmrc`, `credentials*` ...) and files outside the workspace folders never become
//! context for an engine that runs elsewhere: not as the document being completed, not as a
//! snippet of another open document, not as a recent edit.
//!
//! Architecture Invariant: every request path that hands document text to an engine asks one
//! question, [`State::sight`](crate::state::State::sight), for each document the text comes from;
//! request paths get their document's surroundings already filtered by it in a request snapshot,
//! [`State::request_snapshot`](crate::state::State::request_snapshot). In-process engines (`local`,
//! `fake`) see everything; any other engine kind counts as remote.
//!
//! The rules, in order:
//! 1. A path matching a `remoteContext.deny` glob is refused.
//! 2. A path matching a `remoteContext.allow` glob is accepted.
//! 3. A path matching a built-in secret pattern ([`SECRET_PATTERNS`]) is refused.
//! 4. A file outside every workspace folder is refused (when the client named any folder; a client
//!    that opened a single file without a workspace gets the name rules only).
//! 5. Anything else is accepted. Unsaved `untitled:` buffers follow the name rules; other
//!    non-`file:` documents are refused while workspace folders are known.
//!
//! Globs are matched against the file name, the path relative to each workspace folder, and the
//! absolute path (a symbolic link is judged by its target too), so `*.pem`, `config/*.yaml` and
//! `/etc/**` all do what they say; a document of another scheme (`vscode-remote:`, `untitled:`
//! ...) is matched by its name and its whole path the same way. The built-in patterns and `deny`
//! globs ignore case, since macOS and Windows file systems do (`SERVER.KEY` is `server.key`
//! there); `allow` globs match case exactly, so a case mismatch never lets a secret through.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

/// Files never sent to a remote engine unless a `remoteContext.allow` glob names them.
pub const SECRET_PATTERNS: &[&str] = &[
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.crt",
    "*.cer",
    "*.der",
    "*.p8",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.gpg",
    "*.asc",
    "*.ppk",
    "*.ovpn",
    "*.tfstate",
    "*.tfstate.*",
    "*.tfvars",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*_rsa",
    "*_dsa",
    "*_ecdsa",
    "*_ed25519",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".htpasswd",
    ".git-credentials",
    ".dockercfg",
    ".vault-token",
    ".s3cfg",
    "credentials*",
    "application_default_credentials.json",
    "secret.*",
    "secrets.*",
    "*.secret",
    "*.secrets",
    "**/.ssh/**",
    "**/.aws/**",
    "**/.gnupg/**",
    "**/.docker/config.json",
    "**/.kube/config",
    "**/.config/gh/hosts.yml",
];

/// The `remoteContext` setting: globs that widen or narrow what remote engines may see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemoteContext {
    /// Paths remote engines may see although a built-in secret pattern or the workspace rule
    /// would refuse them.
    pub allow: Vec<String>,
    /// Paths remote engines never see; wins over `allow`.
    pub deny: Vec<String>,
}

/// Checks one user glob; the error says what is wrong with it.
pub fn check_glob(pattern: &str) -> Result<(), String> {
    glob(pattern).map(|_| ()).map_err(|e| format!("invalid glob `{pattern}`: {e}"))
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    glob_with_case(pattern, false)
}

fn glob_with_case(pattern: &str, ignore_case: bool) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(false).backslash_escape(true).case_insensitive(ignore_case).build()
}

/// Whether an engine of this kind runs somewhere else, so that context sent to it leaves the
/// machine (or at least the process).
pub fn is_remote(kind: &str) -> bool {
    !matches!(kind, "local" | "fake")
}

/// What one engine may see: everything for an in-process engine, what a [`Policy`] accepts for a
/// remote one.
#[derive(Debug, Clone)]
pub enum Sight {
    Everything,
    Policy(Arc<Policy>),
}

impl Sight {
    /// Accepts `uri`, or says why the engine must not see it.
    pub fn check(&self, uri: &str) -> Result<(), Refusal> {
        match self {
            Sight::Everything => Ok(()),
            Sight::Policy(policy) => policy.check(uri),
        }
    }

    /// Whether text of `uri` may be given to the engine.
    pub fn may_see(&self, uri: &str) -> bool {
        self.check(uri).is_ok()
    }
}

/// Why a document is kept from remote engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It matches this secret pattern or deny glob.
    Secret(String),
    /// It lies outside every workspace folder.
    OutsideWorkspace,
    /// It is not a file of the workspace (another URI scheme, or an unreadable URI).
    NotAWorkspaceFile,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Secret(pattern) => write!(f, "it matches the secret pattern `{pattern}`"),
            Refusal::OutsideWorkspace => f.write_str("it is outside the workspace folders"),
            Refusal::NotAWorkspaceFile => f.write_str("it is not a file of the workspace"),
        }
    }
}

/// The compiled rules for one set of workspace folders and one `remoteContext` setting.
#[derive(Debug)]
pub struct Policy {
    folders: Vec<PathBuf>,
    builtin: Patterns,
    allow: Patterns,
    deny: Patterns,
    /// Set only when even the built-in patterns failed to compile: then nothing is sent.
    refuse_all: bool,
}

#[derive(Debug)]
struct Patterns {
    set: GlobSet,
    names: Vec<String>,
}

impl Patterns {
    fn new<S: AsRef<str>>(patterns: &[S], ignore_case: bool) -> Result<Patterns, String> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            builder.add(glob_with_case(pattern, ignore_case).map_err(|e| format!("invalid glob `{pattern}`: {e}"))?);
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        Ok(Patterns { set, names: patterns.iter().map(|p| p.as_ref().to_string()).collect() })
    }

    /// The first pattern matching any of `candidates`.
    fn find(&self, candidates: &[&Path]) -> Option<&str> {
        candidates
            .iter()
            .find_map(|candidate| self.set.matches(candidate).first().copied())
            .map(|i| self.names[i].as_str())
    }
}

impl Policy {
    /// Rules for these workspace folders (absolute paths) and this setting. Bad globs are an
    /// error naming the glob.
    pub fn new(folders: &[PathBuf], context: &RemoteContext) -> Result<Policy, String> {
        let folders = folders.iter().flat_map(|f| [normalize(f), canonical(f)]).collect::<HashSet<_>>();
        Ok(Policy {
            folders: folders.into_iter().collect(),
            builtin: Patterns::new(SECRET_PATTERNS, true)?,
            allow: Patterns::new(&context.allow, false)?,
            deny: Patterns::new(&context.deny, true)?,
            refuse_all: false,
        })
    }

    fn refusing_everything() -> Policy {
        let empty = || Patterns { set: GlobSet::empty(), names: Vec::new() };
        Policy { folders: Vec::new(), builtin: empty(), allow: empty(), deny: empty(), refuse_all: true }
    }

    /// Whether text of `uri` may be given to a remote engine.
    pub fn may_see(&self, uri: &str) -> bool {
        self.check(uri).is_ok()
    }

    /// Accepts `uri`, or says why a remote engine must not see it.
    pub fn check(&self, uri: &str) -> Result<(), Refusal> {
        if self.refuse_all {
            return Err(Refusal::NotAWorkspaceFile);
        }
        let Ok(url) = url::Url::parse(uri) else {
            return Err(Refusal::NotAWorkspaceFile);
        };
        match url.scheme() {
            "file" => {
                let Ok(path) = url.to_file_path() else {
                    return Err(Refusal::NotAWorkspaceFile);
                };
                let path = normalize(&path);
                self.check_path(&path)?;
                // A link is judged by what it points at as well.
                let target = canonical(&path);
                if target != path { self.check_path(&target) } else { Ok(()) }
            }
            scheme => {
                // The whole path counts, not just the name: `vscode-remote://host/home/u/.ssh/config`
                // is as secret as its `file:` twin.
                let path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy().to_string();
                let path = Path::new(&path);
                let name = path.file_name().map(Path::new);
                let mut candidates: Vec<&Path> = name.into_iter().collect();
                candidates.push(path);
                if let Some(pattern) = self.deny.find(&candidates) {
                    return Err(Refusal::Secret(pattern.to_string()));
                }
                if self.allow.find(&candidates).is_some() {
                    return Ok(());
                }
                if let Some(pattern) = self.builtin.find(&candidates) {
                    return Err(Refusal::Secret(pattern.to_string()));
                }
                if scheme == "untitled" || self.folders.is_empty() { Ok(()) } else { Err(Refusal::NotAWorkspaceFile) }
            }
        }
    }

    fn check_path(&self, path: &Path) -> Result<(), Refusal> {
        let relative: Vec<&Path> = self.folders.iter().filter_map(|f| path.strip_prefix(f).ok()).collect();
        let name = path.file_name().map(Path::new);
        let mut candidates: Vec<&Path> = name.into_iter().collect();
        candidates.extend(relative.iter().copied());
        candidates.push(path);
        if let Some(pattern) = self.deny.find(&candidates) {
            return Err(Refusal::Secret(pattern.to_string()));
        }
        if self.allow.find(&candidates).is_some() {
            return Ok(());
        }
        if let Some(pattern) = self.builtin.find(&candidates) {
            return Err(Refusal::Secret(pattern.to_string()));
        }
        if !self.folders.is_empty() && relative.is_empty() {
            return Err(Refusal::OutsideWorkspace);
        }
        Ok(())
    }
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The path with links resolved, when it exists; the path itself otherwise.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| normalize(path))
}

/// The server's copy of the rules: rebuilt when the workspace folders or the `remoteContext`
/// setting change, and a note of which refusals were already logged.
#[derive(Default)]
pub struct RemoteGuard {
    folders: RwLock<Vec<PathBuf>>,
    compiled: RwLock<Option<Compiled>>,
    logged: Mutex<HashSet<String>>,
}

/// A compiled policy with the setting and folders it was compiled for.
type Compiled = (RemoteContext, Vec<PathBuf>, Arc<Policy>);

impl RemoteGuard {
    /// Sets the workspace folders (absolute paths), from `initialize` and
    /// `workspace/didChangeWorkspaceFolders`.
    pub fn set_folders(&self, folders: Vec<PathBuf>) {
        *self.folders.write() = folders;
    }

    pub fn folders(&self) -> Vec<PathBuf> {
        self.folders.read().clone()
    }

    /// The rules for `context` and the current folders, compiled once per change.
    pub fn policy(&self, context: &RemoteContext) -> Arc<Policy> {
        let folders = self.folders();
        if let Some((c, f, policy)) = &*self.compiled.read()
            && c == context
            && *f == folders
        {
            return Arc::clone(policy);
        }
        // The settings check the globs; should one still fail, the built-in patterns alone apply.
        let policy = Policy::new(&folders, context).unwrap_or_else(|e| {
            tracing::warn!("remoteContext: {e}; using the built-in secret patterns only");
            Policy::new(&folders, &RemoteContext::default()).unwrap_or_else(|_| Policy::refusing_everything())
        });
        let policy = Arc::new(policy);
        *self.compiled.write() = Some((context.clone(), folders, Arc::clone(&policy)));
        policy
    }

    /// Logs, once per document, that a remote engine gets nothing from `uri`.
    pub fn log_refusal(&self, uri: &str, why: &Refusal) {
        if self.logged.lock().insert(uri.to_string()) {
            tracing::info!(uri, "no completion from the remote engine here: {why}; its text is never sent");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> Policy {
        let context = RemoteContext {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        Policy::new(&[PathBuf::from("/ws/app")], &context).unwrap()
    }

    #[test]
    fn secret_files_are_refused_and_ordinary_workspace_files_accepted() {
        let p = policy(&[], &[]);
        for uri in [
            "file:///ws/app/.env",
            "file:///ws/app/.env.local",
            "file:///ws/app/config/prod.env",
            "file:///ws/app/certs/server.pem",
            "file:///ws/app/tls/server.key",
            "file:///ws/app/id_rsa",
            "file:///ws/app/keys/id_ed25519.pub",
            "file:///ws/app/store.p12",
            "file:///ws/app/.npmrc",
            "file:///ws/app/.netrc",
            "file:///ws/app/credentials.json",
            "file:///ws/app/home/.ssh/config",
            "file:///ws/app/.aws/credentials",
        ] {
            assert!(matches!(p.check(uri), Err(Refusal::Secret(_))), "{uri} should be refused");
        }
        for uri in ["file:///ws/app/src/main.rs", "file:///ws/app/README.md", "file:///ws/app/env.rs"] {
            assert_eq!(p.check(uri), Ok(()), "{uri} should be accepted");
        }
    }

    #[test]
    fn secrets_are_found_whatever_their_case_and_scheme() {
        let p = policy(&[], &["*.SQL"]);
        for uri in [
            "file:///ws/app/Secrets.yaml",
            "file:///ws/app/Credentials.json",
            "file:///ws/app/tls/SERVER.KEY",
            "file:///ws/app/.ENV",
            "file:///ws/app/home/.SSH/config",
            "file:///ws/app/db/schema.sql",
            "file:///ws/app/putty/deploy.ppk",
            "file:///ws/app/keys/signing.asc",
            "file:///ws/app/keys/host_ecdsa",
            "file:///ws/app/keys/host_dsa",
            "file:///ws/app/gcloud/application_default_credentials.json",
            "file:///ws/app/.vault-token",
            "file:///ws/app/.s3cfg",
            "vscode-remote://ssh-remote%2Bhost/home/u/.ssh/config",
            "vscode-remote://ssh-remote%2Bhost/home/u/.aws/config",
            "untitled:Secrets.yaml",
        ] {
            assert!(matches!(p.check(uri), Err(Refusal::Secret(_))), "{uri} should be refused");
        }
        // Allow globs match case exactly: a differently cased secret stays refused.
        let p = policy(&["fixtures/*.pem"], &[]);
        assert_eq!(p.check("file:///ws/app/fixtures/test.pem"), Ok(()));
        assert!(p.check("file:///ws/app/FIXTURES/test.PEM").is_err());
    }

    #[test]
    fn files_outside_the_workspace_are_refused() {
        let p = policy(&[], &[]);
        assert_eq!(p.check("file:///etc/hosts"), Err(Refusal::OutsideWorkspace));
        assert_eq!(p.check("file:///ws/application/x.rs"), Err(Refusal::OutsideWorkspace));
        assert_eq!(p.check("file:///ws/app/../other/x.rs"), Err(Refusal::OutsideWorkspace));
        assert_eq!(p.check("file:///ws/app/src/../lib.rs"), Ok(()));
        assert_eq!(p.check("git:///ws/app/x.rs"), Err(Refusal::NotAWorkspaceFile));
        assert_eq!(p.check("not a uri"), Err(Refusal::NotAWorkspaceFile));
        assert_eq!(p.check("untitled:Untitled-1"), Ok(()));
        assert!(matches!(p.check("untitled:.env"), Err(Refusal::Secret(_))));
    }

    #[test]
    fn without_workspace_folders_only_the_name_rules_apply() {
        let p = Policy::new(&[], &RemoteContext::default()).unwrap();
        assert_eq!(p.check("file:///tmp/scratch.py"), Ok(()));
        assert!(matches!(p.check("file:///tmp/.env"), Err(Refusal::Secret(_))));
    }

    #[test]
    fn allow_widens_and_deny_narrows_and_deny_wins() {
        let p = policy(
            &["*.example.env", "/usr/include/**", "fixtures/*.pem"],
            &["generated/**", "*.sql", "x.example.env"],
        );
        assert_eq!(p.check("file:///ws/app/.env"), Err(Refusal::Secret(".env".into())));
        assert_eq!(p.check("file:///ws/app/sample.example.env"), Ok(()));
        assert_eq!(p.check("file:///ws/app/fixtures/test.pem"), Ok(()));
        assert!(p.check("file:///ws/app/certs/test.pem").is_err());
        assert_eq!(p.check("file:///usr/include/stdio.h"), Ok(()));
        assert_eq!(p.check("file:///ws/app/generated/api.rs"), Err(Refusal::Secret("generated/**".into())));
        assert_eq!(p.check("file:///ws/app/db/schema.sql"), Err(Refusal::Secret("*.sql".into())));
        assert_eq!(p.check("file:///ws/app/x.example.env"), Err(Refusal::Secret("x.example.env".into())));
    }

    #[test]
    fn percent_encoded_names_are_decoded_before_matching() {
        let p = policy(&[], &[]);
        assert!(p.check("file:///ws/app/%2Eenv").is_err());
        assert!(p.check("file:///ws/app/my%20keys/id_rsa").is_err());
        assert_eq!(p.check("file:///ws/app/my%20code/a.rs"), Ok(()));
    }

    #[test]
    fn bad_globs_are_named() {
        assert!(check_glob("src/[").unwrap_err().contains("src/["));
        assert!(check_glob("**/*.rs").is_ok());
        let bad = RemoteContext { allow: vec!["{a".into()], deny: vec![] };
        assert!(Policy::new(&[], &bad).unwrap_err().contains("{a"));
    }

    #[test]
    fn only_in_process_engines_count_as_local() {
        assert!(!is_remote("local"));
        assert!(!is_remote("fake"));
        assert!(is_remote("http"));
        assert!(is_remote("ws"));
    }

    #[test]
    fn the_guard_recompiles_when_the_setting_or_the_folders_change() {
        let guard = RemoteGuard::default();
        let open = RemoteContext::default();
        assert!(guard.policy(&open).may_see("file:///anywhere/a.rs"));
        guard.set_folders(vec![PathBuf::from("/ws")]);
        assert!(!guard.policy(&open).may_see("file:///anywhere/a.rs"));
        let allow = RemoteContext { allow: vec!["/anywhere/**".into()], deny: vec![] };
        assert!(guard.policy(&allow).may_see("file:///anywhere/a.rs"));
    }
}
