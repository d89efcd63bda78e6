//! Engine selection: turns the `engine` and `model` settings into a running `Engine`.
//! Loading a model takes a while, so the server holds an `EngineSlot` that is `Loading` until then.

use std::sync::Arc;

use glint_engine::fake::FakeEngine;
use glint_engine::{Engine, HttpApi, HttpConfig, HttpEngine, LocalConfig, LocalEngine, fetch};

use crate::config::{EngineSpec, Fallback, Fim, Settings};

/// The engine as the server sees it right now.
#[derive(Clone, Default)]
pub enum EngineSlot {
    /// Nothing configured yet (before `initialize`).
    #[default]
    None,
    Loading,
    Ready(Arc<dyn Engine>),
    /// It could not start; the message says why and what to do.
    Failed(String),
}

impl EngineSlot {
    /// A short state name for `glint/status`.
    pub fn state(&self) -> &'static str {
        match self {
            EngineSlot::None => "none",
            EngineSlot::Loading => "loading",
            EngineSlot::Ready(_) => "ready",
            EngineSlot::Failed(_) => "failed",
        }
    }
}

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSpec {
    pub engine: EngineSpec,
    pub model: Option<String>,
    pub threads: Option<usize>,
    /// Fetch a catalog model (the default one when no model is given) when it is not installed;
    /// without it, a missing one is an error that says how to fetch it.
    pub fetch_default: bool,
    /// For a `ws://`/`wss://` engine: what answers while disconnected.
    pub fallback: Fallback,
    /// The local engine may reuse cached keys and values shifted in position after an edit above
    /// them (faster typing, answers close to but not always equal to a fresh prefill).
    pub approximate_kv_reuse: bool,
    /// How to talk to an `http(s)://` engine.
    pub http: HttpOptions,
}

/// The settings of an `http(s)://` engine (`api`, `fim`, `apiKeyEnv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    pub api: HttpApi,
    pub fim: Fim,
    pub api_key_env: String,
}

impl HttpOptions {
    pub fn from_settings(settings: &Settings) -> HttpOptions {
        HttpOptions { api: settings.api, fim: settings.fim.clone(), api_key_env: settings.api_key_env.clone() }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions::from_settings(&Settings::default())
    }
}

/// An OpenAI-compatible, llama.cpp `/infill` or Ollama server at `url`. Contacts nobody yet: the
/// first completion does, and a server that is down fails that request with a clear error.
fn start_http(url: &str, spec: &StartSpec) -> Result<Arc<dyn Engine>, String> {
    let options = &spec.http;
    let config = HttpConfig {
        url: url.to_string(),
        api: options.api,
        fim: options.fim.as_str().to_string(),
        model: spec.model.clone(),
        api_key: HttpConfig::api_key_from_env(&options.api_key_env),
        ..HttpConfig::default()
    };
    let engine = HttpEngine::new(config).map_err(|e| e.to_string())?;
    Ok(Arc::new(engine))
}

/// The remote engine behind `glint engine serve` (token from `GLINT_ENGINE_TOKEN`, extra trusted
/// certificates from `GLINT_ENGINE_CA`). Waits briefly for the first connection so the first
/// completion finds it warm; an unreachable server is retried in the background.
fn start_ws(url: &str, spec: &StartSpec, progress: &mut dyn FnMut(&str)) -> Result<Arc<dyn Engine>, String> {
    use glint_engine::ws::{WsClientConfig, WsEngine};
    let mut engine = WsEngine::connect(WsClientConfig::from_env(url)).map_err(|e| e.to_string())?;
    if spec.fallback == Fallback::Local {
        match start_local(spec, progress) {
            Ok(local) => engine = engine.with_fallback(local),
            Err(why) => progress(&format!("the local fallback engine is unavailable: {why}")),
        }
    }
    if !engine.wait_connected(std::time::Duration::from_secs(5)) {
        let why = engine.state().error.unwrap_or_else(|| "no answer yet".into());
        progress(&format!("the remote engine at {url} is not reachable ({why}); retrying in the background"));
    }
    Ok(Arc::new(engine))
}

/// Starts the engine `spec` names. Blocks while a model loads (seconds): call it off the async
/// runtime. `progress` receives one-line status messages.
pub fn start(spec: &StartSpec, progress: &mut dyn FnMut(&str)) -> Result<Arc<dyn Engine>, String> {
    match &spec.engine {
        EngineSpec::Local => start_local(spec, progress),
        EngineSpec::Ws(url) => start_ws(url, spec, progress),
        EngineSpec::Http(url) => start_http(url, spec),
        EngineSpec::Fake(text) => {
            let fake = FakeEngine::from_spec(text)
                .ok_or_else(|| format!("invalid fake engine `{text}`: use fake:TEXT or fake+delay=MS:TEXT"))?;
            if !fake.load.is_zero() {
                progress("loading the scripted engine");
                std::thread::sleep(fake.load);
            }
            Ok(Arc::new(fake))
        }
    }
}

/// The in-process engine with `spec`'s model, whatever `spec.engine` says.
fn start_local(spec: &StartSpec, progress: &mut dyn FnMut(&str)) -> Result<Arc<dyn Engine>, String> {
    // A catalog name (or no model: the default) resolves to its file in the models folder,
    // fetched on first use unless fetching is off; anything else is a path.
    let path =
        fetch::resolve_setting(spec.model.as_deref(), spec.fetch_default, &mut |event| progress(&event.to_string()))
            .map_err(|e| e.to_string())?;
    progress(&format!("loading {}", path.display()));
    // `GLINT_TEST_HOOKS=1` lets end-to-end tests make the model thread panic on purpose.
    let test_hooks = std::env::var("GLINT_TEST_HOOKS").is_ok_and(|v| v == "1");
    let shifted_reuse_min = if spec.approximate_kv_reuse { LocalConfig::default().shifted_reuse_min } else { 0 };
    let weight_cache = fetch::packed_weights_dir();
    let config =
        LocalConfig { threads: spec.threads, test_hooks, shifted_reuse_min, weight_cache, ..LocalConfig::default() };
    let engine = LocalEngine::load(&path, config).map_err(|e| e.to_string())?;
    Ok(Arc::new(engine))
}
