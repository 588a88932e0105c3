//! A fake's state as its handlers share it: its configuration, what it has seen so far, and
//! its clock (real time plus however far a test moved it), each behind its own lock.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

pub(crate) struct Shared<C, I> {
    config: Mutex<C>,
    inner: Mutex<I>,
    clock_offset: Mutex<Duration>,
}

impl<C: Clone, I: Default> Shared<C, I> {
    pub(crate) fn new(config: C) -> Arc<Self> {
        Arc::new(Shared {
            config: Mutex::new(config),
            inner: Mutex::new(I::default()),
            clock_offset: Mutex::new(Duration::zero()),
        })
    }

    pub(crate) fn inner(&self) -> MutexGuard<'_, I> {
        self.inner.lock().expect("fake state")
    }

    pub(crate) fn config(&self) -> C {
        self.config.lock().expect("fake config").clone()
    }

    /// Changes the configuration of the running fake.
    pub(crate) fn configure(&self, f: impl FnOnce(&mut C)) {
        f(&mut self.config.lock().expect("fake config"));
    }

    /// The fake's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.clock_offset.lock().expect("fake clock")
    }

    /// Moves the fake's clock forward.
    pub(crate) fn advance(&self, by: Duration) {
        *self.clock_offset.lock().expect("fake clock") += by;
    }
}
