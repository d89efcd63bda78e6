//! Robust LSP framing around tower-lsp. tower-lsp stops reading for good after one framing or
//! JSON error, so a single bad message would end the session; this module reads the client's
//! stream itself, answers malformed messages with the JSON-RPC error the specification names, resynchronises on
//! the next `Content-Length` header, and hands tower-lsp only well-formed messages.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Bodies larger than this are skipped with an error rather than buffered (a 50 MB file, JSON
/// escaped, still fits).
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
const MAX_HEADER_LINE: usize = 4096;
/// Whole messages waiting for the client. When the client stops reading, the queue fills and
/// the server waits on it (and log lines, queued separately, are dropped) instead of growing.
const OUTPUT_QUEUE: usize = 64;

/// One unit read from a stream of LSP messages.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A well-formed JSON-RPC message body, and its method if it has one.
    Message(Vec<u8>, Option<String>),
    /// Something that must be answered with an error, and skipped.
    Malformed(Value),
}

/// Reads the next frame; `Ok(None)` at end of input.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<Option<Frame>> {
    let Some(length) = read_headers(reader).await? else { return Ok(None) };
    if length > MAX_BODY_BYTES {
        let skipped = tokio::io::copy(&mut (&mut *reader).take(length as u64), &mut tokio::io::sink()).await?;
        if skipped < length as u64 {
            return Ok(None);
        }
        return Ok(Some(Frame::Malformed(error(
            Value::Null,
            -32600,
            format!("message of {length} bytes is over the {MAX_BODY_BYTES}-byte limit"),
        ))));
    }
    // Grow the buffer as bytes arrive: a declared length alone must not allocate hundreds of MB.
    let mut body = Vec::with_capacity(length.min(1 << 20));
    (&mut *reader).take(length as u64).read_to_end(&mut body).await?;
    if body.len() < length {
        return Ok(None);
    }
    Ok(Some(check_body(body)))
}

/// Reads header lines up to the blank line and returns the content length. Lines that are not
/// headers are skipped, and a `Content-Length` found anywhere in a line counts, so the reader
/// resynchronises after a body whose declared length was wrong.
async fn read_headers<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<Option<usize>> {
    let mut length = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut *reader).take(MAX_HEADER_LINE as u64).read_until(b'\n', &mut line).await?;
        if read == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let trimmed = text.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            if length.is_some() {
                return Ok(length);
            }
            // A blank line without a length: keep looking for the next header.
            continue;
        }
        if let Some(at) = trimmed.to_ascii_lowercase().rfind("content-length:") {
            let digits: String =
                trimmed[at + "content-length:".len()..].trim().chars().take_while(char::is_ascii_digit).collect();
            length = digits.parse().ok();
        }
    }
}

fn check_body(body: Vec<u8>) -> Frame {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => return Frame::Malformed(error(Value::Null, -32700, format!("parse error: {e}"))),
    };
    let Some(object) = value.as_object() else {
        return Frame::Malformed(error(Value::Null, -32600, "invalid request: not a JSON object".into()));
    };
    let id = object.get("id").cloned().unwrap_or(Value::Null);
    let valid_id = matches!(id, Value::Null | Value::Number(_) | Value::String(_));
    let method_ok = object.get("method").is_none_or(Value::is_string);
    let is_message = object.contains_key("method") || object.contains_key("result") || object.contains_key("error");
    if !valid_id || !method_ok || !is_message {
        let id = if valid_id { id } else { Value::Null };
        return Frame::Malformed(error(id, -32600, "invalid request: not a JSON-RPC message".into()));
    }
    let method = object.get("method").and_then(Value::as_str).map(str::to_string);
    Frame::Message(body, method)
}

fn error(id: Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Writes one framed message.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, body: &[u8]) -> std::io::Result<()> {
    let mut framed = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    framed.extend_from_slice(body);
    writer.write_all(&framed).await?;
    writer.flush().await
}

/// Copies well-formed messages from the client to tower-lsp; malformed ones go to `errors`.
/// `on_method` sees each message's method as it passes, in arrival order.
pub async fn pump_input<R, W>(
    input: R,
    mut to_server: W,
    errors: mpsc::UnboundedSender<Value>,
    on_method: impl Fn(&str) + Send,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    loop {
        match read_frame(&mut reader).await {
            Ok(Some(Frame::Message(body, method))) => {
                if let Some(method) = &method {
                    on_method(method);
                }
                if write_frame(&mut to_server, &body).await.is_err() {
                    return;
                }
            }
            Ok(Some(Frame::Malformed(reply))) => {
                tracing::warn!("malformed message from the client: {}", reply["error"]["message"]);
                let _ = errors.send(reply);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("reading from the client failed: {e}");
                break;
            }
        }
    }
    let _ = to_server.shutdown().await;
}

