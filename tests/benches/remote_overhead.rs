//! What the transport to a remote engine costs per request, on loopback, with the same engine
//! behind each transport: one persistent WebSocket (`glint engine serve` and the `ws://` client
//! engine) against a fresh HTTP/1.1 connection per completion (as llm-ls does) and against pooled
//! keep-alive HTTP with SSE streaming. Overhead = client-side time to the first chunk minus the
//! engine's own time to its first token. Prints p50/p99 and ratios; asserts nothing. Runs once in
//! plain text and once with TLS (`wss://` against `https://`, a self-signed certificate), since a
//! remote engine beyond loopback is reached over TLS, where a fresh connection also pays a TLS
//! handshake.
//!
//! `cargo bench -p glint-tests --bench remote_overhead` (`GLINT_BENCH_REQUESTS` sets the count for
//! the fast engine, default 1000; the real model section runs 50 when the model is fetched).

#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::routing::post;
use futures::StreamExt;
use glint_engine::fake::FakeEngine;
use glint_engine::ws::{ServeConfig, WsClientConfig, WsEngine};
use glint_engine::{Chunk, Engine, GenerateRequest, LocalConfig, LocalEngine, fetch};

/// One request's figures, in milliseconds.
#[derive(Clone, Copy)]
struct Sample {
    first_chunk_ms: f64,
    engine_ttft_ms: f64,
}

impl Sample {
    fn overhead_ms(&self) -> f64 {
        self.first_chunk_ms - self.engine_ttft_ms
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    WebSocket,
    PooledHttp,
    FreshHttp,
}

impl Transport {
    const ALL: [Transport; 3] = [Transport::WebSocket, Transport::PooledHttp, Transport::FreshHttp];

    fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "WebSocket, one persistent connection",
            Transport::PooledHttp => "HTTP/1.1 keep-alive pool + SSE",
            Transport::FreshHttp => "HTTP/1.1 new connection per request + SSE",
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let requests = std::env::var("GLINT_BENCH_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let fast: Arc<dyn Engine> = Arc::new(FakeEngine::fixed("let total = a + b;"));
    let request =
        GenerateRequest { prefix: "fn add(a: i32, b: i32) -> i32 {\n    ".into(), ..GenerateRequest::default() };
    let tls = Tls::generate()?;
    println!("## Fast scripted engine, {requests} requests per transport (interleaved), loopback\n");
    run(Arc::clone(&fast), request.clone(), requests, 50, None).await?;
    println!("\n## Fast scripted engine over TLS, {requests} requests per transport (interleaved), loopback\n");
    run(fast, request, requests, 50, Some(&tls)).await?;

    match fetch::resolve_model(None) {
        Ok(path) => {
            let engine = LocalEngine::load(&path, LocalConfig { threads: Some(1), ..LocalConfig::default() })?;
            let request = GenerateRequest {
                prefix: "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    ".into(),
                suffix: "\n\nprint(fibonacci(10))\n".into(),
                language: Some("python".into()),
                max_tokens: 8,
                ..GenerateRequest::default()
            };
            println!("\n## Real model ({}), 50 requests per transport, end to end\n", path.display());
            run(Arc::new(engine), request, 50, 5, None).await?;
        }
        Err(e) => println!("\nSKIP real model section: {e}"),
    }
    Ok(())
}

/// A self-signed certificate for `localhost`, in PEM files.
struct Tls {
    cert_pem: String,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Tls {
    fn generate() -> anyhow::Result<Tls> {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        let dir = std::env::temp_dir().join(format!("glint-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let cert_pem = certified.cert.pem();
        std::fs::write(&cert, &cert_pem)?;
        std::fs::write(&key, certified.signing_key.serialize_pem())?;
        Ok(Tls { cert_pem, cert, key })
    }
}

async fn run(
    engine: Arc<dyn Engine>,
    request: GenerateRequest,
    requests: usize,
    warmup: usize,
    tls: Option<&Tls>,
) -> anyhow::Result<()> {
    let acceptor = match tls {
        Some(tls) => Some(glint_engine::ws::load_tls(&tls.cert, &tls.key)?),
        None => None,
    };
    let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ws_addr = ws_listener.local_addr()?;
    let (stop_ws, ws_stopped) = tokio::sync::oneshot::channel::<()>();
    let ws_engine = Arc::clone(&engine);
    let ws_acceptor = acceptor.clone();
    let ws_server = tokio::spawn(async move {
        let config = ServeConfig { tls: ws_acceptor, ..ServeConfig::default() };
        let _ = glint_engine::ws::serve(ws_listener, ws_engine, config, async {
            let _ = ws_stopped.await;
        })
        .await;
    });
    let http_addr = start_http(Arc::clone(&engine), acceptor).await?;

    let (ws_url, url) = match tls {
        Some(_) => {
            (format!("wss://localhost:{}", ws_addr.port()), format!("https://localhost:{}/generate", http_addr.port()))
        }
        None => (format!("ws://{ws_addr}"), format!("http://{http_addr}/generate")),
    };
    let mut ws_config = WsClientConfig::new(ws_url);
    ws_config.ca_file = tls.map(|tls| tls.cert.clone());
    let ws = WsEngine::connect(ws_config)?;
    tokio::time::timeout(Duration::from_secs(10), ws.connected()).await?;
    let http_client = || -> anyhow::Result<reqwest::ClientBuilder> {
        let mut builder = reqwest::Client::builder();
        if let Some(tls) = tls {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(tls.cert_pem.as_bytes())?);
        }
        Ok(builder)
    };
    let pooled = http_client()?.build()?;

    let mut samples: [Vec<Sample>; 3] = Default::default();
    for i in 0..warmup + requests {
        for (slot, transport) in Transport::ALL.into_iter().enumerate() {
            let sample = match transport {
                Transport::WebSocket => over_ws(&ws, request.clone()).await?,
                Transport::PooledHttp => over_http(&pooled, &url, &request).await?,
                Transport::FreshHttp => {
                    // Built before the clock starts: only the new connection is measured.
                    let fresh = http_client()?.pool_max_idle_per_host(0).build()?;
                    over_http(&fresh, &url, &request).await?
                }
            };
            if i >= warmup {
                samples[slot].push(sample);
            }
        }
    }

    let fresh_p50 = percentile(samples[2].iter().map(Sample::overhead_ms), 0.5);
    let fresh_p99 = percentile(samples[2].iter().map(Sample::overhead_ms), 0.99);
    println!(
        "| transport | overhead p50 | overhead p99 | first chunk p50 | first chunk p99 | engine TTFT p50 | overhead p50 vs fresh HTTP |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (slot, transport) in Transport::ALL.into_iter().enumerate() {
        let s = &samples[slot];
        let p50 = percentile(s.iter().map(Sample::overhead_ms), 0.5);
        let p99 = percentile(s.iter().map(Sample::overhead_ms), 0.99);
        println!(
            "| {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.1}% ({:.0}% lower; p99 {:.0}% lower) |",
            transport.name(),
            p50,
            p99,
            percentile(s.iter().map(|x| x.first_chunk_ms), 0.5),
            percentile(s.iter().map(|x| x.first_chunk_ms), 0.99),
            percentile(s.iter().map(|x| x.engine_ttft_ms), 0.5),
            100.0 * p50 / fresh_p50,
            100.0 * (1.0 - p50 / fresh_p50),
            100.0 * (1.0 - p99 / fresh_p99),
        );
    }
    let ws_p50 = percentile(samples[0].iter().map(Sample::overhead_ms), 0.5);
    let pooled_p50 = percentile(samples[1].iter().map(Sample::overhead_ms), 0.5);
    println!(
        "\nWebSocket overhead p50 vs pooled HTTP: {:.2}x ({:.3} vs {:.3} ms)",
        ws_p50 / pooled_p50,
        ws_p50,
        pooled_p50
    );

    let _ = stop_ws.send(());
    let _ = ws_server.await;
    Ok(())
}

async fn over_ws(engine: &WsEngine, request: GenerateRequest) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let mut generation = engine.generate(request);
    let mut first = None;
    while let Some(chunk) = generation.next_chunk().await {
        match chunk {
            Chunk::Text(_) => {
                first.get_or_insert_with(|| started.elapsed());
            }
            Chunk::Done(finish) => {
                let first = first.ok_or_else(|| anyhow::anyhow!("no chunk over WebSocket: {finish:?}"))?;
                return Ok(Sample { first_chunk_ms: ms(first), engine_ttft_ms: finish.timings.ttft_ms });
            }
        }
    }
    anyhow::bail!("the WebSocket generation ended without Done")
}

async fn over_http(client: &reqwest::Client, url: &str, request: &GenerateRequest) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let body = serde_json::to_vec(request)?;
    let response = client.post(url).header("content-type", "application/json").body(body).send().await?;
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut first = None;
    while let Some(bytes) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&bytes?));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.starts_with("event: done") {
                let data = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("{}");
                let timings: glint_engine::Timings = serde_json::from_str(data)?;
                let first = first.ok_or_else(|| anyhow::anyhow!("no chunk over HTTP"))?;
                return Ok(Sample { first_chunk_ms: ms(first), engine_ttft_ms: timings.ttft_ms });
            }
            first.get_or_insert_with(|| started.elapsed());
        }
    }
    anyhow::bail!("the SSE stream ended without a done event")
}

/// A minimal streaming HTTP engine: POST /generate with a `GenerateRequest`, answered as SSE
/// (`data: TEXT` per chunk, then `event: done` with the timings).
async fn start_http(engine: Arc<dyn Engine>, tls: Option<tokio_rustls::TlsAcceptor>) -> anyhow::Result<SocketAddr> {
    async fn generate(
        State(engine): State<Arc<dyn Engine>>,
        body: String,
    ) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
        let request: GenerateRequest = serde_json::from_str(&body).unwrap_or_default();
        let generation = engine.generate(request);
        Sse::new(generation.map(|chunk| {
            Ok(match chunk {
                Chunk::Text(text) => Event::default().data(serde_json::to_string(&text).unwrap_or_default()),
                Chunk::Done(finish) => {
                    Event::default().event("done").data(serde_json::to_string(&finish.timings).unwrap_or_default())
                }
            })
        }))
    }
    let app = Router::new().route("/generate", post(generate)).with_state(engine);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    match tls {
        Some(acceptor) => {
            tokio::spawn(async move {
                let _ = axum::serve(TlsListener { tcp: listener, acceptor }, app).await;
            });
        }
        None => {
            // Small SSE writes must not wait for Nagle's algorithm, as on the WebSocket side.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
    }
    Ok(addr)
}

/// TCP plus a TLS handshake per accepted connection, for the HTTPS side.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else { continue };
            let _ = tcp.set_nodelay(true);
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(values: impl Iterator<Item = f64>, q: f64) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    values[index]
}
