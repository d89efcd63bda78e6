//! Glint's settings: one schema, read from `initializationOptions` and
//! `workspace/didChangeConfiguration`, with errors that name the bad key.
//!
//! Keys (camelCase; also accepted nested under a `glint` object, as VS Code sends them):
//! `engine`, `model`, `contextTokens`, `maxTokens`, `debounceMs`, `languages`, `logLevel`,
//! `completionItems`, `streaming`, `earlyAnswerMs`, `approximateKvReuse`, `nextEditModel`, `threads`, `fallback`, `api`, `fim`, `apiKeyEnv`,
//! `remoteContext`. The README's Configuration section documents them.

use std::collections::BTreeMap;

use glint_engine::HttpApi;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Effective settings. `Default` is what a user gets with no configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Which engine answers (see [`EngineSpec`]).
    pub engine: EngineSpec,
    /// The local engine's model: a catalog name (`glint model list`; fetched on first use) or a
    /// GGUF file's path, `None` meaning the default model; for an HTTP engine, the API's `model`
    /// field.
    pub model: Option<String>,
    /// Prompt budget in model tokens.
    pub context_tokens: u32,
    /// The most tokens one completion may generate.
    pub max_tokens: u32,
    /// Base debounce for automatic completion triggers, in milliseconds. Off by default: with the
    /// KV prefix cache a keystroke costs one short prefill and a newer keystroke cancels within a
    /// decode step, so waiting only adds latency (the typing replay measured first ghost text
    /// p50 18 ms without debounce against 35 ms with an 8 ms base and 66 ms with 25 ms).
    pub debounce_ms: u64,
    /// Per-language switches by LSP `languageId`; languages not listed are on.
    pub languages: BTreeMap<String, bool>,
    /// How much is logged (see [`LogLevel`]).
    pub log_level: LogLevel,
    /// Offer AI completions as `textDocument/completion` items (for clients without inline completion).
    pub completion_items: bool,
    /// Send `glint/inlineCompletionProgress` notifications with partial text.
    pub streaming: bool,
    /// An automatic inline completion is answered this long after its request with the text the
    /// model has written so far (when there is any), instead of at the model's end; the model goes
    /// on in the background, keystrokes that type its text do not stop it, and the client gets the
    /// rest as progress. Only with `streaming` on; 0 answers only at the end.
    pub early_answer_ms: u64,
    /// Let the local engine reuse the KV cache of text that moved after an edit above it (a RoPE
    /// shift); off, every answer equals a fresh prefill's.
    pub approximate_kv_reuse: bool,
    /// Ask the model for next-edit predictions the rules do not make (`glint/nextEdit`). Off by
    /// default: on a small CPU the model's rewrite of the region around the cursor takes seconds
    /// and shares the engine with completions.
    pub next_edit_model: bool,
    /// Threads for the local engine; `None` means one per physical core.
    pub threads: Option<u32>,
    /// How the context window is built and the answer cut (see [`ContextStrategy`]).
    pub context_strategy: ContextStrategy,
    /// What a `ws://`/`wss://` engine does while disconnected (see [`Fallback`]).
    pub fallback: Fallback,
    /// The HTTP engine's API: `openai-completions`, `llama-infill` or `ollama`.
    #[serde(serialize_with = "serialize_api")]
    pub api: HttpApi,
    /// The FIM template family the HTTP engine renders prompts with (see [`Fim`]).
    pub fim: Fim,
    /// The environment variable holding the HTTP engine's API key (sent as a bearer token).
    pub api_key_env: String,
    /// Globs that widen or narrow what remote engines may see (see `secrets`).
    pub remote_context: crate::secrets::RemoteContext,
}

