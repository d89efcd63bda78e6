//! Picking the next token from logits: greedy by default, or temperature with top-k/top-p and a
//! repetition penalty, from a seeded generator so that sampled runs can be replayed.

use crate::Sampling;

/// A sampler for one generation.
#[derive(Debug, Clone)]
pub struct Sampler {
    settings: Sampling,
    rng: SplitMix64,
}

impl Sampler {
    pub fn new(settings: Sampling) -> Sampler {
        let rng = SplitMix64(settings.seed ^ 0x9E37_79B9_7F4A_7C15);
        Sampler { settings, rng }
    }

    /// Picks a token; `history` holds the tokens so far (prompt and generated), newest last.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let s = &self.settings;
        if s.repeat_penalty != 1.0 && s.repeat_penalty > 0.0 && s.repeat_last_n > 0 {
            let start = history.len().saturating_sub(s.repeat_last_n);
            let mut seen: Vec<u32> = history[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / s.repeat_penalty } else { *l * s.repeat_penalty };
                }
            }
        }
        if s.temperature.is_nan() || s.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> =
            logits.iter().enumerate().map(|(i, &l)| (i as u32, l / s.temperature)).collect();
        // Larger logits first, the lower id first on ties, so the order is total and repeatable.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        match s.top_k.filter(|&k| k > 0 && k < candidates.len()) {
            // With a vocabulary of 150,000 tokens, selecting the top k and sorting only them is
            // far cheaper than sorting everything.
            Some(k) => {
                candidates.select_nth_unstable_by(k - 1, order);
                candidates.truncate(k);
                candidates.sort_unstable_by(order);
            }
            None => candidates.sort_unstable_by(order),
        }
        let max = candidates.first().map(|c| c.1).unwrap_or(0.0);
        let mut probs: Vec<f32> = candidates.iter().map(|c| (c.1 - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        for p in &mut probs {
            *p /= total;
        }
        if let Some(top_p) = s.top_p.filter(|&p| p > 0.0 && p < 1.0) {
            let mut cumulative = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                cumulative += p;
                if cumulative >= top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            candidates.truncate(keep);
        }
        let total: f32 = probs.iter().sum();
        let mut target = self.rng.next_f32() * total;
        for (candidate, p) in candidates.iter().zip(&probs) {
            if target < *p {
                return candidate.0;
            }
            target -= p;
        }
        candidates.last().map(|c| c.0).unwrap_or(0)
    }
}

/// The index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l > best_value {
            best_value = l;
            best = i;
        }
    }
    best as u32
}

#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_the_largest_logit() {
        let mut sampler = Sampler::new(Sampling::default());
        assert_eq!(sampler.sample(&mut [0.1, 3.0, -1.0, 2.9], &[]), 1);
    }

    #[test]
    fn the_repeat_penalty_steers_away_from_recent_tokens() {
        let settings = Sampling { repeat_penalty: 2.0, ..Sampling::default() };
        let mut sampler = Sampler::new(settings);
        assert_eq!(sampler.sample(&mut [0.1, 3.0, -1.0, 2.0], &[1]), 3);
    }

    #[test]
    fn top_k_selection_keeps_the_k_largest_in_order() {
        // Distinct logits over a large vocabulary: with top_k = 3 and a low temperature the draw
        // is one of the three largest, and mostly the largest.
        let mut logits: Vec<f32> = (0..50_000).map(|i| ((i * 7919) % 50_000) as f32 / 50_000.0).collect();
        logits[123] = 10.0;
        logits[456] = 9.5;
        logits[789] = 9.0;
        let settings = Sampling { temperature: 0.5, top_k: Some(3), seed: 3, ..Sampling::default() };
        let mut sampler = Sampler::new(settings);
        let draws: Vec<u32> = (0..200).map(|_| sampler.sample(&mut logits.clone(), &[])).collect();
        assert!(draws.iter().all(|t| [123, 456, 789].contains(t)), "{draws:?}");
        let largest = draws.iter().filter(|&&t| t == 123).count();
        assert!(largest > 100 && largest < 200, "{largest}");
    }

    #[test]
    fn sampling_is_seeded_and_respects_top_k() {
        let settings = Sampling { temperature: 1.0, top_k: Some(2), seed: 7, ..Sampling::default() };
        let logits = [0.0, 5.0, 4.5, -3.0, 1.0];
        let run = |settings: &Sampling| {
            let mut sampler = Sampler::new(settings.clone());
            (0..50).map(|_| sampler.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        let a = run(&settings);
        assert_eq!(a, run(&settings));
        assert!(a.iter().all(|&t| t == 1 || t == 2));
        assert!(a.contains(&1) && a.contains(&2));
    }
}
