//! Reading a request body up to a size limit, in bounded time, and draining one that is over
//! the limit so that the client hears the refusal.
//!
//! A server that answers an oversized body and closes the connection with the rest unread
//! makes the kernel reset the connection: a client still sending (most clients send the
//! whole body before reading) gets the reset, not the answer. So the rest of the body is read
//! and thrown away, up to [`DRAIN_LIMIT_BYTES`] and within the same time bound; beyond that
//! the connection is closed after the answer.

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use http_body_util::BodyExt;

/// How much of an oversized body is read and discarded before the refusal is sent.
pub(crate) const DRAIN_LIMIT_BYTES: usize = 8 * 1024 * 1024;

/// What came of reading a body.
#[derive(Debug)]
pub(crate) enum BodyRead {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// Over the limit. `drained`: the body was read to its end, so the connection is clean;
    /// otherwise it must be closed after the answer.
    TooLarge { drained: bool },
    /// Not received within the time bound.
    TimedOut,
    /// The connection broke while reading it.
    Broken,
}

/// Reads `body` (of at most `limit` bytes) within `timeout`. A body declared larger than
/// the limit with `Expect: 100-continue` (`expects_continue`) is refused unread: the client
/// has not sent it.
pub(crate) async fn read_limited(
    body: Body,
    limit: usize,
    timeout: Duration,
    expects_continue: bool,
) -> BodyRead {
    let declared = body.size_hint().exact();
    let declared = declared.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > limit && (expects_continue || n > DRAIN_LIMIT_BYTES)) {
        return BodyRead::TooLarge { drained: false };
    }
    let drain_limit = DRAIN_LIMIT_BYTES.max(limit);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = body;
    let mut kept = Vec::new();
    let mut total: usize = 0;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(_))) if total > limit => return BodyRead::TooLarge { drained: false },
            Ok(Some(Err(_))) => return BodyRead::Broken,
            Err(_) if total > limit => return BodyRead::TooLarge { drained: false },
            Err(_) => return BodyRead::TimedOut,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total <= limit {
            kept.extend_from_slice(&data);
        } else if total > drain_limit {
            return BodyRead::TooLarge { drained: false };
        } else {
            kept = Vec::new();
        }
    }
    if total > limit {
        BodyRead::TooLarge { drained: true }
    } else {
        BodyRead::Complete(Bytes::from(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(len: usize, limit: usize, expects_continue: bool) -> BodyRead {
        let body = Body::from(vec![b'a'; len]);
        read_limited(body, limit, Duration::from_secs(5), expects_continue).await
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_kept_whole() {
        assert!(matches!(read(100, 100, false).await, BodyRead::Complete(b) if b.len() == 100));
        assert!(matches!(read(0, 100, false).await, BodyRead::Complete(b) if b.is_empty()));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_read_to_its_end_up_to_the_drain_limit() {
        assert!(matches!(
            read(101, 100, false).await,
            BodyRead::TooLarge { drained: true }
        ));
        assert!(matches!(
            read(DRAIN_LIMIT_BYTES + 1, 100, false).await,
            BodyRead::TooLarge { drained: false }
        ));
    }

    #[tokio::test]
    async fn a_client_waiting_for_100_continue_is_refused_before_it_sends() {
        assert!(matches!(
            read(101, 100, true).await,
            BodyRead::TooLarge { drained: false }
        ));
        assert!(matches!(read(100, 100, true).await, BodyRead::Complete(_)));
    }
}