/// How a completion's context is built and its answer cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContextStrategy {
    /// Tree-sitter context (syntactic window, headers, snippets) and Glint's post-processing.
    #[default]
    Syntax,
    /// The evaluation baseline peers use: the text around the cursor cut by characters, raw model
    /// text with no cut at all.
    Naive,
    /// The strongest simple baseline (llama.vscode's): the last 256 lines of prefix and the first
    /// 64 of suffix in the model's FIM template, greedy, at most 128 tokens, cut at a generated
    /// line indented less than the cursor's line or repeating the suffix's first non-blank line.
    PlainFim,
}

impl ContextStrategy {
    /// The setting's values, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["syntax", "naive", "plain-fim"];

    pub fn parse(name: &str) -> Option<ContextStrategy> {
        match name {
            "syntax" => Some(ContextStrategy::Syntax),
            "naive" => Some(ContextStrategy::Naive),
            "plain-fim" => Some(ContextStrategy::PlainFim),
            _ => None,
        }
    }
}

/// The `engine` setting: which engine answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EngineSpec {
    /// The in-process engine (`local`, the default).
    #[default]
    Local,
    /// `glint engine serve` at this `ws://` or `wss://` URL.
    Ws(String),
    /// An OpenAI-compatible, llama.cpp `/infill` or Ollama server at this `http://` or `https://`
    /// URL.
    Http(String),
    /// The scripted engine for tests, the whole value (`fake:TEXT`, `fake+delay=MS:TEXT` ...).
    Fake(String),
}

impl EngineSpec {
    /// Parses a value of the setting (or of `--engine`); the error says what is expected.
    pub fn parse(spec: &str) -> Result<EngineSpec, String> {
        let has_prefix = |prefixes: &[&str]| prefixes.iter().any(|p| spec.starts_with(p));
        if spec == "local" {
            Ok(EngineSpec::Local)
        } else if has_prefix(&["ws://", "wss://"]) {
            Ok(EngineSpec::Ws(spec.to_string()))
        } else if has_prefix(&["http://", "https://"]) {
            Ok(EngineSpec::Http(spec.to_string()))
        } else if has_prefix(&["fake:", "fake+"]) {
            Ok(EngineSpec::Fake(spec.to_string()))
        } else {
            Err(format!("expected `local`, `ws://…`, `wss://…` or `http(s)://…`, got `{spec}`"))
        }
    }

    /// The value as the user wrote it.
    pub fn as_str(&self) -> &str {
        match self {
            EngineSpec::Local => "local",
            EngineSpec::Ws(spec) | EngineSpec::Http(spec) | EngineSpec::Fake(spec) => spec,
        }
    }
}

/// What a `ws://`/`wss://` engine does while disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Requests fail at once (`none`, the default).
    #[default]
    None,
    /// The in-process engine answers (`local`).
    Local,
}

impl Fallback {
    /// The setting's values, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["none", "local"];

    pub fn parse(name: &str) -> Result<Fallback, String> {
        match name {
            "none" => Ok(Fallback::None),
            "local" => Ok(Fallback::Local),
            other => Err(expected_one_of(Fallback::NAMES, other)),
        }
    }

    pub fn as_str(self) -> &'static str {
        Fallback::NAMES[self as usize]
    }
}

/// The `fim` setting: the fill-in-the-middle template family an HTTP engine renders prompts with,
/// one the engine knows (`none`, the default, sends the prefix only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fim(String);

