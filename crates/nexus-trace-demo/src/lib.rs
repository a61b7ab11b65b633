//! The demo shop's framework-independent parts, shared by the axum demo
//! (`cargo run --release --example demo`) and the actix-web demo
//! (`cargo run --release --example demo-actix`): arguments, the SQLite
//! database, the payments call, the background traffic, the banner, the
//! `tracing` bridge and the optional OTLP export. Each example is only the
//! web framework's wiring around these.
//!
//! The SQLite queries are reported through `tracing` spans (no `record`
//! call): the [`NexusTracingLayer`] installed by [`install_tracing`] turns them into
//! downstream events of their request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nexus_trace_core::{context, Bus, TraceContext};
use nexus_trace_http::client::TracedRequest;
use nexus_trace_http::serve::gate::Access;
use nexus_trace_otlp::{ExporterHandle, OtlpExporter};
use nexus_trace_tracing::NexusTracingLayer;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value};
use tracing::field::Empty;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// How to run a demo.
pub const USAGE: &str = "usage: demo [--addr HOST:PORT] [--no-traffic] [--capacity N] [--otlp]
  --otlp                   also export spans over OTLP/HTTP (protobuf) to
                           OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318)
  env NEXUS_TOKEN=<token>  require a bearer token for /__nexus instead of loopback-only";

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Args {
    /// Where to listen (default 127.0.0.1:8080).
    pub addr: SocketAddr,
    /// Send built-in background traffic (default on).
    pub traffic: bool,
    /// Ring capacity (default 8192).
    pub capacity: usize,
    /// Export spans over OTLP/HTTP (default off).
    pub otlp: bool,
}

impl Args {
    /// Parses the process arguments; prints usage and exits on `--help`.
    pub fn from_env() -> Result<Args, String> {
        Args::parse(std::env::args().skip(1))
    }

    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            traffic: true,
            capacity: 8192,
            otlp: false,
        };
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--addr" => {
                    let v = it.next().ok_or("--addr needs a value")?;
                    parsed.addr = v
                        .parse()
                        .map_err(|e| format!("--addr {v:?}: {e} (expected HOST:PORT)"))?;
                }
                "--no-traffic" => parsed.traffic = false,
                "--otlp" => parsed.otlp = true,
                "--capacity" => {
                    let v = it.next().ok_or("--capacity needs a value")?;
                    parsed.capacity = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=Bus::MAX_CAPACITY).contains(n))
                        .ok_or(format!(
                            "--capacity {v:?}: expected 1..={}",
                            Bus::MAX_CAPACITY
                        ))?;
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }
}

/// Prints `demo: <message>` and the usage, and exits with status 2.
pub fn exit_usage(message: &str) -> ! {
    eprintln!("demo: {message}\n{USAGE}");
    std::process::exit(2);
}

/// The `/__nexus` gate: a bearer token from `NEXUS_TOKEN`, else loopback.
pub fn access_from_env() -> Result<(Access, Option<String>), String> {
    match std::env::var("NEXUS_TOKEN") {
        Ok(token) => Access::bearer(&token)
            .map(|a| (a, Some(token)))
            .map_err(|e| format!("NEXUS_TOKEN: {e}")),
        Err(_) => Ok((Access::loopback(), None)),
    }
}

/// Installs the `tracing` bridge as the process's subscriber: `tracing`
/// events and spans (INFO and above) inside a request are published on that
/// request's trace, and so the SQLite query spans become downstream events.
/// The level filter keeps the HTTP client's DEBUG and TRACE chatter out.
pub fn install_tracing(bus: &Bus) -> Result<(), String> {
    let layer = NexusTracingLayer::new(bus.clone()).with_filter(LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| format!("cannot install the tracing bridge: {e}"))
}

/// Starts the OTLP exporter for `bus`, configured from the standard
/// `OTEL_EXPORTER_OTLP_*` variables, and a task that reports export
/// failures on stderr (at most every 10 s). Needs a tokio runtime.
pub fn start_otlp(bus: &Bus) -> Result<ExporterHandle, String> {
    let exporter = OtlpExporter::from_env(bus)
        .and_then(OtlpExporter::spawn)
        .map_err(|e| e.to_string())?;
    let monitor = exporter.monitor();
    tokio::spawn(async move {
        let mut failed = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let stats = monitor.stats();
            if stats.batches_failed > failed {
                failed = stats.batches_failed;
                eprintln!(
                    "demo: OTLP export failing ({} spans dropped so far): {}",
                    stats.spans_dropped(),
                    monitor.last_error().unwrap_or_default()
                );
            }
        }
    });
    Ok(exporter)
}

