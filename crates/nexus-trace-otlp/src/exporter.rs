//! The exporter's two tasks: a reader that follows the bus and assembles
//! spans into batches, and a sender that POSTs them to the collector.
//!
//! They are joined by a bounded channel of `max_queued_batches` batches, so a
//! slow collector costs at most that many batches of memory: further batches
//! are dropped (counted), and the reader keeps following the bus. If even the
//! reader falls behind, the bus overwrites what it has not read and it is
//! told how many events it missed (`Lagged`). Nothing here ever makes a
//! publisher wait.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nexus_trace_core::{Bus, RecvError, Subscription, TryRecvError};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{ConfigError, OtlpExporterBuilder, Settings};
use crate::convert::{self, Assembler, Item, Noted};
use crate::stats::{Shared, Stats};

/// Exports the requests seen on a [`Bus`] as OTLP spans over OTLP/HTTP
/// (protobuf). Create it with [`builder`](OtlpExporter::builder) or
/// [`from_env`](OtlpExporter::from_env), then [`spawn`](OtlpExporter::spawn)
/// it.
///
/// The exporter reads the bus through its own subscription, so it can never
/// slow down a request: the bus does not wait for it.
pub struct OtlpExporter {
    sub: Subscription,
    settings: Settings,
    client: reqwest::Client,
    shared: Arc<Shared>,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("url", &self.settings.url.as_str())
            .field("batch_size", &self.settings.batch_size)
            .field("max_pending", &self.settings.max_pending)
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// A builder with the defaults (endpoint [`DEFAULT_ENDPOINT`](crate::DEFAULT_ENDPOINT)).
    /// It subscribes to `bus` right away: every event published from now on
    /// is exported once the exporter runs.
    pub fn builder(bus: &Bus) -> OtlpExporterBuilder {
        OtlpExporterBuilder::new(bus)
    }

    /// An exporter configured from the standard `OTEL_EXPORTER_OTLP_*`
    /// environment variables (see [`OtlpExporterBuilder::with_env`]), with
    /// the defaults for everything else.
    ///
    /// # Errors
    /// [`ConfigError`] for a malformed variable or an invalid endpoint.
    pub fn from_env(bus: &Bus) -> Result<OtlpExporter, ConfigError> {
        OtlpExporterBuilder::new(bus).with_env()?.build()
    }

    pub(crate) fn new(sub: Subscription, settings: Settings, client: reqwest::Client) -> Self {
        OtlpExporter {
            sub,
            settings,
            client,
            shared: Arc::new(Shared::default()),
        }
    }

    /// The URL spans are POSTed to.
    pub fn traces_url(&self) -> &str {
        self.settings.url.as_str()
    }

    /// Runs the exporter on the current tokio runtime (which needs its time
    /// driver enabled, as `#[tokio::main]` does).
    ///
    /// # Errors
    /// [`ConfigError::NoRuntime`] when called outside a tokio runtime.
    pub fn spawn(self) -> Result<ExporterHandle, ConfigError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        Ok(self.spawn_on(&rt))
    }

    /// Runs the exporter on `rt` (which needs its time driver enabled).
    pub fn spawn_on(self, rt: &tokio::runtime::Handle) -> ExporterHandle {
        let OtlpExporter {
            sub,
            settings,
            client,
            shared,
        } = self;
        let settings = Arc::new(settings);
        let (tx, rx) = mpsc::channel(settings.max_queued_batches);
        let (stop_tx, stop_rx) = oneshot::channel();
        let reader = rt.spawn(read(sub, settings.clone(), tx, shared.clone(), stop_rx));
        let sender = rt.spawn(send(rx, client, settings.clone(), shared.clone()));
        ExporterHandle {
            shared,
            stop: Some(stop_tx),
            reader,
            sender,
            url: settings.url.to_string(),
        }
    }
}

/// A running exporter. Dropping it detaches the exporter: it then runs until
/// every [`Bus`] handle is gone (and flushes what it has then).
pub struct ExporterHandle {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<Instant>>,
    reader: JoinHandle<()>,
    sender: JoinHandle<()>,
    url: String,
}