impl Fim {
    pub fn parse(name: &str) -> Result<Fim, String> {
        match glint_engine::http::fim_template(name) {
            Ok(_) => Ok(Fim(name.to_string())),
            Err(_) => Err(expected_one_of(glint_engine::http::FIM_NAMES, name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Fim {
    fn default() -> Self {
        Fim("none".into())
    }
}

/// How much Glint logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
    /// A `tracing` filter directive, which only the command line's `--log-level` may give.
    Filter(String),
}

impl LogLevel {
    /// The setting's values, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["error", "warn", "info", "debug", "trace"];

    /// A level of the setting, in any case.
    pub fn parse(name: &str) -> Result<LogLevel, String> {
        match name.to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            other => Err(expected_one_of(LogLevel::NAMES, other)),
        }
    }

    /// `--log-level`: a level, or else a filter directive.
    pub fn from_command_line(text: &str) -> LogLevel {
        LogLevel::parse(text).unwrap_or_else(|_| LogLevel::Filter(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
            LogLevel::Filter(directive) => directive,
        }
    }
}

/// The typed settings serialize as the text the user writes (for `glint/status`).
macro_rules! serialize_as_str {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

serialize_as_str!(EngineSpec, Fallback, Fim, LogLevel);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            engine: EngineSpec::Local,
            model: None,
            context_tokens: 1024,
            max_tokens: 128,
            debounce_ms: 0,
            languages: BTreeMap::new(),
            log_level: LogLevel::Info,
            completion_items: true,
            streaming: false,
            early_answer_ms: 50,
            approximate_kv_reuse: true,
            next_edit_model: false,
            threads: None,
            context_strategy: ContextStrategy::Syntax,
            fallback: Fallback::None,
            api: HttpApi::OpenAiCompletions,
            fim: Fim::default(),
            api_key_env: "GLINT_API_KEY".into(),
            remote_context: crate::secrets::RemoteContext::default(),
        }
    }
}

/// A setting that could not be used, with the key named as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "glint setting `{}`: {}", self.key, self.message)
    }
}

impl Settings {
    /// Whether AI features are on for `language_id`.
    pub fn language_enabled(&self, language_id: &str) -> bool {
        self.languages.get(language_id).copied().unwrap_or(true)
    }

    /// Applies the keys present in `value` on top of `self`. Bad keys keep their current value and
    /// are reported; the rest still apply. `null` resets a key to its default.
    pub fn merge_json(&mut self, value: &Value) -> Vec<SettingError> {
        let mut errors = Vec::new();
        let map = match value {
            Value::Null => return errors,
            Value::Object(map) => match map.get("glint") {
                Some(Value::Object(inner)) => inner,
                _ => map,
            },
            _ => {
                errors.push(SettingError { key: "glint".into(), message: "expected an object of settings".into() });
                return errors;
            }
        };
        let defaults = Settings::default();
        for (key, value) in map {
            if let Err(message) = self.set(key, value, &defaults) {
                errors.push(SettingError { key: key.clone(), message });
            }
        }
        errors
    }

    fn set(&mut self, key: &str, value: &Value, defaults: &Settings) -> Result<(), String> {
        let reset = value.is_null();
        match key {
            "engine" => {
                self.engine =
                    if reset { defaults.engine.clone() } else { EngineSpec::parse(&non_empty_string(value)?)? };
            }
            "model" => self.model = if reset { None } else { Some(non_empty_string(value)?) },
            "contextTokens" => {
                self.context_tokens = if reset { defaults.context_tokens } else { integer(value, 64, 131_072)? as u32 };
            }
            "maxTokens" => {
                self.max_tokens = if reset { defaults.max_tokens } else { integer(value, 1, 4096)? as u32 };
            }
            "debounceMs" => {
                self.debounce_ms = if reset { defaults.debounce_ms } else { integer(value, 0, 2000)? };
            }
            "languages" => self.languages = if reset { BTreeMap::new() } else { languages(value)? },
            "logLevel" => {
                self.log_level =
                    if reset { defaults.log_level.clone() } else { LogLevel::parse(&non_empty_string(value)?)? };
            }
            "completionItems" => {
                self.completion_items = if reset { defaults.completion_items } else { boolean(value)? }
            }
            "streaming" => self.streaming = if reset { defaults.streaming } else { boolean(value)? },
            "earlyAnswerMs" => {
                self.early_answer_ms = if reset { defaults.early_answer_ms } else { integer(value, 0, 10_000)? };
            }
            "approximateKvReuse" => {
                self.approximate_kv_reuse = if reset { defaults.approximate_kv_reuse } else { boolean(value)? }
            }
            "nextEditModel" => self.next_edit_model = if reset { defaults.next_edit_model } else { boolean(value)? },
            "threads" => self.threads = if reset { None } else { Some(integer(value, 1, 256)? as u32) },
            "contextStrategy" => {
                self.context_strategy = if reset {
                    defaults.context_strategy
                } else {
                    ContextStrategy::parse(&one_of(value, ContextStrategy::NAMES)?)
                        .ok_or_else(|| format!("expected one of {}", ContextStrategy::NAMES.join(", ")))?
                };
            }
            "api" => {
                self.api = if reset { defaults.api } else { http_api(value)? };
            }
            "fim" => self.fim = if reset { defaults.fim.clone() } else { Fim::parse(&non_empty_string(value)?)? },
            "apiKeyEnv" => {
                self.api_key_env = if reset { defaults.api_key_env.clone() } else { env_var_name(value)? };
            }
            "remoteContext" => {
                self.remote_context = if reset { defaults.remote_context.clone() } else { remote_context(value)? };
            }
            "fallback" => {
                self.fallback = if reset { defaults.fallback } else { Fallback::parse(&non_empty_string(value)?)? };
            }
            _ => return Err("unknown setting (see the README's Configuration section)".into()),
        }
        Ok(())
    }
}

