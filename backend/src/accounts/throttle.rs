//! Login attempts limited per account and per client address, so passwords cannot be guessed at
//! the speed of the network (OWASP's authentication cheat sheet). Kept in memory: a restart
//! forgets the counts, which only gives an attacker one more window after each restart.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a failed attempt counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed attempts one account may have within [`WINDOW`].
pub const PER_ACCOUNT: usize = 5;
/// Failed attempts one address may have within [`WINDOW`] (several people behind one NAT).
pub const PER_ADDRESS: usize = 30;
/// More keys than this and the oldest-expired ones are swept out, so a flood of made-up
/// usernames cannot grow the map without bound.
const SWEEP_ABOVE: usize = 10_000;

/// Counts failed logins.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

impl LoginThrottle {
    /// `Some(wait)` when this account or address has used up its attempts; the login must be
    /// refused without even checking the password.
    pub fn blocked(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.lock();
        let mut wait = None;
        for (key, limit) in keys(username, address) {
            if let Some(times) = failures.get_mut(&key) {
                forget_old(times, now);
                if times.len() >= limit
                    && let Some(oldest) = times.front()
                {
                    let left = WINDOW.saturating_sub(now - *oldest);
                    wait = Some(wait.map_or(left, |w: Duration| w.max(left)));
                }
            }
        }
        wait
    }

    /// Records a failed attempt.
    pub fn failed(&self, username: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                forget_old(times, now);
                !times.is_empty()
            });
        }
        for (key, _) in keys(username, address) {
            failures.entry(key).or_default().push_back(now);
        }
    }

    /// A successful login clears the account's count (not the address's: one right password
    /// must not reset guessing at other accounts from there).
    pub fn succeeded(&self, username: &str) {
        self.lock().remove(&Key::Account(username.to_lowercase()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // A panic elsewhere while holding it left only counters behind.
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn keys(username: &str, address: Option<IpAddr>) -> impl Iterator<Item = (Key, usize)> {
    std::iter::once((Key::Account(username.trim().to_lowercase()), PER_ACCOUNT))
        .chain(address.map(|a| (Key::Address(a), PER_ADDRESS)))
}

fn forget_old(times: &mut VecDeque<Instant>, now: Instant) {
    while times.front().is_some_and(|t| now - *t >= WINDOW) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_an_account_after_its_failures_and_a_success_clears_it() {
        let throttle = LoginThrottle::default();
        let here: Option<IpAddr> = Some([127, 0, 0, 1].into());
        for _ in 0..PER_ACCOUNT {
            assert_eq!(throttle.blocked("Ana", here), None);
            throttle.failed("Ana", here);
        }
        let wait = throttle.blocked("ana", here).unwrap_or_default();
        assert!(
            wait <= WINDOW && wait > WINDOW - Duration::from_secs(5),
            "blocked, case-insensitively"
        );
        assert_eq!(throttle.blocked("bob", here), None, "other accounts still may");
        throttle.succeeded("ANA");
        assert_eq!(throttle.blocked("ana", here), None);
    }

    #[test]
    fn blocks_an_address_guessing_across_accounts() {
        let throttle = LoginThrottle::default();
        let there: Option<IpAddr> = Some([10, 0, 0, 9].into());
        for n in 0..PER_ADDRESS {
            throttle.failed(&format!("user{n}"), there);
        }
        assert!(throttle.blocked("fresh", there).is_some());
        assert_eq!(throttle.blocked("fresh", Some([10, 0, 0, 8].into())), None);
    }
}
