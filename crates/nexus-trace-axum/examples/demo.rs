//! The nexus-trace demo: a small service with live tracing and the dashboard.
//!
//! ```text
//! cargo run --release --example demo [-- --addr 127.0.0.1:8080] [--no-traffic]
//! ```
//!
//! * `GET /users/{id}`: reads an embedded SQLite database (the query is a
//!   downstream event); ids above 100 are 404.
//! * `POST /orders` (`{"userId":1,"item":"book","amountCents":1299}`): a
//!   SQLite write plus an outbound HTTP call to a second service (payments,
//!   on another loopback port) carrying `traceparent`, both downstream events.
//! * `GET /fail`: a failing downstream call and a 500.
//! * `GET /panic`: the handler panics (the client gets a 500).
//! * `/__nexus/`: the dashboard (loopback only; set `NEXUS_TOKEN` to require
//!   a bearer token instead).
//!
//! Built-in background traffic keeps the dashboard alive; `--no-traffic`
//! switches it off.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nexus_trace_axum::{Access, NexusRoutes, NexusTraceLayer, Trace};
use nexus_trace_core::{context, Bus};
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value};
use tower_http::catch_panic::CatchPanicLayer;

const USAGE: &str = "usage: demo [--addr HOST:PORT] [--no-traffic] [--capacity N]";

struct Args {
    addr: SocketAddr,
    traffic: bool,
    capacity: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:8080".parse().expect("valid default"),
        traffic: true,
        capacity: 8192,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--addr" => {
                let v = it.next().ok_or("--addr needs a value")?;
                args.addr = v
                    .parse()
                    .map_err(|e| format!("--addr {v:?}: {e} (expected HOST:PORT)"))?;
            }
            "--no-traffic" => args.traffic = false,
            "--capacity" => {
                let v = it.next().ok_or("--capacity needs a value")?;
                args.capacity = v
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
    Ok(args)
}

#[derive(Clone)]
struct App {
    db: Arc<Mutex<Connection>>,
    http: reqwest::Client,
    payments: String,
}

/// Errors a handler can return; each becomes a status and a JSON message.
enum AppError {
    BadRequest(String),
    NotFound(String),
    Upstream(String),
    Internal(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            AppError::Upstream(m) => (StatusCode::BAD_GATEWAY, m),
            AppError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

fn open_db() -> rusqlite::Result<Connection> {
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
    Ok(db)
}

/// Runs a query on the blocking pool, handing it the request context, and
/// records it as a downstream event.
async fn db_call<T: Send + 'static>(
    app: &App,
    name: &'static str,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, AppError> {
    let db = app.db.clone();
    let ctx = context::current();
    tokio::task::spawn_blocking(move || {
        let _entered = ctx.as_ref().map(|c| c.enter());
        let start = Instant::now();
        let conn = db.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = f(&conn);
        context::record_result(name, start, &result);
        result
    })
    .await
    .map_err(|e| AppError::Internal(format!("database task failed: {e}")))?
    .map_err(|e| AppError::Internal(format!("database error: {e}")))
}

async fn get_user(State(app): State<App>, Path(id): Path<i64>) -> Result<Json<Value>, AppError> {
    let user = db_call(&app, "db.users.get", move |c| {
        c.query_row(
            "SELECT id, name, email FROM users WHERE id = ?1",
            [id],
            |r| Ok(json!({ "id": r.get::<_, i64>(0)?, "name": r.get::<_, String>(1)?, "email": r.get::<_, String>(2)? })),
        )
        .optional()
    })
    .await?;
    user.map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no user {id}")))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrder {
    user_id: i64,
    item: String,
    amount_cents: i64,
}

async fn create_order(
    State(app): State<App>,
    Trace(trace): Trace,
    Json(order): Json<NewOrder>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let NewOrder {
        user_id,
        item,
        amount_cents,
    } = order;
    if item.trim().is_empty() || item.chars().count() > 128 || amount_cents <= 0 {
        return Err(AppError::BadRequest(
            "item must be 1 to 128 characters and amountCents positive".into(),
        ));
    }
    // User-supplied text in an event: the dashboard must show it as text.
    trace.log(format!("order: {item} for user {user_id}"));
    let order_id = db_call(&app, "db.orders.insert", move |c| {
        c.execute(
            "INSERT INTO orders (user_id, item, amount_cents) VALUES (?1, ?2, ?3)",
            (user_id, &item, amount_cents),
        )?;
        Ok(c.last_insert_rowid())
    })
    .await?;

    // The outbound call carries our trace, so the payments service's events
    // join this request's trace.
    let start = Instant::now();
    let result = app
        .http
        .post(&app.payments)
        .header("traceparent", trace.span().traceparent().to_string())
        .json(&json!({ "orderId": order_id, "amountCents": amount_cents }))
        .send()
        .await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(_) => StatusCode::BAD_GATEWAY,
    };
    let error = match &result {
        Err(e) => Some(e.to_string()),
        Ok(res) if !res.status().is_success() => {
            Some(format!("payments answered {}", res.status()))
        }
        Ok(_) => None,
    };
    trace.record("http.payments.charge", start, error.as_deref());
    if let Some(error) = error {
        return Err(AppError::Upstream(error));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({ "orderId": order_id, "payment": status.as_u16() })),
    ))
}