/// Flushes the OTLP exporter (for up to 3 s) and prints what it did.
pub async fn stop_otlp(exporter: ExporterHandle) {
    let stats = exporter.shutdown(Duration::from_secs(3)).await;
    println!(
        "otlp: {} spans exported, {} dropped, {} bus events missed",
        stats.spans_exported,
        stats.spans_dropped(),
        stats.events_lagged
    );
}

/// What a handler failed with; each adapter maps it to a status and JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopError {
    /// 400.
    BadRequest(String),
    /// 404.
    NotFound(String),
    /// 502: the payments service failed or declined.
    Upstream(String),
    /// 500.
    Internal(String),
}

impl ShopError {
    /// HTTP status and JSON body.
    pub fn status_and_body(&self) -> (u16, Value) {
        let (status, message) = match self {
            ShopError::BadRequest(m) => (400, m),
            ShopError::NotFound(m) => (404, m),
            ShopError::Upstream(m) => (502, m),
            ShopError::Internal(m) => (500, m),
        };
        (status, json!({ "error": message }))
    }
}

/// An order as posted to `POST /orders`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    /// Customer.
    pub user_id: i64,
    /// What was bought (1 to 128 characters).
    pub item: String,
    /// Price, positive.
    pub amount_cents: i64,
}

/// The shop: its database, an HTTP client, and where payments live.
#[derive(Clone)]
pub struct Shop {
    db: Arc<Mutex<Connection>>,
    http: reqwest::Client,
    payments_url: String,
}

impl std::fmt::Debug for Shop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shop")
            .field("payments_url", &self.payments_url)
            .finish_non_exhaustive()
    }
}

impl Shop {
    /// Creates the in-memory SQLite database with 100 users.
    pub fn open(payments_url: String) -> rusqlite::Result<Shop> {
        let db = Connection::open_in_memory()?;
        db.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);
             CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL
                REFERENCES users(id), item TEXT NOT NULL, amount_cents INTEGER NOT NULL);",
        )?;
        let names = [
            "ada", "grace", "linus", "barbara", "ken", "margaret", "dennis", "frances",
        ];
        let tx = db.unchecked_transaction()?;
        for id in 1..=100 {
            let name = format!("{}-{id}", names[id % names.len()]);
            tx.execute(
                "INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)",
                (id, &name, format!("{name}@example.com")),
            )?;
        }
        tx.commit()?;
        Ok(Shop {
            db: Arc::new(Mutex::new(db)),
            http: reqwest::Client::new(),
            payments_url,
        })
    }

    /// Runs a query on the blocking pool, handing it the request context,
    /// inside the `tracing` span that `span` makes. The span's `error` field
    /// is recorded when the query fails; with the bridge installed the span
    /// becomes a downstream event named after it.
    async fn query<T: Send + 'static>(
        &self,
        span: fn() -> tracing::Span,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ShopError> {
        let db = self.db.clone();
        let ctx = context::current();
        tokio::task::spawn_blocking(move || {
            let _entered = ctx.as_ref().map(TraceContext::enter);
            // Made after entering the request context, so that the bridge
            // attaches it to the request.
            let span = span();
            let _in_span = span.enter();
            let conn = db.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let result = f(&conn);
            if let Err(e) = &result {
                span.record("error", tracing::field::display(e));
            }
            result
        })
        .await
        .map_err(|e| ShopError::Internal(format!("database task failed: {e}")))?
        .map_err(|e| ShopError::Internal(format!("database error: {e}")))
    }

    /// `GET /users/{id}`.
    pub async fn user(&self, id: i64) -> Result<Value, ShopError> {
        let user = self
            .query(
                || tracing::info_span!("db.users.get", db.system = "sqlite", error = Empty),
                move |c| {
                    c.query_row(
                        "SELECT id, name, email FROM users WHERE id = ?1",
                        [id],
                        |r| {
                            Ok(json!({
                                "id": r.get::<_, i64>(0)?,
                                "name": r.get::<_, String>(1)?,
                                "email": r.get::<_, String>(2)?,
                            }))
                        },
                    )
                    .optional()
                },
            )
            .await?;
        user.ok_or_else(|| ShopError::NotFound(format!("no user {id}")))
    }

    /// `POST /orders`: validates, logs, writes the order, charges it through
    /// the payments service (carrying `traceparent`). Returns the JSON body.
    pub async fn order(&self, trace: &TraceContext, order: NewOrder) -> Result<Value, ShopError> {
        let NewOrder {
            user_id,
            item,
            amount_cents,
        } = order;
        if item.trim().is_empty() || item.chars().count() > 128 || amount_cents <= 0 {
            return Err(ShopError::BadRequest(
                "item must be 1 to 128 characters and amountCents positive".into(),
            ));
        }
        // User-supplied text in an event: the dashboard must show it as text.
        trace.log(format!("order: {item} for user {user_id}"));
        let order_id = self
            .query(
                || tracing::info_span!("db.orders.insert", db.system = "sqlite", error = Empty),
                move |c| {
                    c.execute(
                        "INSERT INTO orders (user_id, item, amount_cents) VALUES (?1, ?2, ?3)",
                        (user_id, &item, amount_cents),
                    )?;
                    Ok(c.last_insert_rowid())
                },
            )
            .await?;

        // `send_traced` opens a CLIENT span before the call: the
        // `traceparent` it sends names that span, so payments' server span
        // becomes its child.
        let result = self
            .http
            .post(&self.payments_url)
            .json(&json!({ "orderId": order_id, "amountCents": amount_cents }))
            .send_traced("http.payments.charge")
            .await;
        let error = match &result {
            Err(e) => Some(e.to_string()),
            Ok(res) if !res.status().is_success() => {
                Some(format!("payments answered {}", res.status()))
            }
            Ok(_) => None,
        };
        match (result, error) {
            (Ok(res), None) => Ok(json!({ "orderId": order_id, "payment": res.status().as_u16() })),
            (_, error) => Err(ShopError::Upstream(error.unwrap_or_default())),
        }
    }

    /// `GET /fail`: a failing downstream call, then a 500.
    pub async fn fail(&self) -> ShopError {
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(3)).await;
        context::record("cache.get", start, Some(&"connection refused (demo)"));
        ShopError::Internal("the cache is down (on purpose)".into())
    }
}

