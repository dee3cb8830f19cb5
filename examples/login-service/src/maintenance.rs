//! Background maintenance: key reloads every tick, table pruning every
//! 20th.

use std::sync::Weak;

use crate::Inner;

/// Ticks between pruning rounds (10 min at the default 30 s reload).
const PRUNE_EVERY: u64 = 20;

/// Key reloads and table pruning. Holds the state weakly, so the task ends
/// once the app is dropped.
pub(crate) fn spawn(state: Weak<Inner>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut rounds: u64 = 0;
        loop {
            ticks.tick().await;
            let Some(state) = state.upgrade() else { return };
            if let Err(e) = state.reload_keys().await {
                tracing::warn!(error = %e, "signing key reload failed; keeping current keys");
            }
            rounds += 1;
            // Pruning is housekeeping: not every tick. Each part on its
            // own, so one failing does not skip the other.
            if rounds.is_multiple_of(PRUNE_EVERY) {
                if let Err(e) = state.sessions.prune().await {
                    tracing::warn!(error = %e, "pruning sessions failed");
                }
                if let Err(e) = state.throttle.prune().await {
                    tracing::warn!(error = %e, "pruning throttle counters failed");
                }
            }
        }
    });
}
