//! Scheduling AI work per document: one in-flight request per document (a newer request or an
//! edit cancels the older one at once), adaptive debounce, and the typing-through cache.
//! No LSP types here.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// In-flight AI work, one token per document.
#[derive(Debug, Default)]
pub struct Inflight {
    tokens: Mutex<HashMap<String, (u64, CancellationToken)>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// One registered piece of work: its token and the id `finish` takes.
#[derive(Debug, Clone)]
pub struct Work {
    pub id: u64,
    pub token: CancellationToken,
}

impl Inflight {
    /// Registers new work for `uri`, cancelling whatever ran for it before.
    pub fn start(&self, uri: &str) -> Work {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = CancellationToken::new();
        if let Some((_, old)) = self.tokens.lock().insert(uri.to_string(), (id, token.clone())) {
            old.cancel();
        }
        Work { id, token }
    }

    /// Cancels the work for `uri` (an edit arrived). Cheap and synchronous.
    pub fn cancel(&self, uri: &str) {
        if let Some((_, token)) = self.tokens.lock().remove(uri) {
            token.cancel();
        }
    }

    /// Cancels all work (shutdown).
    pub fn cancel_all(&self) {
        for (_, (_, token)) in self.tokens.lock().drain() {
            token.cancel();
        }
    }

    /// Forgets work `id` for `uri` when it finished, unless newer work has replaced it.
    pub fn finish(&self, uri: &str, id: u64) {
        let mut tokens = self.tokens.lock();
        if tokens.get(uri).is_some_and(|(current, _)| *current == id) {
            tokens.remove(uri);
        }
    }

    /// How many documents have work registered.
    pub fn len(&self) -> usize {
        self.tokens.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Typing rhythm per document, for adaptive debounce.
#[derive(Debug, Default)]
pub struct Rhythm {
    last: Mutex<HashMap<String, (Instant, Duration)>>,
}

impl Rhythm {
    /// Records an edit to `uri` now.
    pub fn keystroke(&self, uri: &str) {
        let now = Instant::now();
        let mut last = self.last.lock();
        let entry = last.entry(uri.to_string()).or_insert((now, Duration::from_secs(1)));
        let interval = now.saturating_duration_since(entry.0).min(Duration::from_secs(2));
        // An exponential moving average of the gap between keystrokes.
        entry.1 = (entry.1 * 3 + interval) / 4;
        entry.0 = now;
    }

    /// How long an automatic request should wait before calling the model: longer while the user
    /// types fast (the next key will likely cancel it anyway), shorter when they pause.
    pub fn debounce(&self, uri: &str, base: Duration) -> Duration {
        match self.last.lock().get(uri) {
            Some((_, gap)) if *gap < Duration::from_millis(120) => base * 2,
            Some(_) => base / 2,
            None => base,
        }
    }

    pub fn forget(&self, uri: &str) {
        self.last.lock().remove(uri);
    }
}

/// A suggestion we showed, remembered so that typing through it costs no model call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub uri: String,
    /// The cursor's line when the suggestion was made.
    pub line: usize,
    /// The text of that line before the cursor.
    pub line_prefix: String,
    /// The text after `line_prefix` that the suggestion inserts.
    pub text: String,
}

/// A small LRU of recent suggestions.
#[derive(Debug)]
pub struct TypingCache {
    entries: Mutex<VecDeque<Suggestion>>,
    capacity: usize,
}

impl Default for TypingCache {
    fn default() -> Self {
        TypingCache { entries: Mutex::default(), capacity: 64 }
    }
}

impl TypingCache {
    /// The rest of a remembered suggestion for a cursor on `line` whose line text before the
    /// cursor is `line_prefix`: the user typed into the suggestion (or deleted back into the text
    /// it was made for, as undo does).
    pub fn lookup(&self, uri: &str, line: usize, line_prefix: &str) -> Option<String> {
        let entries = self.entries.lock();
        entries.iter().rev().filter(|s| s.uri == uri && s.line == line).find_map(|s| {
            if let Some(typed) = line_prefix.strip_prefix(s.line_prefix.as_str()) {
                let rest = s.text.strip_prefix(typed)?;
                return (!rest.trim().is_empty()).then(|| rest.to_string());
            }
            // Deleted back: what was deleted comes back with the suggestion.
            let deleted = s.line_prefix.strip_prefix(line_prefix)?;
            if deleted.contains('\n') || deleted.is_empty() {
                return None;
            }
            Some(format!("{deleted}{}", s.text))
        })
    }

