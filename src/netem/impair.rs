//! One datagram's fate: what `--drop/--delay/--jitter/--duplicate/--reorder/--corrupt`
//! decide, from a seeded generator, four draws per datagram whatever the outcome (six
//! with `--corrupt`), so the same `--seed` and the same input order give the same
//! decisions.

use std::time::Duration;

use super::dist::Distribution;
use super::link::LinkSpec;

/// What `--drop/--delay/--jitter/--duplicate/--reorder` ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Impairment {
    /// Probability of dropping a reply (the long-run rate, with `drop_burst`).
    pub drop: f64,
    /// Mean length of a run of drops (`--drop-burst N`): losses follow a two-state
    /// Gilbert–Elliott chain whose long-run loss rate is `drop`. None: each datagram is
    /// dropped on its own coin.
    pub drop_burst: Option<f64>,
    /// Fixed delay of every reply.
    pub delay: Duration,
    /// Each reply's delay varies by up to this, never below zero: evenly within ± it, or
    /// as `distribution` shapes it.
    pub jitter: Duration,
    /// How the delay varies (`--delay-distribution`, netem's tables).
    pub distribution: Distribution,
    /// A bottleneck (`--bandwidth`, `--queue`).
    pub link: Option<LinkSpec>,
    /// Probability of sending a reply twice.
    pub duplicate: f64,
    /// Probability of reordering a reply: sent at once past the delayed ones, or, with no
    /// delay, held back until the next one has gone.
    pub reorder: f64,
    /// Probability of flipping one random bit of the payload (`--corrupt`).
    pub corrupt: f64,
    /// The largest payload the path takes (`--mtu N` less the IP and UDP headers of the
    /// family it goes on); a larger datagram is dropped.
    pub max_payload: Option<usize>,
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
    /// Corrupted: which bit to flip, as a fraction of the payload's bits.
    pub flip: Option<f64>,
}

impl Impairment {
    /// True when datagrams are delayed (`--delay` or `--jitter`): `--reorder` then sends
    /// one at once, past the delayed ones.
    pub fn delays(&self) -> bool {
        !self.delay.is_zero() || !self.jitter.is_zero()
    }

    /// True when any impairment is asked for.
    pub fn is_active(&self) -> bool {
        *self != Impairment::default()
    }

    /// Decide one reply's fate; `bad` is the loss chain's state (in a burst), carried
    /// from one datagram to the next.
    pub fn decide(&self, rng: &mut Rng, bad: &mut bool) -> Decision {
        // Always four draws, in this order, so later decisions do not depend on earlier
        // outcomes.
        let (d, u, r, j) = (rng.unit(), rng.unit(), rng.unit(), rng.unit());
        let jitter = self.jitter.as_secs_f64() * self.distribution.deviation(j);
        let delay = (self.delay.as_secs_f64() + jitter).max(0.0);
        let drop = match self.drop_burst {
            Some(n) => {
                let (enter, leave) = gilbert(self.drop, n);
                *bad = if *bad { d >= leave } else { d < enter };
                *bad
            }
            None => d < self.drop,
        };
        // Two more draws when corruption is asked for (a flag's, never an outcome's, choice).
        let flip = if self.corrupt > 0.0 {
            let (c, b) = (rng.unit(), rng.unit());
            (c < self.corrupt).then_some(b)
        } else {
            None
        };
        Decision {
            flip,
            drop,
            copies: if u < self.duplicate { 2 } else { 1 },
            delay: Duration::from_secs_f64(delay),
            hold: r < self.reorder,
        }
    }
}

/// Flip the bit of `payload` that `at` (in [0, 1)) points to; false for an empty payload.
pub fn flip_bit(payload: &mut [u8], at: f64) -> bool {
    let bits = payload.len() * 8;
    if bits == 0 {
        return false;
    }
    let bit = ((at * bits as f64) as usize).min(bits - 1);
    payload[bit / 8] ^= 1 << (bit % 8);
    true
}

