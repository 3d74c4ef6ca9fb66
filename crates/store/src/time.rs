use chrono::{DateTime, TimeZone, Utc};

use crate::StoreError;

/// Timestamps are stored as UTC milliseconds since the Unix epoch on both backends.
pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::corrupt(format!("timestamp {ms} out of range")))
}
