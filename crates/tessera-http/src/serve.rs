//! The listener: hyper's HTTP/1 connections with the limits a hostile client must not
//! get around (issue 20):
//!
//! - a request head must arrive within `header_timeout` (hyper's header-read timeout);
//! - a keep-alive connection may stay idle `idle_timeout` between requests; once the first
//!   byte of the next head arrives, that head has `header_timeout` to complete;
//! - at most `max_connections` are served at once; beyond that the accept loop waits and
//!   new connections queue in the kernel's backlog;
//! - the accept loop survives every accept error (EMFILE included): it logs and backs off.
//!
//! The body and the rest of the request are bounded by the router's timeout layer
//! (`HTTP_BODY_TIMEOUT`, answered 408).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// How long the accept loop waits after an accept error (the first, doubled up to 1 s).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in
/// flight finish (idle keep-alive connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF;
                accepted
            }
            // The peer gave up between SYN and accept: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS...: the connection stays in the backlog; wait for
                // descriptors to be freed rather than spin.
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut shutdown => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let reads = Arc::new(AtomicU64::new(0));
        let io = TokioIo::new(Counted { stream, reads: reads.clone() });
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let clock = HeadClock { reads, header: limits.header_timeout, idle: limits.idle_timeout };
        let conn = http1::Builder::new()
            .timer(clock)
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true)
            .serve_connection(io, service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away mid-request is an error hyper reports; not ours.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Accept errors that concern one connection only.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// The default `HTTP_MAX_CONNECTIONS`: the open-file limit less a tenth of it (at least
/// 128) kept for the database, Redis, SMTP and files; at most a million.
pub fn default_max_connections(open_files: u64) -> usize {
    let headroom = (open_files / 10).max(128);
    let max = open_files.saturating_sub(headroom).clamp(16, 1 << 20);
    usize::try_from(max).unwrap_or(1 << 20)
}

/// A TCP stream that counts the bytes read from it, so that [`HeadClock`] can tell an
/// idle keep-alive connection from one whose next head has begun.
struct Counted {
    stream: TcpStream,
    reads: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.reads.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The clock of hyper's header-read timeout on one connection. hyper starts that timeout
/// whenever it waits for a request head, idle keep-alive included; this clock gives the
/// first head on a connection `header` from its start, and a later one `idle` until its
/// first byte arrives, then `header` from that byte.
#[derive(Clone)]
struct HeadClock {
    reads: Arc<AtomicU64>,
    header: Duration,
    idle: Duration,
}

impl hyper::rt::Timer for HeadClock {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let reads_at_start = self.reads.load(Ordering::Relaxed);
        // Nothing read yet: the connection's first head, bounded from its start.
        let idle = reads_at_start > 0;
        let deadline = if idle { Instant::now() + self.idle } else { deadline };
        Box::pin(HeadSleep {
            reads: self.reads.clone(),
            reads_at_start,
            header: self.header,
            idle,
            sleep: tokio::time::sleep_until(deadline.into()),
        })
    }
}

pin_project_lite::pin_project! {
    /// The wait for one request head (see [`HeadClock`]).
    struct HeadSleep {
        reads: Arc<AtomicU64>,
        reads_at_start: u64,
        header: Duration,
        idle: bool,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        // hyper polls this whenever a read leaves the head incomplete, so the first byte
        // of a head is noticed as it arrives.
        if *this.idle && this.reads.load(Ordering::Relaxed) != *this.reads_at_start {
            *this.idle = false;
            this.sleep.as_mut().reset(tokio::time::Instant::now() + *this.header);
        }
        this.sleep.poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}