fn non_empty_string(value: &Value) -> Result<String, String> {
    match value.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
        Some(_) => Err("must not be empty".into()),
        None => Err(format!("expected a string, got {}", kind(value))),
    }
}

fn integer(value: &Value, min: u64, max: u64) -> Result<u64, String> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("must be between {min} and {max}, got {n}")),
        None => Err(format!("expected an integer between {min} and {max}, got {}", kind(value))),
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("expected true or false, got {}", kind(value)))
}

fn one_of(value: &Value, allowed: &[&str]) -> Result<String, String> {
    let text = non_empty_string(value)?;
    if allowed.contains(&text.as_str()) { Ok(text) } else { Err(expected_one_of(allowed, &text)) }
}

fn expected_one_of(allowed: &[&str], got: &str) -> String {
    format!("expected one of {}, got `{got}`", allowed.join(", "))
}

/// The `api` setting: one of [`HttpApi::NAMES`] exactly (the engine's aliases are not settings).
fn http_api(value: &Value) -> Result<HttpApi, String> {
    HttpApi::parse(&one_of(value, HttpApi::NAMES)?).map_err(|e| e.to_string())
}

fn serialize_api<S: Serializer>(api: &HttpApi, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(api.name())
}

/// The name of the variable whose value is sent as a bearer token. Only names that say they
/// hold an API key or token are taken: settings can come from a workspace's files, and a
/// variable such as `DATABASE_URL` or `SSH_AUTH_SOCK` must not become a header sent to whatever
/// URL the same settings name.
fn env_var_name(value: &Value) -> Result<String, String> {
    let name = non_empty_string(value)?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("expected an environment variable name, got `{name}`"));
    }
    let upper = name.to_ascii_uppercase();
    if API_KEY_SUFFIXES.iter().any(|suffix| upper.ends_with(suffix) && upper.len() > suffix.len()) {
        Ok(name)
    } else {
        Err(format!(
            "`{name}` does not look like an API key variable: its name must end in {}",
            API_KEY_SUFFIXES.map(|s| format!("`{s}`")).join(", ")
        ))
    }
}

/// How the name of an `apiKeyEnv` variable may end (`GLINT_API_KEY`, `OPENAI_API_KEY`,
/// `HF_TOKEN` ...).
const API_KEY_SUFFIXES: [&str; 3] = ["_API_KEY", "_KEY", "_TOKEN"];

