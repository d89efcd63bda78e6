//! The HTTP engine's own cost per completion, against a scripted loopback server that answers at
//! once: with its pooled keep-alive connection, and with a server that closes every connection
//! (a fresh TCP connection per completion). Prints medians, p99 and the ratio; asserts nothing.
//!
//! Run: `cargo bench -p glint-engine --bench http`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use glint_engine::{Chunk, Engine, GenerateRequest, HttpConfig, HttpEngine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUESTS: usize = 300;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        let pooled = measure(false).await;
        let fresh = measure(true).await;
        println!("HTTP engine, {REQUESTS} sequential completions of 4 streamed events on loopback");
        println!("{:<34} {:>10} {:>10} {:>10} {:>10}", "", "ttfc p50", "ttfc p99", "total p50", "total p99");
        report("pooled keep-alive connection", &pooled);
        report("fresh connection per completion", &fresh);
        println!(
            "pooled / fresh: time to first chunk {:.2}x, total {:.2}x (p50)",
            percentile(&pooled.0, 0.5) / percentile(&fresh.0, 0.5),
            percentile(&pooled.1, 0.5) / percentile(&fresh.1, 0.5)
        );
    });
}

/// Times to first chunk and to the end, in milliseconds.
async fn measure(close_each: bool) -> (Vec<f64>, Vec<f64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, close_each));
        }
    });
    let engine = HttpEngine::new(HttpConfig { url: format!("http://{addr}/v1"), ..HttpConfig::default() }).unwrap();
    let request =
        GenerateRequest { prefix: "fn main() {\n    let x = ".repeat(40), max_tokens: 8, ..Default::default() };
    let (mut first, mut total) = (Vec::new(), Vec::new());
    for i in 0..REQUESTS + 20 {
        let started = Instant::now();
        let mut generation = engine.generate(request.clone());
        let mut first_at = None;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), generation.next_chunk()).await.unwrap() {
                Some(Chunk::Text(_)) => {
                    first_at.get_or_insert_with(|| started.elapsed());
                }
                Some(Chunk::Done(finish)) => {
                    assert!(finish.error.is_none(), "{finish:?}");
                    break;
                }
                None => panic!("no finish"),
            }
        }
        // The first requests warm up the runtime and the allocator.
        if i >= 20 {
            first.push(first_at.unwrap_or_default().as_secs_f64() * 1e3);
            total.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    (first, total)
}

async fn serve(mut socket: TcpStream, close_each: bool) {
    let _ = socket.set_nodelay(true);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Read one request: the head, then its Content-Length body.
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + 4 + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..head_end + 4 + length);
        let mut body = String::new();
        for text in ["a", " +", " b", ";"] {
            body.push_str(&format!("data: {{\"choices\":[{{\"text\":\"{text}\",\"finish_reason\":null}}]}}\n\n"));
        }
        body.push_str("data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let connection = if close_each { "close" } else { "keep-alive" };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: {connection}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() || close_each {
            return;
        }
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, (first, total): &(Vec<f64>, Vec<f64>)) {
    println!(
        "{name:<34} {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>8.3}ms",
        percentile(first, 0.5),
        percentile(first, 0.99),
        percentile(total, 0.5),
        percentile(total, 0.99)
    );
}
