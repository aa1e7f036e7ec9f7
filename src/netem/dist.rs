//! Delay distributions as netem draws them (`--delay-distribution`): `uniform` within
//! ± jitter, or one of iproute2's tables (`normal`, `pareto`, `paretonormal`), each 4,096
//! values of an inverse distribution function scaled by 8,192, from which netem takes
//! one at a uniform index: delay = base + jitter × value / 8,192 (the kernel's
//! `tabledist`).
//!
//! The tables are made here as iproute2's public-domain generators make them
//! (`netem/normal.c`, `pareto.c`, `paretonormal.c`, from NIST Net), so dgram needs no
//! `/usr/lib/*/tc/*.dist` on the machine; a test holds them to the installed files.

use std::sync::OnceLock;

/// Values in a table.
pub const TABLE_LEN: usize = 4096;
/// What a table's values are scaled by (the kernel's `NETEM_DIST_SCALE`).
pub const SCALE: f64 = 8192.0;

/// How a delay varies around `--delay`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Distribution {
    /// Evenly within ± jitter.
    #[default]
    Uniform,
    Normal,
    /// Pareto with shape 3, shifted to mean zero: most a little early, a long late tail.
    Pareto,
    /// A quarter normal, three quarters pareto (NIST Net's fit of measured delays).
    ParetoNormal,
}

impl Distribution {
    /// Every one, as `--delay-distribution` names them.
    pub const ALL: [Distribution; 4] = [
        Distribution::Uniform,
        Distribution::Normal,
        Distribution::Pareto,
        Distribution::ParetoNormal,
    ];

    /// netem's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::Pareto => "pareto",
            Distribution::ParetoNormal => "paretonormal",
        }
    }

    /// The one `name` names.
    pub fn from_name(name: &str) -> Option<Distribution> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Its table, made on first use (None for uniform, which needs none).
    pub fn table(self) -> Option<&'static [i16; TABLE_LEN]> {
        static NORMAL: OnceLock<[i16; TABLE_LEN]> = OnceLock::new();
        static PARETO: OnceLock<[i16; TABLE_LEN]> = OnceLock::new();
        static PARETONORMAL: OnceLock<[i16; TABLE_LEN]> = OnceLock::new();
        match self {
            Distribution::Uniform => None,
            Distribution::Normal => Some(NORMAL.get_or_init(|| {
                let normal = normal_quantiles();
                table(|i| rint(normal[i] * SCALE))
            })),
            Distribution::Pareto => Some(PARETO.get_or_init(|| table(pareto_value))),
            Distribution::ParetoNormal => Some(PARETONORMAL.get_or_init(|| {
                let normal = normal_quantiles();
                // C's integer division: toward zero.
                table(|i| (rint(normal[i] * SCALE) + 3 * pareto_value(i)) / 4)
            })),
        }
    }

    /// A delay's deviation from the base, in units of the jitter, for a uniform draw
    /// `u` in [0, 1).
    pub fn deviation(self, u: f64) -> f64 {
        match self.table() {
            None => 2.0 * u - 1.0,
            Some(t) => f64::from(t[((u * TABLE_LEN as f64) as usize).min(TABLE_LEN - 1)]) / SCALE,
        }
    }
}

/// C's `rint` in the default rounding mode (half to even), as an int.
fn rint(x: f64) -> i32 {
    x.round_ties_even() as i32
}

/// The table of `value(i)` for i = 0, 4, …, 16,380, clamped to a short, as the
/// generators print it.
fn table(value: impl Fn(usize) -> i32) -> [i16; TABLE_LEN] {
    std::array::from_fn(|k| value(4 * k).clamp(i16::MIN as i32, i16::MAX as i32) as i16)
}

/// normal.c's inverse of the normal distribution function on 16,384 steps: the last x of
/// a walk from −10 to 10 by 0.00005 whose Φ(x), times 16,384 and rounded, is i.
fn normal_quantiles() -> Vec<f64> {
    let mut quantiles = vec![0.0; 16_385];
    let mut x = -10.0f64;
    while x < 10.05 {
        let phi = 0.5 + 0.5 * libm::erf(x / std::f64::consts::SQRT_2);
        quantiles[rint(16_384.0 * phi) as usize] = x;
        x += 0.00005;
    }
    quantiles
}