async fn fail() -> AppError {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(3)).await;
    context::record("cache.get", start, Some("connection refused (demo)"));
    AppError::Internal("the cache is down (on purpose)".into())
}

async fn panic_handler() -> &'static str {
    if std::hint::black_box(true) {
        panic!("this handler panics on purpose");
    }
    "unreachable"
}

/// The second service: charges an order after a simulated ledger write.
async fn charge(Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let start = Instant::now();
    let cents = body["amountCents"].as_i64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(3 + (cents as u64 % 12))).await;
    context::record::<str>("ledger.write", start, None);
    if cents % 20 == 7 {
        return (
            StatusCode::PAYMENT_REQUIRED,
            Json(json!({ "status": "declined" })),
        );
    }
    (StatusCode::OK, Json(json!({ "status": "charged" })))
}

/// xorshift64: enough randomness to vary the traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn traffic(base: String) {
    let client = reqwest::Client::new();
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64 | 1);
    let mut rng = Rng(seed);
    loop {
        tokio::time::sleep(Duration::from_millis(150 + rng.next(350))).await;
        let roll = rng.next(100);
        let req = if roll < 60 {
            client.get(format!("{base}/users/{}", 1 + rng.next(110)))
        } else if roll < 88 {
            let item = ["book", "lamp", "tea", "desk"][rng.next(4) as usize];
            client.post(format!("{base}/orders")).json(&json!({
                "userId": 1 + rng.next(100),
                "item": item,
                "amountCents": 100 + rng.next(10_000),
            }))
        } else if roll < 98 {
            client.get(format!("{base}/fail"))
        } else {
            client.get(format!("{base}/panic"))
        };
        let _ = req.send().await;
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let access = match std::env::var("NEXUS_TOKEN") {
        Ok(token) => match Access::bearer(&token) {
            Ok(a) => Some((a, token)),
            Err(e) => {
                eprintln!("demo: NEXUS_TOKEN: {e}");
                std::process::exit(2);
            }
        },
        Err(_) => None,
    };
    let db = match open_db() {
        Ok(db) => db,
        Err(e) => {
            eprintln!("demo: cannot create the SQLite database: {e}");
            std::process::exit(1);
        }
    };
    let bus = Bus::new(args.capacity);

    // The payments service, on its own loopback port, traced into the same bus.
    let payments = Router::new()
        .route("/charge", post(charge))
        .layer(NexusTraceLayer::new(bus.clone()).service("payments"));
    let payments_listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo: cannot bind the payments service: {e}");
            std::process::exit(1);
        }
    };
    let payments_addr = payments_listener.local_addr().expect("bound socket");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(payments_listener, payments).await {
            eprintln!("demo: payments service stopped: {e}");
        }
    });

    let state = App {
        db: Arc::new(Mutex::new(db)),
        http: reqwest::Client::new(),
        payments: format!("http://{payments_addr}/charge"),
    };
    let (gate, token) = match access {
        Some((a, t)) => (a, Some(t)),
        None => (Access::loopback(), None),
    };
    let app = Router::new()
        .route("/users/{id}", get(get_user))
        .route("/orders", post(create_order))
        .route("/fail", get(fail))
        .route("/panic", get(panic_handler))
        .with_state(state)
        .layer(NexusTraceLayer::new(bus.clone()).service("shop"))
        .layer(CatchPanicLayer::new())
        .merge(NexusRoutes::new(bus, gate).into_router());

    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "demo: cannot listen on {}: {e} (try --addr 127.0.0.1:0)",
                args.addr
            );
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("bound socket");
    let base = format!("http://{addr}");
    println!("nexus-trace demo listening on {base}");
    match &token {
        Some(t) => println!("  dashboard:  {base}/__nexus/#token={t}"),
        None => println!("  dashboard:  {base}/__nexus/"),
    }
    println!("  live feed:  curl -N {base}/__nexus/events");
    println!("  try:        curl {base}/users/7   |   curl -X POST {base}/orders -H 'content-type: application/json' -d '{{\"userId\":7,\"item\":\"tea\",\"amountCents\":450}}'");
    println!(
        "  traffic:    {}",
        if args.traffic {
            "built-in background requests (--no-traffic to stop)"
        } else {
            "off"
        }
    );
    if args.traffic {
        tokio::spawn(traffic(base));
    }
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    if let Err(e) = served {
        eprintln!("demo: server error: {e}");
        std::process::exit(1);
    }
}
