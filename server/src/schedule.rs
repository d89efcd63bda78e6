//! Scheduling AI work per document: the running work of completions and code actions under the
//! one rule of who cancels whom (`glint_engine::work`), adaptive debounce, and the typing-through
//! cache. No LSP types here.
//!
//! Work is keyed like the engine requests it sends: the document for a completion, the document's
//! code actions for an action (sessions `uri` and `uri#action`). A newer request of a key
//! supersedes the older one; an edit or a close of the document cancels all of its work (unless
//! the edit types through the running completion), a cancelled progress bar its action, shutdown
//! everything.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glint_engine::CancelFlag;
use glint_engine::work::{Registry, WorkKey};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// The server's running AI work: one registry for completions and code actions.
#[derive(Debug, Default)]
pub struct Work {
    running: Registry<Running>,
}

/// What the server keeps of one piece of running work.
#[derive(Debug)]
struct Running {
    uri: String,
    lane: Lane,
    /// A completion keystrokes may type through (see [`Follow`]).
    follow: Option<Arc<Follow>>,
    /// The work-done progress token of an action, whose cancel cancels it.
    progress: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Completion,
    Action,
}

/// One registered piece of work: the id `finish` takes, and the flag set when it is cancelled.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub id: u64,
    pub token: CancelFlag,
}

impl Work {
    /// Registers a completion for `uri`, superseding the one that ran for it before; `follow`
    /// lets keystrokes type through it (see [`Follow`]).
    pub fn start_completion(&self, uri: &str, follow: Option<Arc<Follow>>) -> Ticket {
        self.start(uri, Lane::Completion, follow)
    }

    /// Registers a code action on `uri`, superseding the document's action that ran before (the
    /// engine supersedes its generation too: it has the same session).
    pub fn start_action(&self, uri: &str) -> Ticket {
        self.start(uri, Lane::Action, None)
    }

    fn start(&self, uri: &str, lane: Lane, follow: Option<Arc<Follow>>) -> Ticket {
        let session = match lane {
            Lane::Completion => uri.to_string(),
            Lane::Action => format!("{uri}#action"),
        };
        let value = Running { uri: uri.to_string(), lane, follow, progress: None };
        let ticket = self.running.start(WorkKey::new(None, session), value);
        Ticket { id: ticket.id, token: ticket.cancel }
    }

    /// Ties a progress token to action `id`, so that cancelling the progress cancels the action.
    pub fn set_progress(&self, id: u64, progress: &str) {
        self.running.update(id, |running| running.progress = Some(progress.to_string()));
    }

    /// Cancels the action shown by progress token `progress`.
    pub fn cancel_progress(&self, progress: &str) {
        self.running.cancel_where(|_, running| running.progress.as_deref() == Some(progress));
    }

    /// Cancels the completion for `uri` (an edit arrived). Cheap and synchronous.
    pub fn cancel_completion(&self, uri: &str) {
        self.running.cancel_where(|_, running| running.lane == Lane::Completion && running.uri == uri);
    }

    /// Cancels the code actions on `uri` (its document changed).
    pub fn cancel_actions(&self, uri: &str) {
        self.running.cancel_where(|_, running| running.lane == Lane::Action && running.uri == uri);
    }

    /// Cancels all work on `uri` (its document closed).
    pub fn cancel_document(&self, uri: &str) {
        self.running.cancel_where(|_, running| running.uri == uri);
    }

    /// An edit inserts `text` at `line` after `line_prefix`: the completion for `uri` goes on when
    /// that types the next characters of its streamed answer, else it is cancelled. True when it
    /// goes on.
    pub fn type_through(&self, uri: &str, line: usize, line_prefix: &str, text: &str) -> bool {
        let follow = self.running.find(|_, r| r.lane == Lane::Completion && r.uri == uri, |r| r.follow.clone());
        let Some(Some(follow)) = follow else {
            self.cancel_completion(uri);
            return false;
        };
        let consistent = !text.is_empty() && !text.contains(['\n', '\r']) && follow.answers(line, line_prefix) && {
            let mut typed = follow.typed.lock().clone();
            typed.push_str(text);
            let partial = follow.partial.lock();
            partial.len() > typed.len() && partial.starts_with(&typed)
        };
        if consistent {
            follow.typed.lock().push_str(text);
            return true;
        }
        self.cancel_completion(uri);
        false
    }

    /// The typed-through completion a request at `line` with `line_prefix` can wait for.
    pub fn follow_for(&self, uri: &str, line: usize, line_prefix: &str) -> Option<Arc<Follow>> {
        let follow = self.running.find(|_, r| r.lane == Lane::Completion && r.uri == uri, |r| r.follow.clone())??;
        let waits = !follow.typed.lock().is_empty() || follow.answered.load(std::sync::atomic::Ordering::Acquire);
        (waits && follow.answers(line, line_prefix)).then_some(follow)
    }

    /// Cancels all work (shutdown, or the client went away).
    pub fn cancel_all(&self) {
        self.running.cancel_all();
    }

    /// Forgets work `id` when it finished, unless newer work has replaced it.
    pub fn finish(&self, id: u64) {
        self.running.finish(id);
    }

    /// Whether a completion runs: background work waits for none to.
    pub fn completions_running(&self) -> bool {
        self.running.any(|_, running| running.lane == Lane::Completion)
    }

