//! Rate limits, over governor (the only module that names it): GCRA limiters that read time from the
//! server's [`Clock`], so tests drive them with a manual clock instead of waiting.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;

/// Adapts tocsin's clock (milliseconds) to governor's.
#[derive(Debug, Clone)]
struct ClockAdapter(Arc<dyn Clock>);

impl GovernorClock for ClockAdapter {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Duration::from_millis(self.0.now().as_millis().max(0) as u64))
    }
}

/// One rate: `per_second` on average with bursts of `burst`.
#[derive(Debug)]
pub struct Limiter {
    inner: RateLimiter<NotKeyed, InMemoryState, ClockAdapter, NoOpMiddleware<Nanos>>,
    clock: ClockAdapter,
    burst: u32,
}

impl Limiter {
    /// `per_second` must be above zero and `burst` at least 1 (config validation ensures both).
    pub fn new(per_second: f64, burst: u32, clock: Arc<dyn Clock>) -> Limiter {
        let period =
            Duration::from_secs_f64(1.0 / per_second.max(1e-6)).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let clock = ClockAdapter(clock);
        Limiter {
            inner: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            burst: burst.max(1),
        }
    }

    /// Takes every cell there is: the next one comes at the rate. For a sender taking a room over from
    /// another instance, which may have used the burst just before.
    pub fn exhaust(&self) {
        for _ in 0..self.burst {
            if self.inner.check().is_err() {
                return;
            }
        }
    }

    /// Takes one cell if there is one; otherwise says how long until there is.
    pub fn check(&self) -> Result<(), Duration> {
        self.inner
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::time::Timestamp;

    #[test]
    fn a_burst_then_the_rate_on_the_test_clock() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let limiter = Limiter::new(1.0, 3, Arc::new(clock.clone()));
        assert!((0..3).all(|_| limiter.check().is_ok()));
        assert_eq!(limiter.check(), Err(Duration::from_secs(1)));
        let taken_over = Limiter::new(1.0, 3, Arc::new(clock.clone()));
        taken_over.exhaust();
        assert_eq!(taken_over.check(), Err(Duration::from_secs(1)));
        clock.advance(Duration::from_millis(999));
        assert!(limiter.check().is_err());
        clock.advance(Duration::from_millis(1));
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
    }
}
