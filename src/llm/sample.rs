//! Choosing the next token from logits: greedy (deterministic) or sampled
//! with temperature and top-p from a seeded generator (reproducible).

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the lowest id on ties).
    Greedy,
    /// A draw from the softmax of `logits / temperature`, restricted to the
    /// most likely tokens whose probabilities add up to `top_p`.
    TopP {
        temperature: f32,
        top_p: f32,
        seed: u64,
    },
}

/// Picks tokens according to a [`Sampling`].
///
/// ```
/// use xpu::llm::{Sampler, Sampling};
/// let mut greedy = Sampler::new(Sampling::Greedy);
/// assert_eq!(greedy.next(&[0.1, 2.0, -1.0]), 1);
/// let sampled = Sampling::TopP { temperature: 0.8, top_p: 0.9, seed: 7 };
/// let (mut a, mut b) = (Sampler::new(sampled), Sampler::new(sampled));
/// let logits = [1.0, 1.1, 0.9, 1.05];
/// let run = |s: &mut Sampler| (0..20).map(|_| s.next(&logits)).collect::<Vec<_>>();
/// assert_eq!(run(&mut a), run(&mut b));
/// ```
pub struct Sampler {
    sampling: Sampling,
    state: u64,
}

impl Sampler {
    pub fn new(sampling: Sampling) -> Sampler {
        let state = match sampling {
            Sampling::TopP { seed, .. } => seed,
            Sampling::Greedy => 0,
        };
        Sampler { sampling, state }
    }

    /// A uniform draw in [0, 1) (SplitMix64).
    fn uniform(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// The next token.
    pub fn next(&mut self, logits: &[f32]) -> u32 {
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0 as u32
        };
        let Sampling::TopP {
            temperature, top_p, ..
        } = self.sampling
        else {
            return argmax();
        };
        if temperature <= 0.0 {
            return argmax();
        }
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut probs: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, ((v - max) / temperature).exp()))
            .collect();
        let total: f32 = probs.iter().map(|p| p.1).sum();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = 0;
        let mut mass = 0f32;
        for (_, p) in &probs {
            kept += 1;
            mass += p / total;
            if mass >= top_p {
                break;
            }
        }
        let kept_mass: f32 = probs[..kept].iter().map(|p| p.1).sum();
        let mut target = self.uniform() * kept_mass;
        for &(id, p) in &probs[..kept] {
            if target < p {
                return id;
            }
            target -= p;
        }
        probs[kept - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_p_keeps_only_the_likely_tokens() {
        // Token 2 holds almost all the mass: with top-p 0.5 nothing else is drawn.
        let logits = [0.0, 1.0, 10.0, 0.5];
        let mut s = Sampler::new(Sampling::TopP {
            temperature: 1.0,
            top_p: 0.5,
            seed: 1,
        });
        assert!((0..200).all(|_| s.next(&logits) == 2));
    }

    #[test]
    fn sampling_draws_in_proportion() {
        let logits = [0.0f32, 0.0];
        let mut s = Sampler::new(Sampling::TopP {
            temperature: 1.0,
            top_p: 1.0,
            seed: 3,
        });
        let ones = (0..4000).filter(|_| s.next(&logits) == 1).count();
        assert!((1700..2300).contains(&ones), "{ones} of 4000");
    }
}