fn remote_context(value: &Value) -> Result<crate::secrets::RemoteContext, String> {
    let map = value
        .as_object()
        .ok_or_else(|| format!("expected an object with `allow` and `deny` glob lists, got {}", kind(value)))?;
    let mut context = crate::secrets::RemoteContext::default();
    for (key, globs) in map {
        let list = match key.as_str() {
            "allow" => &mut context.allow,
            "deny" => &mut context.deny,
            other => return Err(format!("unknown key `{other}` (expected `allow` or `deny`)")),
        };
        let globs = globs.as_array().ok_or_else(|| format!("`{key}` must be a list of globs, got {}", kind(globs)))?;
        for glob in globs {
            let glob = glob.as_str().ok_or_else(|| format!("`{key}` must hold strings, got {}", kind(glob)))?;
            crate::secrets::check_glob(glob).map_err(|e| format!("`{key}`: {e}"))?;
            list.push(glob.to_string());
        }
    }
    Ok(context)
}

fn languages(value: &Value) -> Result<BTreeMap<String, bool>, String> {
    let map: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| format!("expected an object of languageId: true/false, got {}", kind(value)))?;
    map.iter()
        .map(|(id, on)| match on.as_bool() {
            Some(on) => Ok((id.clone(), on)),
            None => Err(format!("`{id}` must be true or false, got {}", kind(on))),
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_keys_apply_and_nested_glint_objects_are_accepted() {
        let mut settings = Settings::default();
        let errors = settings.merge_json(&json!({"glint": {"contextTokens": 512, "languages": {"go": false}}}));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(settings.context_tokens, 512);
        assert!(!settings.language_enabled("go"));
        assert!(settings.language_enabled("rust"));
    }

    #[test]
    fn bad_keys_are_named_and_the_rest_still_applies() {
        let mut settings = Settings::default();
        let errors = settings.merge_json(&json!({
            "contextTokens": "lots", "debounceMs": 10, "colour": "blue", "logLevel": "loud"
        }));
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["colour", "contextTokens", "logLevel"]);
        assert_eq!(settings.debounce_ms, 10);
        assert_eq!(settings.context_tokens, Settings::default().context_tokens);
        assert!(errors[1].to_string().contains("expected an integer"));
    }

    #[test]
    fn null_resets_to_the_default() {
        let mut settings = Settings::default();
        settings.merge_json(&json!({"maxTokens": 7, "model": "/m.gguf"}));
        settings.merge_json(&json!({"maxTokens": null, "model": null}));
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn http_engine_and_remote_context_settings_are_checked() {
        let mut settings = Settings::default();
        let errors = settings.merge_json(&json!({
            "api": "llama-infill", "fim": "qwen", "apiKeyEnv": "MY_KEY",
            "remoteContext": {"allow": ["*.example.env"], "deny": ["generated/**"]}
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (settings.api, settings.fim.as_str(), settings.api_key_env.as_str()),
            (HttpApi::LlamaInfill, "qwen", "MY_KEY")
        );
        assert_eq!(settings.remote_context.deny, ["generated/**"]);
        let errors = settings.merge_json(&json!({
            "api": "grpc", "fim": "gpt", "apiKeyEnv": "A B", "remoteContext": {"deny": ["src/["]}
        }));
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["api", "apiKeyEnv", "fim", "remoteContext"]);
        assert!(errors[3].message.contains("src/["), "{}", errors[3]);
        assert_eq!(settings.api, HttpApi::LlamaInfill);
        assert_eq!(settings.remote_context.deny, ["generated/**"]);
    }

    #[test]
    fn api_key_variables_must_look_like_api_keys() {
        for name in ["GLINT_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "together_api_key", "MY_KEY"] {
            let mut settings = Settings::default();
            assert_eq!(settings.merge_json(&json!({"apiKeyEnv": name})), vec![], "{name}");
            assert_eq!(settings.api_key_env, name);
        }
        for name in ["HOME", "PATH", "DATABASE_URL", "SSH_AUTH_SOCK", "_KEY", "KEY", "TOKEN"] {
            let mut settings = Settings::default();
            let errors = settings.merge_json(&json!({"apiKeyEnv": name}));
            assert_eq!(errors.len(), 1, "{name}");
            assert_eq!(errors[0].key, "apiKeyEnv");
            assert!(errors[0].message.contains(name) && errors[0].message.contains("_TOKEN"), "{}", errors[0]);
            assert_eq!(settings.api_key_env, "GLINT_API_KEY", "a refused name leaves the setting as it was");
        }
    }

    #[test]
    fn engine_must_be_a_known_kind() {
        let mut settings = Settings::default();
        assert_eq!(settings.merge_json(&json!({"engine": "ws://127.0.0.1:7070"})), vec![]);
        assert_eq!(settings.merge_json(&json!({"engine": "ftp://x"})).len(), 1);
        assert_eq!(settings.engine, EngineSpec::Ws("ws://127.0.0.1:7070".into()));
    }

    #[test]
    fn fallback_is_none_or_local() {
        let mut settings = Settings::default();
        assert_eq!(settings.fallback, Fallback::None);
        assert_eq!(settings.merge_json(&json!({"fallback": "local"})), vec![]);
        assert_eq!(settings.fallback, Fallback::Local);
        assert_eq!(settings.merge_json(&json!({"fallback": "cloud"})).len(), 1);
        assert_eq!(settings.fallback, Fallback::Local);
    }

    #[test]
    fn every_engine_kind_parses_and_keeps_its_text() {
        for (text, spec) in [
            ("local", EngineSpec::Local),
            ("ws://127.0.0.1:7070", EngineSpec::Ws("ws://127.0.0.1:7070".into())),
            ("wss://e.example", EngineSpec::Ws("wss://e.example".into())),
            ("http://127.0.0.1:8080/v1", EngineSpec::Http("http://127.0.0.1:8080/v1".into())),
            ("https://e.example/v1", EngineSpec::Http("https://e.example/v1".into())),
            ("fake:x", EngineSpec::Fake("fake:x".into())),
            ("fake+delay=5:x", EngineSpec::Fake("fake+delay=5:x".into())),
        ] {
            assert_eq!(EngineSpec::parse(text), Ok(spec.clone()), "{text}");
            assert_eq!(spec.as_str(), text);
        }
        for text in ["Local", "ftp://x", "fake", "wss:/x", ""] {
            assert!(EngineSpec::parse(text).unwrap_err().contains("expected `local`"), "{text}");
        }
    }

    #[test]
    fn typed_settings_show_in_status_as_the_user_wrote_them() {
        let mut settings = Settings::default();
        let errors = settings.merge_json(&json!({
            "engine": "http://127.0.0.1:8080/v1", "logLevel": "DEBUG", "fallback": "local",
            "api": "ollama", "fim": "starcoder", "contextStrategy": "plain-fim"
        }));
        assert!(errors.is_empty(), "{errors:?}");
        let shown = serde_json::to_value(&settings).unwrap();
        assert_eq!(
            [
                &shown["engine"],
                &shown["logLevel"],
                &shown["fallback"],
                &shown["api"],
                &shown["fim"],
                &shown["contextStrategy"]
            ],
            ["http://127.0.0.1:8080/v1", "debug", "local", "ollama", "starcoder", "plain-fim"]
        );
        let defaults = serde_json::to_value(Settings::default()).unwrap();
        assert_eq!(
            [&defaults["engine"], &defaults["logLevel"], &defaults["fallback"], &defaults["api"], &defaults["fim"]],
            ["local", "info", "none", "openai-completions", "none"]
        );
    }

    #[test]
    fn the_command_line_may_give_a_filter_directive_but_settings_only_levels() {
        assert_eq!(LogLevel::from_command_line("Trace"), LogLevel::Trace);
        assert_eq!(LogLevel::from_command_line("glint=trace"), LogLevel::Filter("glint=trace".into()));
        let mut settings = Settings::default();
        let errors = settings.merge_json(&json!({"logLevel": "glint=trace"}));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("expected one of error, warn, info, debug, trace"), "{}", errors[0]);
        assert_eq!(settings.log_level, LogLevel::Info);
    }
}
