//! Fuzz target: the WebSocket protocol's frame decoding (`glint_engine::protocol`). Arbitrary text
//! parses as a client or a server frame or is refused with an error; a frame that parses encodes
//! to JSON that parses back to the same frame.
#![no_main]

use glint_engine::protocol::{ClientFrame, ServerFrame};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(frame) = ClientFrame::parse(&text) {
        let json = serde_json::to_string(&frame).expect("a client frame encodes");
        let again = ClientFrame::parse(&json).expect("an encoded client frame parses");
        assert_eq!(serde_json::to_string(&again).expect("encodes"), json);
    }
    if let Ok(frame) = ServerFrame::parse(&text) {
        let json = serde_json::to_string(&frame).expect("a server frame encodes");
        let again = ServerFrame::parse(&json).expect("an encoded server frame parses");
        assert_eq!(serde_json::to_string(&again).expect("encodes"), json);
    }
});
