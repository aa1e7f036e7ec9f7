//! One datagram's fate: what `--drop/--delay/--jitter/--duplicate/--reorder` decide,
//! from a seeded generator, four draws per datagram whatever the outcome, so the same
//! `--seed` and the same input order give the same decisions.

use std::time::Duration;

/// What `--drop/--delay/--jitter/--duplicate/--reorder` ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Impairment {
    /// Probability of dropping a reply.
    pub drop: f64,
    /// Fixed delay of every reply.
    pub delay: Duration,
    /// Each reply's delay varies uniformly within ± this (never below zero).
    pub jitter: Duration,
    /// Probability of sending a reply twice.
    pub duplicate: f64,
    /// Probability of holding a reply back until the next one has gone.
    pub reorder: f64,
}

/// The fate of one reply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub drop: bool,
    /// 1, or 2 when duplicated.
    pub copies: u8,
    pub delay: Duration,
    /// Held back until the next reply has been sent.
    pub hold: bool,
}

impl Impairment {
    /// True when any impairment is asked for.
    pub fn is_active(&self) -> bool {
        *self != Impairment::default()
    }

    /// Decide one reply's fate.
    pub fn decide(&self, rng: &mut Rng) -> Decision {
        // Always four draws, in this order, so later decisions do not depend on earlier
        // outcomes.
        let (d, u, r, j) = (rng.unit(), rng.unit(), rng.unit(), rng.unit());
        let jitter = self.jitter.as_secs_f64() * (2.0 * j - 1.0);
        let delay = (self.delay.as_secs_f64() + jitter).max(0.0);
        Decision {
            drop: d < self.drop,
            copies: if u < self.duplicate { 2 } else { 1 },
            delay: Duration::from_secs_f64(delay),
            hold: r < self.reorder,
        }
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): small, fast, and good enough for coin flips.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_decisions() {
        let imp = Impairment {
            drop: 0.3,
            duplicate: 0.2,
            reorder: 0.1,
            jitter: Duration::from_millis(5),
            ..Default::default()
        };
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..1000).map(|_| imp.decide(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn probabilities_hold_over_many_draws() {
        let imp = Impairment {
            drop: 0.05,
            duplicate: 0.5,
            ..Default::default()
        };
        let mut rng = Rng::new(7);
        let ds: Vec<Decision> = (0..100_000).map(|_| imp.decide(&mut rng)).collect();
        let drops = ds.iter().filter(|d| d.drop).count();
        let dups = ds.iter().filter(|d| d.copies == 2).count();
        assert!((4_500..5_500).contains(&drops), "{drops}");
        assert!((49_000..51_000).contains(&dups), "{dups}");
        assert!(ds.iter().all(|d| !d.hold && d.delay.is_zero()));
    }

    #[test]
    fn the_generator_is_splitmix64() {
        // Known answers of the reference splitmix64 from seed 0 (Vigna, splitmix64.c).
        let mut rng = Rng::new(0);
        assert_eq!(rng.next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next(), 0x06c4_5d18_8009_454f);
        let mut rng = Rng::new(0);
        let u = rng.unit();
        assert_eq!(
            u,
            (0xe220_a839_7b1d_cdafu64 >> 11) as f64 / (1u64 << 53) as f64
        );
    }

    #[test]
    fn an_impairment_is_active_when_any_part_is_asked_for() {
        assert!(!Impairment::default().is_active());
        for imp in [
            Impairment {
                drop: 0.1,
                ..Impairment::default()
            },
            Impairment {
                delay: Duration::from_millis(1),
                ..Impairment::default()
            },
            Impairment {
                jitter: Duration::from_millis(1),
                ..Impairment::default()
            },
            Impairment {
                duplicate: 0.1,
                ..Impairment::default()
            },
            Impairment {
                reorder: 0.1,
                ..Impairment::default()
            },
        ] {
            assert!(imp.is_active(), "{imp:?}");
        }
    }

    #[test]
    fn the_delay_is_the_base_plus_a_jitter_drawn_around_it() {
        // The fourth draw of each decision sets the jitter: replay the same generator to
        // know it, and check delay = base + jitter * (2j - 1), exactly.
        let imp = Impairment {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            ..Impairment::default()
        };
        let mut rng = Rng::new(42);
        let mut twin = Rng::new(42);
        for _ in 0..100 {
            let d = imp.decide(&mut rng);
            let (_, _, _, j) = (twin.unit(), twin.unit(), twin.unit(), twin.unit());
            let want = 0.050 + 0.020 * (2.0 * j - 1.0);
            assert!(
                (d.delay.as_secs_f64() - want).abs() < 1e-9,
                "{:?} vs {want}",
                d.delay
            );
        }
    }

    #[test]
    fn certainties_are_certain() {
        let mut rng = Rng::new(1);
        let all = Impairment {
            drop: 1.0,
            ..Default::default()
        };
        assert!((0..1000).all(|_| all.decide(&mut rng).drop));
        let none = Impairment::default();
        assert!(!none.is_active());
        assert!((0..1000).all(|_| !none.decide(&mut rng).drop));
        // Every kind, never and always.
        let never = Impairment {
            delay: Duration::from_millis(1),
            ..Default::default()
        };
        for d in (0..1000).map(|_| never.decide(&mut rng)) {
            assert!(!d.drop && d.copies == 1 && !d.hold, "{d:?}");
        }
        let always = Impairment {
            duplicate: 1.0,
            reorder: 1.0,
            ..Default::default()
        };
        for d in (0..1000).map(|_| always.decide(&mut rng)) {
            assert!(!d.drop && d.copies == 2 && d.hold, "{d:?}");
        }
    }

    #[test]
    fn jitter_stays_within_bounds_and_above_zero() {
        let imp = Impairment {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(4),
            ..Default::default()
        };
        let mut rng = Rng::new(3);
        for _ in 0..10_000 {
            let d = imp.decide(&mut rng).delay;
            assert!(
                d >= Duration::from_millis(6) && d <= Duration::from_millis(14),
                "{d:?}"
            );
        }
        let imp = Impairment {
            jitter: Duration::from_millis(4),
            ..Default::default()
        };
        assert!((0..1000).all(|_| imp.decide(&mut rng).delay <= Duration::from_millis(4)));
    }
}
