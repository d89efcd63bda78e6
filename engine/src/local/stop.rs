//! Stop strings over streamed text: text that could be the start of a stop string is held back
//! until it is known not to be one, so a stop string is never streamed.

/// Watches generated text for stop strings.
#[derive(Debug, Default)]
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub(crate) fn new(stops: &[String]) -> StopMatcher {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), held: String::new() }
    }

    /// Adds text; returns what can be streamed now, and whether a stop string was reached (then
    /// the returned text is everything before it).
    pub(crate) fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        let earliest = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = earliest {
            let out = self.held[..at].to_string();
            self.held.clear();
            return (out, true);
        }
        // Hold back the longest tail that is a prefix of some stop string.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let out = self.held[..keep].to_string();
        self.held.drain(..keep);
        (out, false)
    }

    /// The held-back text, at the end of a generation that did not stop on a string.
    pub(crate) fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_a_possible_stop_and_releases_it_when_it_is_not_one() {
        let mut m = StopMatcher::new(&["\n\n".into(), "END".into()]);
        assert_eq!(m.push("let x = 1;\n"), ("let x = 1;".into(), false));
        assert_eq!(m.push("let"), ("\nlet".into(), false));
        assert_eq!(m.push(" E"), (" ".into(), false));
        assert_eq!(m.push("N"), ("".into(), false));
        assert_eq!(m.push("Dx"), ("".into(), true));
    }

    #[test]
    fn stops_inside_a_chunk_and_flushes_at_the_end() {
        let mut m = StopMatcher::new(&["}".into()]);
        assert_eq!(m.push("a}b"), ("a".into(), true));
        let mut m = StopMatcher::new(&["éz".into()]);
        assert_eq!(m.push("aé"), ("a".into(), false));
        assert_eq!(m.flush(), "é");
    }
}