/// pareto.c's value for step i (of 16,384): Pareto with shape 3 at 1 − i/16,384, less its
/// mean 1.5, times 4/3, scaled, capped at the largest short.
fn pareto_value(i: usize) -> i32 {
    let u = (65_536 - 4 * i) as f64 / 65_536.0;
    let v = (1.0 / libm::pow(u, 1.0 / 3.0) - 1.5) * (4.0 / 3.0) * SCALE;
    rint(v.min(32_767.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// iproute2's installed table, when there is one.
    fn installed(name: &str) -> Option<Vec<i16>> {
        let dirs = std::fs::read_dir("/usr/lib").ok()?;
        let path = dirs
            .flatten()
            .map(|d| d.path().join("tc").join(format!("{name}.dist")))
            .chain([std::path::PathBuf::from(format!("/usr/lib/tc/{name}.dist"))])
            .find(|p| p.exists())?;
        let text = std::fs::read_to_string(path).ok()?;
        Some(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .flat_map(str::split_whitespace)
                .map(|v| v.parse().expect("a table holds numbers"))
                .collect(),
        )
    }

    #[test]
    fn the_tables_are_iproute2s() {
        for d in [
            Distribution::Normal,
            Distribution::Pareto,
            Distribution::ParetoNormal,
        ] {
            let ours = d.table().expect("a table");
            let Some(theirs) = installed(d.name()) else {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI installs iproute2, whose {}.dist this compares with",
                    d.name()
                );
                eprintln!("skipped: no {}.dist (iproute2's tc tables) here", d.name());
                continue;
            };
            assert_eq!(theirs.len(), TABLE_LEN, "{}", d.name());
            // The same values; erf and pow may differ from glibc's in the last bit, which
            // can move a value sitting on a rounding edge by one.
            let off: Vec<_> = (0..TABLE_LEN)
                .filter(|&k| ours[k] != theirs[k])
                .map(|k| (k, ours[k], theirs[k]))
                .collect();
            assert!(
                off.len() <= 4 && off.iter().all(|(_, a, b)| (a - b).abs() <= 1),
                "{}: {off:?}",
                d.name()
            );
        }
    }

    #[test]
    fn the_tables_have_their_distributions_shapes() {
        let t = Distribution::Normal.table().unwrap();
        // Increasing, centred on zero, one unit of jitter at 84.13% (Φ(1)).
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert!(t[TABLE_LEN / 2].abs() < 10, "{}", t[TABLE_LEN / 2]);
        let at = (0.8413 * TABLE_LEN as f64) as usize;
        assert!((f64::from(t[at]) / SCALE - 1.0).abs() < 0.01, "{}", t[at]);
        assert_eq!((t[0], t[TABLE_LEN - 1]), (i16::MIN, 28_858));
        // Pareto: from −2/3 up to the cap, its median below its mean (a late tail).
        let p = Distribution::Pareto.table().unwrap();
        assert_eq!(p[0], -5461);
        assert_eq!(p[TABLE_LEN - 1], i16::MAX);
        assert!(p.windows(2).all(|w| w[0] <= w[1]));
        assert!(p[TABLE_LEN / 2] < 0);
        let pn = Distribution::ParetoNormal.table().unwrap();
        assert_eq!(
            pn[TABLE_LEN / 2],
            ((t[TABLE_LEN / 2] as i32 + 3 * p[TABLE_LEN / 2] as i32) / 4) as i16
        );
    }

    #[test]
    fn names_are_netems() {
        for d in Distribution::ALL {
            assert_eq!(Distribution::from_name(d.name()), Some(d));
        }
        assert_eq!(Distribution::from_name("gauss"), None);
        assert_eq!(Distribution::default(), Distribution::Uniform);
        assert!(Distribution::Uniform.table().is_none());
        assert_eq!(Distribution::Uniform.deviation(0.0), -1.0);
        assert_eq!(Distribution::Uniform.deviation(0.75), 0.5);
        let t = Distribution::Normal.table().unwrap();
        assert_eq!(Distribution::Normal.deviation(0.0), f64::from(t[0]) / SCALE);
        assert_eq!(
            Distribution::Normal.deviation(0.9999999),
            f64::from(t[TABLE_LEN - 1]) / SCALE
        );
        assert_eq!(
            Distribution::Normal.deviation(0.5),
            f64::from(t[2048]) / SCALE
        );
        // A draw of exactly 1 (never made, but the index stays inside) is the last value.
        assert_eq!(
            Distribution::Normal.deviation(1.0),
            f64::from(t[TABLE_LEN - 1]) / SCALE
        );
    }
}
