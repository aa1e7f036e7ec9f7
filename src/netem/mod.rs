//! What may be done to traffic on its way, pure and seeded, knowing no socket: one
//! datagram's fate ([`impair`]), the pipeline that applies it per direction with its
//! timer queue ([`shaper`], shared by echo and relay), and the token bucket that paces
//! sends and limits sources ([`pacing`]). Uses only `base`.

pub mod dist;
pub mod impair;
pub mod link;
pub mod pacing;
pub mod shaper;

use serde::Serialize;

pub use impair::{Impairment, Rng};
pub use shaper::Shaper;

/// What `--seed` without an impairment is told (echo and relay): it would decide nothing.
pub const SEED_ALONE: &str =
    "--seed makes the impairments repeatable: add --drop, --delay, --jitter, --duplicate or --reorder";

/// A direction through a relay: up is client → upstream, down is upstream → client.
/// Echo's replies go down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    Up,
    Down,
}

impl Dir {
    /// Both, up first.
    pub const BOTH: [Dir; 2] = [Dir::Up, Dir::Down];

    /// `up` or `down`, as `--drop up=5%` and the JSON keys name them.
    pub fn name(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }
}

/// One value per direction (settings, state, counters); serializes as `{"up": …,
/// "down": …}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PerDir<T> {
    pub up: T,
    pub down: T,
}

impl<T> PerDir<T> {
    /// The value for `dir`.
    pub fn get(&self, dir: Dir) -> &T {
        match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        }
    }

    /// The value for `dir`, to change.
    pub fn get_mut(&mut self, dir: Dir) -> &mut T {
        match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        }
    }

    /// Each value made from its direction.
    pub fn from_fn(mut f: impl FnMut(Dir) -> T) -> PerDir<T> {
        PerDir {
            up: f(Dir::Up),
            down: f(Dir::Down),
        }
    }
}

/// `--seed`, or one from the clock when none is given (logged with `-v`, so a run can be
/// repeated).
pub fn seed_or_now(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_dir_values_are_found_by_their_direction() {
        let mut v = PerDir::from_fn(|d| d.name().to_string());
        assert_eq!(v.get(Dir::Up), "up");
        assert_eq!(v.get(Dir::Down), "down");
        v.get_mut(Dir::Down).push('!');
        assert_eq!(v.down, "down!");
        assert_eq!(
            serde_json::to_string(&PerDir { up: 1, down: 2 }).unwrap(),
            r#"{"up":1,"down":2}"#
        );
    }
}
