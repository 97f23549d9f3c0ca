//! Named leases: which one holder, among all sharing the database, runs a
//! task that only one may run at a time.

use std::time::Duration;

use crate::core::Hopper;
use crate::store::{LeaseHolder, LeaseRequest, StoreError};

/// A named lease as one holder takes it: each take renews it for
/// `hold_for`, so another holder takes over soon after this one stops
/// renewing.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    /// The lease's name, shared by every holder that competes for it.
    name: &'static str,
    /// Who is taking it.
    holder: String,
    /// How long one take holds it.
    hold_for: Duration,
}

impl Lease {
    /// `holder`'s view of the lease `name`, held for `hold_for` per take.
    pub(crate) fn new(name: &'static str, holder: impl Into<String>, hold_for: Duration) -> Self {
        Self {
            name,
            holder: holder.into(),
            hold_for,
        }
    }

    /// The lease's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// This holder and the lease's name, as the store names a lease.
    fn holder(&self) -> LeaseHolder<'_> {
        LeaseHolder {
            name: self.name,
            holder: &self.holder,
        }
    }

    /// Takes or renews the lease until `hold_for` from the database's now;
    /// whether this holder holds it.
    pub(crate) async fn take(&self, hopper: &Hopper) -> Result<bool, StoreError> {
        hopper
            .store()
            .try_lease(LeaseRequest {
                lease: self.holder(),
                ttl: self.hold_for,
                now: hopper.database_now(),
            })
            .await
    }

    /// Gives the lease up if this holder holds it, so another may take it at
    /// once; a failure is logged (the lease then runs out by itself).
    pub(crate) async fn give_up(&self, hopper: &Hopper) {
        if let Err(error) = hopper.store().drop_lease(self.holder()).await {
            tracing::warn!(%error, "giving up the {} lease failed", self.name);
        }
    }
}