/// Copies tower-lsp's messages to the client, interleaving our error replies between whole
/// messages. Ends when tower-lsp closes its output.
pub async fn pump_output<R, W>(from_server: R, mut output: W, errors: mpsc::UnboundedReceiver<Value>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    // Frames are read whole by one task and merged with error replies through one channel, so no
    // read is ever cancelled halfway through a message.
    enum Out {
        Body(Vec<u8>),
        ServerClosed,
    }
    // Bounded: a client that stops reading stdout makes the reader wait, and with it tower-lsp's
    // output, so a stalled client costs at most this queue and the pipes' buffers.
    let (tx, mut rx) = mpsc::channel::<Out>(OUTPUT_QUEUE);
    let server_tx = tx.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::with_capacity(64 * 1024, from_server);
        while let Ok(Some(frame)) = read_frame(&mut reader).await {
            match frame {
                Frame::Message(body, _) => {
                    if server_tx.send(Out::Body(body)).await.is_err() {
                        return;
                    }
                }
                Frame::Malformed(_) => tracing::error!("the server produced a malformed message"),
            }
        }
        let _ = server_tx.send(Out::ServerClosed).await;
    });
    let forward_errors = tokio::spawn(async move {
        let mut errors = errors;
        while let Some(reply) = errors.recv().await {
            if tx.send(Out::Body(serde_json::to_vec(&reply).unwrap_or_default())).await.is_err() {
                break;
            }
        }
    });
    while let Some(Out::Body(body)) = rx.recv().await {
        if write_frame(&mut output, &body).await.is_err() {
            break;
        }
    }
    forward_errors.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8]) -> Vec<Frame> {
        let mut reader = BufReader::new(input);
        let mut out = Vec::new();
        while let Some(frame) = read_frame(&mut reader).await.unwrap() {
            out.push(frame);
        }
        out
    }

    fn framed(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[tokio::test]
    async fn reads_consecutive_messages() {
        let a = r#"{"jsonrpc":"2.0","method":"a"}"#;
        let b = r#"{"jsonrpc":"2.0","id":1,"method":"b"}"#;
        let got = frames(format!("{}{}", framed(a), framed(b)).as_bytes()).await;
        assert_eq!(got, vec![Frame::Message(a.into(), Some("a".into())), Frame::Message(b.into(), Some("b".into()))]);
    }

    #[tokio::test]
    async fn a_short_content_length_is_reported_and_the_next_message_still_read() {
        let a = r#"{"jsonrpc":"2.0","method":"a"}"#;
        let input = format!("Content-Length: {}\r\n\r\n{a}{}", a.len() - 4, framed(a));
        let got = frames(input.as_bytes()).await;
        assert!(matches!(&got[0], Frame::Malformed(v) if v["error"]["code"] == -32700), "{got:?}");
        assert_eq!(got[1], Frame::Message(a.into(), Some("a".into())));
    }

    #[tokio::test]
    async fn non_messages_are_invalid_requests_keeping_their_id() {
        let got = frames(framed(r#"{"id": 4}"#).as_bytes()).await;
        assert!(matches!(&got[0], Frame::Malformed(v) if v["error"]["code"] == -32600 && v["id"] == 4));
        let got = frames(framed("[1]").as_bytes()).await;
        assert!(matches!(&got[0], Frame::Malformed(v) if v["error"]["code"] == -32600));
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_holds_the_server_back_instead_of_growing_a_queue() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        // The server side writes messages without end; the client reads none of them.
        let (mut server_out, from_server) = tokio::io::duplex(1 << 16);
        let written = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&written);
        let producer = tokio::spawn(async move {
            let body = br#"{"jsonrpc":"2.0","method":"window/logMessage","params":{"type":4,"message":"a line"}}"#;
            while write_frame(&mut server_out, body).await.is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        let (output, _unread) = tokio::io::duplex(4096);
        let (_errors, errors_rx) = mpsc::unbounded_channel();
        let pump = tokio::spawn(pump_output(from_server, output, errors_rx));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let first = written.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let second = written.load(Ordering::SeqCst);
        // What is written at most: the queue, the two pipes' buffers (about 110 bytes a message).
        let most = OUTPUT_QUEUE + (1 << 16) / 100 + 4096 / 100 + 8;
        assert!(second <= most, "{second} messages taken from the server, at most {most} expected");
        assert_eq!(first, second, "the server is held back, not read ahead");
        producer.abort();
        pump.abort();
    }

    #[tokio::test]
    async fn headers_without_a_length_are_skipped() {
        let a = r#"{"jsonrpc":"2.0","method":"a"}"#;
        let input = format!("Content-Type: x\r\n\r\n{}", framed(a));
        assert_eq!(frames(input.as_bytes()).await, vec![Frame::Message(a.into(), Some("a".into()))]);
    }
}