    pub fn insert(&self, suggestion: Suggestion) {
        if suggestion.text.trim().is_empty() {
            return;
        }
        let mut entries = self.entries.lock();
        entries.retain(|s| s != &suggestion);
        entries.push_back(suggestion);
        while entries.len() > self.capacity {
            entries.pop_front();
        }
    }

    pub fn forget_document(&self, uri: &str) {
        self.entries.lock().retain(|s| s.uri != uri);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggestion(prefix: &str, text: &str) -> Suggestion {
        Suggestion { uri: "u".into(), line: 3, line_prefix: prefix.into(), text: text.into() }
    }

    #[test]
    fn typing_through_a_suggestion_returns_the_rest() {
        let cache = TypingCache::default();
        cache.insert(suggestion("    let x = ", "compute(a, b);"));
        assert_eq!(cache.lookup("u", 3, "    let x = com").as_deref(), Some("pute(a, b);"));
        assert_eq!(cache.lookup("u", 3, "    let x = ").as_deref(), Some("compute(a, b);"));
        assert_eq!(cache.lookup("u", 3, "    let x = cox"), None, "diverged");
        assert_eq!(cache.lookup("u", 4, "    let x = com"), None, "other line");
        assert_eq!(cache.lookup("u", 3, "    let x = compute(a, b);"), None, "typed it all");
    }

    #[test]
    fn deleting_back_brings_the_suggestion_back() {
        let cache = TypingCache::default();
        cache.insert(suggestion("    let x = com", "pute();"));
        assert_eq!(cache.lookup("u", 3, "    let x = c").as_deref(), Some("ompute();"));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = TypingCache::default();
        for i in 0..200 {
            cache.insert(suggestion(&format!("p{i}"), "x"));
        }
        assert_eq!(cache.len(), 64);
        assert_eq!(cache.lookup("u", 3, "p0"), None);
        assert_eq!(cache.lookup("u", 3, "p199").as_deref(), Some("x"));
    }

    #[test]
    fn a_new_request_cancels_the_old_one_and_an_edit_cancels_both() {
        let inflight = Inflight::default();
        let first = inflight.start("a");
        let second = inflight.start("a");
        assert!(first.token.is_cancelled());
        assert!(!second.token.is_cancelled());
        let other = inflight.start("b");
        inflight.cancel("a");
        assert!(second.token.is_cancelled());
        assert!(!other.token.is_cancelled());
    }

    #[test]
    fn finished_work_is_forgotten_but_never_newer_work() {
        let inflight = Inflight::default();
        let first = inflight.start("a");
        let second = inflight.start("a");
        inflight.finish("a", first.id);
        assert_eq!(inflight.len(), 1, "the older request must not unregister the newer one");
        inflight.finish("a", second.id);
        assert!(inflight.is_empty());
        assert!(!second.token.is_cancelled());
    }

    #[test]
    fn debounce_is_longer_while_typing_fast() {
        let rhythm = Rhythm::default();
        let base = Duration::from_millis(20);
        assert_eq!(rhythm.debounce("a", base), base);
        // The average gap starts at a second and shrinks as fast keystrokes come in.
        for _ in 0..20 {
            rhythm.keystroke("a");
        }
        assert_eq!(rhythm.debounce("a", base), base * 2);
    }
}