/// The payments service's `POST /charge`: a simulated ledger write, then
/// charged (200) or declined (402).
pub async fn charge(body: &Value) -> (u16, Value) {
    let cents = body["amountCents"].as_i64().unwrap_or(0);
    let ledger = tokio::time::sleep(Duration::from_millis(3 + (cents.unsigned_abs() % 12)));
    context::in_span("ledger.write", ledger).await;
    if cents % 20 == 7 {
        (402, json!({ "status": "declined" }))
    } else {
        (200, json!({ "status": "charged" }))
    }
}

const ON_PURPOSE: &str = "this handler panics on purpose";

/// Keeps the demo's own `/panic` requests from printing a panic report
/// (with a backtrace under `RUST_BACKTRACE`) every few seconds; any other
/// panic is reported as usual.
pub fn quiet_intentional_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        let intentional = message == Some(ON_PURPOSE);
        if !intentional {
            default(info);
        }
    }));
}

/// A handler that panics, to show that the request still ends on the bus.
pub fn panic_on_purpose() -> &'static str {
    if std::hint::black_box(true) {
        panic!("{}", ON_PURPOSE);
    }
    "unreachable"
}

/// xorshift64: enough randomness to vary the traffic.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Sends the demo's background traffic to `base` forever.
pub async fn traffic(base: String) {
    let client = reqwest::Client::new();
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64 | 1);
    let mut rng = Rng(seed);
    loop {
        tokio::time::sleep(Duration::from_millis(150 + rng.below(350))).await;
        let roll = rng.below(100);
        let req = if roll < 60 {
            client.get(format!("{base}/users/{}", 1 + rng.below(110)))
        } else if roll < 88 {
            let item = ["book", "lamp", "tea", "desk"][rng.below(4) as usize];
            client.post(format!("{base}/orders")).json(&json!({
                "userId": 1 + rng.below(100),
                "item": item,
                "amountCents": 100 + rng.below(10_000),
            }))
        } else if roll < 98 {
            client.get(format!("{base}/fail"))
        } else {
            client.get(format!("{base}/panic"))
        };
        let _ = req.send().await;
    }
}

/// Prints where to look; `otlp` is where spans are exported to, if anywhere.
pub fn banner(
    framework: &str,
    addr: SocketAddr,
    token: Option<&str>,
    traffic: bool,
    otlp: Option<&str>,
) {
    let base = format!("http://{addr}");
    println!("nexus-trace demo ({framework}) listening on {base}");
    match token {
        Some(t) => println!("  dashboard:  {base}/__nexus/#token={t}"),
        None => println!("  dashboard:  {base}/__nexus/"),
    }
    println!("  live feed:  curl -N {base}/__nexus/events");
    println!(
        "  try:        curl {base}/users/7   |   curl -X POST {base}/orders \
         -H 'content-type: application/json' -d '{{\"userId\":7,\"item\":\"tea\",\"amountCents\":450}}'"
    );
    println!(
        "  traffic:    {}",
        if traffic {
            "built-in background requests (--no-traffic to stop)"
        } else {
            "off"
        }
    );
    match otlp {
        Some(url) => println!("  otlp:       spans exported to {url} (OTLP/HTTP protobuf)"),
        None => println!("  otlp:       off (--otlp exports spans to an OpenTelemetry collector)"),
    }
}