/// The Gilbert chain's transition probabilities for a long-run loss rate `p` and a mean
/// burst of `n` datagrams: leave a burst with 1/n (runs are geometric, mean n), enter one
/// with p/(n(1 - p)), so that the time spent in bursts, all lost, is p. netem's
/// `loss gemodel ENTER LEAVE 100% 0%` (tc-netem(8): p, r, 1-h, 1-k).
pub fn gilbert(p: f64, n: f64) -> (f64, f64) {
    let leave = 1.0 / n.max(1.0);
    let enter = if p >= 1.0 {
        1.0
    } else {
        (p * leave / (1.0 - p)).min(1.0)
    };
    (enter, leave)
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
            let mut bad = false;
            (0..1000)
                .map(|_| imp.decide(&mut rng, &mut bad))
                .collect::<Vec<_>>()
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
        let mut bad = false;
        let ds: Vec<Decision> = (0..100_000)
            .map(|_| imp.decide(&mut rng, &mut bad))
            .collect();
        let drops = ds.iter().filter(|d| d.drop).count();
        let dups = ds.iter().filter(|d| d.copies == 2).count();
        assert!((4_500..5_500).contains(&drops), "{drops}");
        assert!((49_000..51_000).contains(&dups), "{dups}");
        assert!(ds.iter().all(|d| !d.hold && d.delay.is_zero()));
    }

    #[test]
    fn burst_loss_keeps_its_long_run_rate_and_mean_run_within_one_percent() {
        // P = 5%, N = 4 over 10^7 draws: the rate and the mean run, each within 1%.
        let imp = Impairment {
            drop: 0.05,
            drop_burst: Some(4.0),
            ..Default::default()
        };
        let (mut rng, mut bad) = (Rng::new(11), false);
        let (mut drops, mut runs, mut prev) = (0u64, 0u64, false);
        for _ in 0..10_000_000 {
            let d = imp.decide(&mut rng, &mut bad).drop;
            drops += u64::from(d);
            runs += u64::from(d && !prev);
            prev = d;
        }
        let rate = drops as f64 / 1e7;
        let mean = drops as f64 / runs as f64;
        assert!((rate - 0.05).abs() < 0.0005, "rate {rate}");
        assert!((mean - 4.0).abs() < 0.04, "mean run {mean}");
    }

    #[test]
    fn the_chain_is_netems_gemodel_with_all_lost_in_bursts() {
        let (enter, leave) = gilbert(0.05, 4.0);
        assert!((leave - 0.25).abs() < 1e-12);
        assert!((enter - 0.05 * 0.25 / 0.95).abs() < 1e-12);
        // The stationary share of the bad state is the loss rate.
        assert!((enter / (enter + leave) - 0.05).abs() < 1e-12);
        assert_eq!(gilbert(1.0, 3.0).0, 1.0, "all lost: always in a burst");
        assert_eq!(gilbert(0.5, 0.5).1, 1.0, "a burst is at least one datagram");
        // Without a burst length each datagram is its own coin: no state carried.
        let imp = Impairment {
            drop: 1.0,
            ..Default::default()
        };
        let mut bad = false;
        assert!(imp.decide(&mut Rng::new(1), &mut bad).drop);
        assert!(!bad);
    }

    #[test]
    fn the_chain_loses_as_netems_gemodel_defines_it() {
        // tc-netem(8): `loss gemodel p r 1-h 1-k`, the kernel's loss_gilb_ell: in the good
        // state move to bad with p and lose with 1-k; in the bad state move to good with
        // r and lose with 1-h, each decided from the state the datagram found. With the
        // parameters dgram maps --drop 5% --drop-burst 4 to (p, r, 100%, 0%), 10^7
        // datagrams of each: the same long-run loss and mean burst within 1%.
        let (p, r) = gilbert(0.05, 4.0);
        let (one_minus_h, one_minus_k) = (1.0, 0.0);
        let mut rng = Rng::new(99);
        let mut good = true;
        let netem: Vec<bool> = (0..10_000_000)
            .map(|_| {
                let (t, l) = (rng.unit(), rng.unit());
                if good {
                    good = t >= p;
                    l < one_minus_k
                } else {
                    good = t < r;
                    l < one_minus_h
                }
            })
            .collect();
        let imp = Impairment {
            drop: 0.05,
            drop_burst: Some(4.0),
            ..Default::default()
        };
        let (mut rng, mut bad) = (Rng::new(7), false);
        let ours: Vec<bool> = (0..10_000_000)
            .map(|_| imp.decide(&mut rng, &mut bad).drop)
            .collect();
        let loss_and_burst = |v: &[bool]| {
            let lost = v.iter().filter(|&&d| d).count() as f64;
            let runs = v.windows(2).filter(|w| w[1] && !w[0]).count() as f64;
            (lost / v.len() as f64, lost / runs)
        };
        let ((l1, b1), (l2, b2)) = (loss_and_burst(&netem), loss_and_burst(&ours));
        assert!((l1 - l2).abs() <= 0.01 * l1, "loss {l1} (netem) vs {l2}");
        assert!((b1 - b2).abs() <= 0.01 * b1, "burst {b1} (netem) vs {b2}");
    }

    #[test]
    fn corruption_flips_exactly_one_bit_and_only_when_asked() {
        let imp = Impairment {
            corrupt: 1.0,
            ..Default::default()
        };
        let mut rng = Rng::new(5);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let d = imp.decide(&mut rng, &mut false);
            let at = d.flip.expect("corrupt 100%");
            let mut p = [0u8; 4];
            assert!(flip_bit(&mut p, at));
            assert_eq!(p.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
            seen.insert(u32::from_le_bytes(p));
        }
        assert_eq!(seen.len(), 32, "every bit of the payload can be the one");
        assert!(!flip_bit(&mut [], 0.5), "an empty payload has no bit");
        // A set bit is cleared (a flip, not a set), and the last bit is the furthest.
        let mut ones = [0xffu8; 2];
        assert!(flip_bit(&mut ones, 0.0));
        assert_eq!(ones, [0xfe, 0xff]);
        let mut p = [0u8; 2];
        assert!(flip_bit(&mut p, 1.0), "rounding up to the end stays inside");
        assert_eq!(p, [0, 0x80]);
        let none = Impairment::default();
        assert!(none.decide(&mut rng, &mut false).flip.is_none());
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
            let d = imp.decide(&mut rng, &mut false);
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
        assert!((0..1000).all(|_| all.decide(&mut rng, &mut false).drop));
        let none = Impairment::default();
        assert!(!none.is_active());
        assert!((0..1000).all(|_| !none.decide(&mut rng, &mut false).drop));
        // Every kind, never and always.
        let never = Impairment {
            delay: Duration::from_millis(1),
            ..Default::default()
        };
        for d in (0..1000).map(|_| never.decide(&mut rng, &mut false)) {
            assert!(!d.drop && d.copies == 1 && !d.hold, "{d:?}");
        }
        let always = Impairment {
            duplicate: 1.0,
            reorder: 1.0,
            ..Default::default()
        };
        for d in (0..1000).map(|_| always.decide(&mut rng, &mut false)) {
            assert!(!d.drop && d.copies == 2 && d.hold, "{d:?}");
        }
    }

    #[test]
    fn delays_follow_their_distribution_in_mean_deviation_and_percentiles() {
        // 10^6 delays of 100 ms ± 20 ms per distribution against the distribution itself
        // (uniform's exact, a table's 4,096 equally likely values, as netem draws them):
        // mean and deviation within 2%, the 10/50/90/99th percentiles within 3%.
        use super::super::dist::{Distribution, SCALE};
        let (base, jitter) = (100.0, 20.0);
        for dist in Distribution::ALL {
            let imp = Impairment {
                delay: Duration::from_millis(100),
                jitter: Duration::from_millis(20),
                distribution: dist,
                ..Default::default()
            };
            let mut rng = Rng::new(17);
            let mut got: Vec<f64> = (0..1_000_000)
                .map(|_| imp.decide(&mut rng, &mut false).delay.as_secs_f64() * 1e3)
                .collect();
            got.sort_by(f64::total_cmp);
            let want: Vec<f64> = match dist.table() {
                None => (0..100_000)
                    .map(|k| base + jitter * (2.0 * (k as f64 + 0.5) / 100_000.0 - 1.0))
                    .collect(),
                Some(t) => t
                    .iter()
                    .map(|&v| base + jitter * f64::from(v) / SCALE)
                    .collect(),
            };
            let stats = |v: &[f64]| {
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
                (mean, var.sqrt())
            };
            let ((m, d), (wm, wd)) = (stats(&got), stats(&want));
            assert!((m - wm).abs() <= 0.02 * wm, "{dist:?} mean {m} vs {wm}");
            assert!(
                (d - wd).abs() <= 0.02 * wd,
                "{dist:?} deviation {d} vs {wd}"
            );
            let pct = |v: &[f64], q: f64| v[((q * v.len() as f64) as usize).min(v.len() - 1)];
            for q in [0.10, 0.50, 0.90, 0.99] {
                let (g, w) = (pct(&got, q), pct(&want, q));
                assert!((g - w).abs() <= 0.03 * w, "{dist:?} p{q}: {g} vs {w}");
            }
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
            let d = imp.decide(&mut rng, &mut false).delay;
            assert!(
                d >= Duration::from_millis(6) && d <= Duration::from_millis(14),
                "{d:?}"
            );
        }
        let imp = Impairment {
            jitter: Duration::from_millis(4),
            ..Default::default()
        };
        assert!(
            (0..1000).all(|_| imp.decide(&mut rng, &mut false).delay <= Duration::from_millis(4))
        );
    }
}
