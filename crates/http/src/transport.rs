//! The accept loop: HTTP/1.1 connections served by hyper, with the limits that keep one
//! client from holding the gateway (issue 13):
//!
//! - a cap on the connections open at once from one source address (an IPv6 /64 counts as
//!   one address): connections beyond it are closed as soon as they are accepted;
//! - a header timeout: a request's headers must arrive within `header_read_timeout` of their
//!   first byte (of the connection's accept, for its first request), however steadily they
//!   trickle in;
//! - an idle timeout: a kept-alive connection that starts no new request within
//!   `idle_timeout` is closed. It is separate from the header timeout so that a load
//!   balancer's pooled connections outlive the balancer's own idle timeout (60 s on most),
//!   and the balancer, not the gateway, closes them: the other way round, a request sent just
//!   as the gateway closes is lost (a 502 at the balancer).
//!
//! The request deadline and the request slots are per request, in [`crate::limits`].
//! Graceful shutdown: accepting stops, idle connections close, requests in flight finish.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::HttpLimits;

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish and returns once every connection is closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let peers = Arc::new(PeerCounts::new(limits.max_connections_per_ip));
    // Told to every connection when shutdown begins.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    // Each connection holds a receiver; `closed()` resolves when the last one is gone.
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = peers.admit(peer.ip()) else {
            // Closed unread: a client over its share gets nothing to wait on.
            drop(stream);
            continue;
        };
        let router = router.clone();
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let read = Arc::new(AtomicU64::new(0));
            let io = TokioIo::new(CountingStream {
                inner: stream,
                read: read.clone(),
            });
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    // Handlers read the peer address as axum's `ConnectInfo` provides it.
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request)
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(RequestWaitTimer {
                    header_read_timeout: limits.header_read_timeout,
                    idle_timeout: limits.idle_timeout,
                    read,
                    first: AtomicBool::new(true),
                })
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(io, service);
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                // Timeouts and clients that went away: routine, and a flood would flood the
                // log.
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(admitted);
            drop(done);
        });
    }
    drop(listener);
    drop(done_rx);
    let _ = stop_tx.send(());
    done_tx.closed().await;
    Ok(())
}

/// What to do when `accept` fails: a connection that failed before we got it is nobody's
/// concern; anything else (out of file descriptors, most often) is logged, and accepting
/// pauses briefly rather than spinning.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The address a connection counts against: IPv4 as is, IPv6 by its /64 (one host is
/// usually given a whole /64), an IPv4-mapped IPv6 address as the IPv4 one.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(s))
            }
        },
    }
}

/// Connections open per source address.
struct PeerCounts {
    max: usize,
    open: Mutex<HashMap<IpAddr, Peer>>,
}

#[derive(Default)]
struct Peer {
    connections: usize,
    /// Whether its refusal was logged since it last fell below the cap.
    refusal_logged: bool,
}

impl PeerCounts {
    fn new(max: usize) -> Self {
        PeerCounts {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`, or refuses it when the source is at its cap.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let source = source_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let peer = open.entry(source).or_default();
        if peer.connections >= self.max {
            if !peer.refusal_logged {
                peer.refusal_logged = true;
                tracing::warn!(
                    source = %source,
                    max_connections_per_ip = self.max,
                    "connections from this address are at the cap; closing new ones"
                );
            }
            return None;
        }
        peer.connections += 1;
        Some(Admitted {
            counts: Arc::clone(self),
            source,
        })
    }
}

/// One admitted connection; dropping it gives the source its place back.
struct Admitted {
    counts: Arc<PeerCounts>,
    source: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(peer) = open.get_mut(&self.source) {
            peer.connections = peer.connections.saturating_sub(1);
            if peer.connections == 0 {
                open.remove(&self.source);
            } else if peer.connections < self.counts.max {
                peer.refusal_logged = false;
            }
        }
    }
}

/// The TCP stream, counting the bytes read so that the header timer can tell an idle
/// connection from one whose headers are arriving.
struct CountingStream {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for CountingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            this.read
                .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// hyper's timer for one connection. hyper's HTTP/1 server asks it for exactly one thing:
/// the header timeout, started each time the connection waits for a request. hyper would
/// count that from the start of the wait, so a connection kept alive between requests would
/// be closed after the header timeout too; this timer instead allows `idle_timeout` until
/// the request's first byte arrives, then `header_read_timeout` from that byte. A fresh
/// connection's first request gets the header timeout from the start, as a client that
/// connects has something to send.
struct RequestWaitTimer {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    read: Arc<AtomicU64>,
    first: AtomicBool,
}

impl hyper::rt::Timer for RequestWaitTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(RequestWait {
            sleep: Box::pin(tokio::time::sleep(duration)),
            header_read_timeout: None,
            read: Arc::clone(&self.read),
            read_at_start: 0,
        })
    }

    /// The `deadline` hyper passes is the start of the wait plus the header timeout; the
    /// wait starts now.
    fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        if self.first.swap(false, Ordering::Relaxed) {
            return self.sleep(self.header_read_timeout);
        }
        Box::pin(RequestWait {
            sleep: Box::pin(tokio::time::sleep(self.idle_timeout)),
            header_read_timeout: Some(self.header_read_timeout),
            read: Arc::clone(&self.read),
            read_at_start: self.read.load(Ordering::Relaxed),
        })
    }
}

/// One wait for a request's headers: the idle allowance until a byte arrives, then the
/// header timeout from that byte (hyper polls this after every read that leaves the headers
/// incomplete, so the switch happens when the byte arrives). Bytes of a pipelined request
/// that hyper read before the wait began do not count as its first byte: such a request gets
/// the idle allowance, still a bound.
struct RequestWait {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The header timeout to switch to at the first byte; `None` once switched, or for a
    /// plain sleep (a fresh connection's wait is the header timeout from the start).
    header_read_timeout: Option<Duration>,
    read: Arc<AtomicU64>,
    read_at_start: u64,
}

impl Future for RequestWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(timeout) = self.header_read_timeout {
            if self.read.load(Ordering::Relaxed) != self.read_at_start {
                self.header_read_timeout = None;
                let deadline = tokio::time::Instant::now() + timeout;
                self.sleep.as_mut().reset(deadline);
            }
        }
        self.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for RequestWait {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_of(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_source_at_its_cap_is_refused_until_a_connection_closes() {
        let counts = Arc::new(PeerCounts::new(2));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = counts.admit(ip).unwrap();
        let _second = counts.admit(ip).unwrap();
        assert!(counts.admit(ip).is_none());
        assert!(counts.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(counts.admit(ip).is_some());
    }
}