/// The README's Rust examples, compiled as doc tests of this crate, whose
/// dependencies and dev-dependencies cover every crate they use (axum,
/// actix-web, the core, the adapters, the OTLP exporter and the `tracing`
/// bridge): `cargo test --doc -p nexus-trace-demo`. Examples that start a
/// server are `no_run` (compiled, not run); the others also run.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;

/// Resolves on Ctrl-C or SIGTERM (what `docker stop`, systemd and CI send),
/// so both demos end their live streams and stop gracefully on either.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        Args::parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = args(&[]).unwrap();
        assert_eq!((a.addr.port(), a.traffic, a.capacity), (8080, true, 8192));
        assert!(!a.otlp);
        let a = args(&["--addr", "127.0.0.1:0", "--no-traffic", "--capacity", "16"]).unwrap();
        assert_eq!((a.addr.port(), a.traffic, a.capacity), (0, false, 16));
        assert!(args(&["--otlp"]).unwrap().otlp);
        assert!(args(&["--addr"]).unwrap_err().contains("needs a value"));
        assert!(args(&["--addr", "nope"]).unwrap_err().contains("HOST:PORT"));
        assert!(args(&["--capacity", "0"]).is_err());
        assert!(args(&["--bogus"]).unwrap_err().contains("unknown argument"));
    }

    /// The bridge, installed once for this test binary (it publishes request
    /// events to each request's own bus).
    fn bridge() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| install_tracing(&Bus::new(16)).unwrap());
    }

    #[tokio::test]
    async fn queries_are_downstream_events_through_the_tracing_bridge() {
        bridge();
        let shop = Shop::open("http://127.0.0.1:9/charge".into()).unwrap();
        let bus = Bus::new(64);
        let mut sub = bus.subscribe(0);
        let span = nexus_trace_core::SpanContext::new("shop", "/users/{id}");
        let ctx = TraceContext::new(bus.clone(), span);
        let user = context::scope(ctx.clone(), shop.user(7)).await.unwrap();
        assert_eq!(user["id"], 7);
        let start = sub.try_recv().unwrap();
        assert_eq!(
            (start.kind().as_str(), start.message.as_str()),
            ("span.start", "db.users.get")
        );
        let e = sub.try_recv().unwrap();
        assert_eq!(
            (e.kind().as_str(), e.message.as_str()),
            ("downstream", "db.users.get")
        );
        assert_eq!(e.span_id, start.span_id);
        assert_eq!(e.trace_id, ctx.trace_id());
        assert_eq!(e.parent_id, ctx.span().span_id);
        assert!(e.duration_ns > 0);
        assert!(e.error.is_empty());
        assert_eq!(e.attrs["db.system"], "sqlite");

        // A failing query records its error on the event.
        let broken = shop.query(
            || tracing::info_span!("db.broken", error = Empty),
            |c| c.execute("INSERT INTO nope VALUES (1)", []),
        );
        let failed = context::scope(ctx.clone(), broken).await;
        assert!(matches!(failed, Err(ShopError::Internal(_))), "{failed:?}");
        assert_eq!(sub.try_recv().unwrap().kind().as_str(), "span.start");
        let e = sub.try_recv().unwrap();
        assert_eq!(e.message, "db.broken");
        assert!(e.error.contains("no such table"), "{}", e.error);

        // Outside a request nothing is published.
        shop.user(8).await.unwrap();
        assert!(sub.try_recv().is_err());
    }

    #[tokio::test]
    async fn users_and_order_validation() {
        let shop = Shop::open("http://127.0.0.1:9/charge".into()).unwrap();
        assert_eq!(shop.user(7).await.unwrap()["id"], 7);
        assert!(matches!(shop.user(1000).await, Err(ShopError::NotFound(_))));
        let bus = Bus::new(16);
        let ctx = TraceContext::new(bus, nexus_trace_core::SpanContext::new("shop", "/orders"));
        let bad = NewOrder {
            user_id: 1,
            item: String::new(),
            amount_cents: 5,
        };
        assert!(matches!(
            shop.order(&ctx, bad).await,
            Err(ShopError::BadRequest(_))
        ));
    }
}