    /// How many pieces of work run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

/// A completion that keystrokes may type through without cancelling it: while each key inserts
/// exactly the next characters of its streamed answer, it goes on to its end, its answer lands in
/// the typing-through cache, and the requests of those keystrokes wait for it instead of starting
/// over (at 80 ms a key, a completion that restarts on every key never finishes).
#[derive(Debug)]
pub struct Follow {
    /// The cursor's line when the completion was asked for, and the line's text before it.
    pub line: usize,
    pub line_prefix: String,
    /// The answer as streamed so far, and what the user typed of it since.
    pub partial: Mutex<String>,
    pub typed: Mutex<String>,
    /// Set when the completion ended, however it ended.
    pub done: tokio_util::sync::CancellationToken,
    /// Bumped each time `partial` grows, so requests waiting on it wake.
    pub changes: tokio::sync::watch::Sender<u64>,
    /// The request whose editor shows this completion now: the one that asked for it, or the
    /// latest keystroke's request answered from it. Streamed progress goes to it.
    pub view: Mutex<Option<View>>,
    /// Set when its request was answered early and the completion goes on in the background.
    pub answered: std::sync::atomic::AtomicBool,
}

/// Where an editor shows a suggestion: the document version and cursor of the request it
/// answered, and what of the suggestion the user had typed by then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub version: i32,
    pub line: u32,
    pub character: u32,
    pub typed: String,
}

impl Follow {
    pub fn new(line: usize, line_prefix: String) -> Follow {
        Follow {
            line,
            line_prefix,
            partial: Mutex::new(String::new()),
            typed: Mutex::new(String::new()),
            done: CancellationToken::new(),
            changes: tokio::sync::watch::Sender::new(0),
            view: Mutex::new(None),
            answered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Records the answer streamed so far and wakes the requests waiting on it.
    pub fn set_partial(&self, partial: String) {
        *self.partial.lock() = partial;
        self.changes.send_modify(|n| *n += 1);
    }

    /// What is left of the streamed answer after `typed`, when the user typed a prefix of it.
    pub fn rest_after(&self, typed: &str) -> Option<String> {
        self.partial.lock().strip_prefix(typed).map(str::to_string)
    }

    /// Whether a request at `line` with `line_prefix` asks for what this completion answers.
    pub fn answers(&self, line: usize, line_prefix: &str) -> bool {
        line == self.line && line_prefix == format!("{}{}", self.line_prefix, self.typed.lock())
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

    #[test]
    fn keystrokes_that_type_the_streamed_answer_keep_the_completion_and_others_cancel_it() {
        let inflight = Work::default();
        let follow = std::sync::Arc::new(Follow::new(3, "    if n".into()));
        let work = inflight.start_completion("a", Some(follow.clone()));
        *follow.partial.lock() = " == 0:".into();
        assert!(inflight.type_through("a", 3, "    if n", " "));
        assert!(inflight.type_through("a", 3, "    if n ", "="));
        assert!(!work.token.is_cancelled());
        // A request at the new cursor waits for it; one elsewhere does not.
        assert!(inflight.follow_for("a", 3, "    if n =").is_some());
        assert!(inflight.follow_for("a", 3, "    if n").is_none());
        assert!(inflight.follow_for("a", 4, "    if n =").is_none());
        // A key that is not the next character of the answer cancels it.
        assert!(!inflight.type_through("a", 3, "    if n =", "x"));
        assert!(work.token.is_cancelled());
        assert!(inflight.is_empty());
        // Work without a follow is cancelled by any edit, as before.
        let plain = inflight.start_completion("b", None);
        assert!(!inflight.type_through("b", 0, "", "x"));
        assert!(plain.token.is_cancelled());
        // Typing past what was streamed so far cannot be checked: the work is cancelled.
        let follow = std::sync::Arc::new(Follow::new(0, "x".into()));
        let work = inflight.start_completion("c", Some(follow.clone()));
        *follow.partial.lock() = "ab".into();
        assert!(!inflight.type_through("c", 0, "x", "abc"));
        assert!(work.token.is_cancelled());
    }

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
        let inflight = Work::default();
        let first = inflight.start_completion("a", None);
        let second = inflight.start_completion("a", None);
        assert!(first.token.is_cancelled());
        assert!(!second.token.is_cancelled());
        let other = inflight.start_completion("b", None);
        inflight.cancel_completion("a");
        assert!(second.token.is_cancelled());
        assert!(!other.token.is_cancelled());
    }

    #[test]
    fn completions_and_actions_are_keyed_apart_and_an_edit_ends_both() {
        let work = Work::default();
        let completion = work.start_completion("file:///a.rs", None);
        let action = work.start_action("file:///a.rs");
        let other = work.start_action("file:///b.rs");
        // Neither supersedes the other: they are different keys.
        assert!(!completion.token.is_cancelled() && !action.token.is_cancelled());
        assert!(work.completions_running());
        // A newer action of the same document supersedes the older one, as the engine does.
        let newer = work.start_action("file:///a.rs");
        assert!(action.token.is_cancelled() && !newer.token.is_cancelled());
        // An edit ends the document's actions; a close ends everything on it.
        work.cancel_actions("file:///a.rs");
        assert!(newer.token.is_cancelled() && !completion.token.is_cancelled());
        work.cancel_document("file:///a.rs");
        assert!(completion.token.is_cancelled() && !other.token.is_cancelled());
        assert_eq!(work.len(), 1);
    }

    #[test]
    fn cancelling_a_progress_bar_cancels_its_action() {
        let work = Work::default();
        let ticket = work.start_action("file:///a.rs");
        work.set_progress(ticket.id, "glint/action/1");
        work.cancel_progress("glint/action/2");
        assert!(!ticket.token.is_cancelled());
        work.cancel_progress("glint/action/1");
        assert!(ticket.token.is_cancelled());
        assert!(work.is_empty());
    }

    #[test]
    fn finished_work_is_forgotten_but_never_newer_work() {
        let inflight = Work::default();
        let first = inflight.start_completion("a", None);
        let second = inflight.start_completion("a", None);
        inflight.finish(first.id);
        assert_eq!(inflight.len(), 1, "the older request must not unregister the newer one");
        inflight.finish(second.id);
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