impl fmt::Debug for ExporterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterHandle")
            .field("url", &self.url)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ExporterHandle {
    /// A snapshot of the exporter's counters.
    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }

    /// The last export error, if any (for diagnostics).
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error()
    }

    /// A cloneable view of the counters, e.g. for a metrics endpoint or a
    /// task that reports export errors.
    pub fn monitor(&self) -> ExporterMonitor {
        ExporterMonitor {
            shared: self.shared.clone(),
        }
    }

    /// The URL spans are POSTed to.
    pub fn traces_url(&self) -> &str {
        &self.url
    }

    /// Has the exporter stopped (after the bus closed, or a shutdown)?
    pub fn is_finished(&self) -> bool {
        self.reader.is_finished() && self.sender.is_finished()
    }

    /// Stops reading the bus, exports every span that is complete (what was
    /// already published included) within `timeout`, and stops. Spans not
    /// sent by then, and requests still open, are counted in
    /// [`DroppedSpans::shutdown`](crate::DroppedSpans::shutdown). Returns
    /// the final counters.
    ///
    /// Outside a tokio runtime it only tells the exporter to stop, without
    /// waiting.
    pub async fn shutdown(mut self, timeout: Duration) -> Stats {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(deadline);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return self.stats();
        }
        for task in [&mut self.reader, &mut self.sender] {
            if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
                task.abort();
                let _ = (&mut *task).await;
            }
        }
        // Both tasks are gone: what is still queued was never sent.
        let unsent = self.shared.queued.swap(0, Ordering::Relaxed);
        Shared::add(&self.shared.shutdown, unsent);
        self.stats()
    }
}

/// A cloneable, read-only view of a running exporter's counters; see
/// [`ExporterHandle::monitor`].
#[derive(Clone)]
pub struct ExporterMonitor {
    shared: Arc<Shared>,
}

impl fmt::Debug for ExporterMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterMonitor")
            .field("stats", &self.stats())
            .finish()
    }
}

impl ExporterMonitor {
    /// A snapshot of the exporter's counters.
    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }

    /// The last export error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error()
    }
}

/// Follows the bus, assembles spans, and hands full batches to the sender;
/// partial batches go after `flush_interval`.
async fn read(
    mut sub: Subscription,
    settings: Arc<Settings>,
    tx: mpsc::Sender<Vec<Item>>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<Instant>,
) {
    let mut asm = Assembler::new(settings.max_pending);
    let mut ready: Vec<Item> = Vec::new();
    let period = settings.flush_interval;
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut detached = false;
    let deadline = loop {
        tokio::select! {
            biased;
            stopped = &mut stop, if !detached => match stopped {
                Ok(deadline) => break Some(deadline),
                // The handle was dropped: run until the bus closes.
                Err(_) => detached = true,
            },
            _ = tick.tick() => {
                if !ready.is_empty() {
                    enqueue(&tx, &mut ready, &shared);
                }
            }
            item = sub.recv() => match item {
                Ok(ev) => {
                    shared.events_received.fetch_add(1, Ordering::Relaxed);
                    accept(&mut asm, &ev, &mut ready, &shared);
                    if ready.len() >= settings.batch_size {
                        enqueue(&tx, &mut ready, &shared);
                        tick.reset();
                    }
                }
                Err(RecvError::Lagged(n)) => Shared::add(&shared.events_lagged, n),
                Err(RecvError::Closed) => break None,
            },
        }
    };

    // Take in what was published before the stop, then flush it all.
    loop {
        match sub.try_recv() {
            Ok(ev) => {
                shared.events_received.fetch_add(1, Ordering::Relaxed);
                accept(&mut asm, &ev, &mut ready, &shared);
            }
            Err(TryRecvError::Lagged(n)) => Shared::add(&shared.events_lagged, n),
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    drop(sub);
    Shared::add(&shared.shutdown, asm.pending() as u64);
    let mut rest = ready.into_iter().peekable();
    while rest.peek().is_some() {
        let batch: Vec<Item> = rest.by_ref().take(settings.batch_size).collect();
        let n = batch.len() as u64;
        shared.queued.fetch_add(n, Ordering::Relaxed);
        let sent = match deadline {
            Some(deadline) => matches!(
                tokio::time::timeout_at(deadline, tx.send(batch)).await,
                Ok(Ok(()))
            ),
            None => tx.send(batch).await.is_ok(),
        };
        if !sent {
            shared.queued.fetch_sub(n, Ordering::Relaxed);
            Shared::add(&shared.shutdown, n);
        }
    }
}

fn accept(
    asm: &mut Assembler,
    ev: &nexus_trace_core::Event,
    ready: &mut Vec<Item>,
    shared: &Shared,
) {
    let mut noted = Noted::default();
    if let Some(item) = asm.on_event(ev, &mut noted) {
        ready.push(item);
    }
    if noted != Noted::default() {
        Shared::add(&shared.pending_evicted, noted.evicted);
        Shared::add(&shared.invalid_ids, noted.invalid);
        Shared::add(&shared.logs_unattached, noted.logs_unattached);
    }
}

/// Hands the ready spans to the sender, or drops them (counted) when it is
/// still busy with `max_queued_batches` batches.
fn enqueue(tx: &mpsc::Sender<Vec<Item>>, ready: &mut Vec<Item>, shared: &Shared) {
    let batch = std::mem::take(ready);
    let n = batch.len() as u64;
    // Counted before the send, so the sender's decrement never comes first.
    shared.queued.fetch_add(n, Ordering::Relaxed);
    if tx.try_send(batch).is_err() {
        shared.queued.fetch_sub(n, Ordering::Relaxed);
        Shared::add(&shared.queue_full, n);
    }
}

/// Sends batches until the reader is gone.
async fn send(
    mut rx: mpsc::Receiver<Vec<Item>>,
    client: reqwest::Client,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
) {
    while let Some(batch) = rx.recv().await {
        let n = batch.len() as u64;
        let body = convert::request(batch).encode_to_vec();
        match export(&client, &settings, body, &shared).await {
            Ok(rejected) => {
                let rejected = rejected.min(n);
                Shared::add(&shared.spans_exported, n - rejected);
                Shared::add(&shared.rejected, rejected);
                Shared::add(&shared.batches_exported, 1);
            }
            Err(error) => {
                Shared::add(&shared.export_failed, n);
                Shared::add(&shared.batches_failed, 1);
                shared.set_error(error);
            }
        }
        shared.queued.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One export request with its retries. Returns how many spans the collector
/// rejected (an OTLP partial success), or why it failed.
async fn export(
    client: &reqwest::Client,
    s: &Settings,
    body: Vec<u8>,
    shared: &Shared,
) -> Result<u64, String> {
    let mut backoff = s.initial_backoff;
    let mut attempt = 0;
    loop {
        let sent = client
            .post(s.url.clone())
            .headers(s.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .timeout(s.timeout)
            .body(body.clone())
            .send()
            .await;
        let (retryable, error, retry_after) = match sent {
            Ok(res) if res.status().is_success() => {
                return Ok(partial_success(res, shared).await);
            }
            Ok(res) => {
                let status = res.status();
                let retry_after = res
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                (
                    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
                    format!("{} answered {status}", s.url),
                    retry_after,
                )
            }
            Err(e) => (e.is_connect(), describe(&e, s), None),
        };
        if !retryable || attempt >= s.max_retries {
            return Err(error);
        }
        attempt += 1;
        Shared::add(&shared.retries, 1);
        let wait = retry_after.map_or(backoff, |ra| ra.max(backoff));
        tokio::time::sleep(wait.min(s.max_backoff)).await;
        backoff = backoff.saturating_mul(2).min(s.max_backoff);
    }
}

/// The rejected span count of a successful response, 0 when it has none or
/// cannot be read.
async fn partial_success(res: reqwest::Response, shared: &Shared) -> u64 {
    let Ok(bytes) = res.bytes().await else {
        return 0;
    };
    let Ok(response) = ExportTraceServiceResponse::decode(bytes) else {
        return 0;
    };
    match response.partial_success {
        Some(p) if p.rejected_spans > 0 || !p.error_message.is_empty() => {
            if !p.error_message.is_empty() {
                shared.set_error(format!("collector: {}", p.error_message));
            }
            u64::try_from(p.rejected_spans).unwrap_or(0)
        }
        _ => 0,
    }
}

/// A client error with its causes (reqwest's own text leaves them out).
fn describe(e: &reqwest::Error, s: &Settings) -> String {
    if e.is_timeout() {
        return format!("{}: timed out after {:?}", s.url, s.timeout);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
