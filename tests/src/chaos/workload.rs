//! The mixed workload: customers placing orders (directly or through their
//! cart, some with an `Idempotency-Key` and a replay), paying with cards that
//! succeed, decline or fail transiently, some buying a product that runs out;
//! then, per order, a plan carried out once the pipeline has settled it —
//! cancel at once or later, ship, ship and deliver, cancel as an admin, or
//! leave it. Everything the API acknowledged is written down in a [`Tally`]
//! so the checks can compare it with what the database says happened.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::{Value, json};

use super::api::{Answer, Api, Call};
use super::rng::Rng;
use crate::app::{ADMIN_SECRET, PASSWORD};

/// The sandbox card that is always declined.
pub const DECLINED: &str = "pm_card_chargeDeclined";
/// The sandbox card that fails transiently twice, then succeeds.
pub const FLAKY: &str = "pm_card_flaky";
/// The sandbox card that succeeds.
pub const VISA: &str = "pm_card_visa";

/// Follow-up tasks acting as admins (and as customers cancelling later).
const FOLLOW_UP_TASKS: usize = 4;
/// How many unexpected answers are kept as samples.
const SAMPLES: usize = 20;

/// What happens to an order after it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: it stays confirmed (or cancelled by the pipeline).
    Keep,
    /// The customer cancels right after the 202, racing the pipeline.
    CancelNow,
    /// The customer cancels once it is confirmed.
    CancelLater,
    /// An admin cancels it once it is confirmed.
    AdminCancel,
    /// An admin ships it.
    Ship,
    /// An admin ships it, then delivers it.
    ShipDeliver,
}

/// The final status an acknowledged move obliges an order to reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A cancel was acknowledged (or the order could not be anything else).
    Cancelled,
    /// `shipped` was acknowledged.
    ShippedOrDelivered,
    /// `delivered` was acknowledged.
    Delivered,
}

impl Expected {
    /// Whether `status` fulfils the expectation.
    pub fn allows(self, status: &str) -> bool {
        match self {
            Expected::Cancelled => status == "cancelled",
            Expected::ShippedOrDelivered => status == "shipped" || status == "delivered",
            Expected::Delivered => status == "delivered",
        }
    }

    /// In words.
    pub fn describe(self) -> &'static str {
        match self {
            Expected::Cancelled => "cancelled",
            Expected::ShippedOrDelivered => "shipped or delivered",
            Expected::Delivered => "delivered",
        }
    }
}

/// An order the API acknowledged with 202.
#[derive(Clone, Debug)]
pub struct AcceptedOrder {
    /// Its id.
    pub order_id: i64,
    /// The card it was placed with.
    pub payment_method: &'static str,
    /// When the 202 arrived.
    pub accepted_at: Instant,
}

/// An obligation created by an acknowledged request.
#[derive(Clone, Debug)]
pub struct Obligation {
    /// The order.
    pub order_id: i64,
    /// The status it must end in.
    pub expected: Expected,
    /// Which request created the obligation.
    pub because: &'static str,
}

/// What the clients saw, for the progress lines and the checks.
#[derive(Debug, Default)]
pub struct Tally {
    /// Order attempts finished (accepted, refused or unknown).
    pub placed: AtomicU64,
    /// Orders acknowledged with 202.
    pub accepted: AtomicU64,
    /// Orders refused with 409 (not enough stock) or carts left empty.
    pub refused: AtomicU64,
    /// Requests without a key cut off by an API kill: outcome unknown.
    pub unknown: AtomicU64,
    /// Requests without a key answered 503 (the database was cut): not
    /// repeated, outcome unknown.
    pub unavailable: AtomicU64,
    /// Accepted orders placed through the cart.
    pub via_cart: AtomicU64,
    /// Accepted orders placed with an `Idempotency-Key`.
    pub keyed: AtomicU64,
    /// Idempotent replays compared with the first answer.
    pub replays_checked: AtomicU64,
    /// Cancels acknowledged (customer or admin).
    pub cancels: AtomicU64,
    /// `shipped` moves acknowledged.
    pub ships: AtomicU64,
    /// `delivered` moves acknowledged.
    pub deliveries: AtomicU64,
    orders: Mutex<Vec<AcceptedOrder>>,
    obligations: Mutex<Vec<Obligation>>,
    unexpected: Mutex<(u64, Vec<String>)>,
    replay_mismatches: Mutex<Vec<String>>,
}

fn locked<T: Clone>(mutex: &Mutex<T>) -> T {
    mutex.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Tally {
    /// Every acknowledged order.
    pub fn orders(&self) -> Vec<AcceptedOrder> {
        locked(&self.orders)
    }

    /// Every obligation from an acknowledged move.
    pub fn obligations(&self) -> Vec<Obligation> {
        locked(&self.obligations)
    }

    /// How many answers were not what the API documents, and samples.
    pub fn unexpected(&self) -> (u64, Vec<String>) {
        locked(&self.unexpected)
    }

    /// Idempotent replays that did not return the first answer.
    pub fn replay_mismatches(&self) -> Vec<String> {
        locked(&self.replay_mismatches)
    }

    fn oblige(&self, order_id: i64, expected: Expected, because: &'static str) {
        self.obligations.lock().unwrap_or_else(|e| e.into_inner()).push(Obligation { order_id, expected, because });
    }

    fn unexpected_answer(&self, what: &str, answer: &Answer) {
        let mut unexpected = self.unexpected.lock().unwrap_or_else(|e| e.into_inner());
        unexpected.0 += 1;
        if unexpected.1.len() < SAMPLES {
            let mut body = answer.body.to_string();
            body.truncate(300);
            unexpected.1.push(format!("{what} → {} {body}", answer.status));
        }
    }

    fn replay_mismatch(&self, text: String) {
        self.replay_mismatches.lock().unwrap_or_else(|e| e.into_inner()).push(text);
    }
}

/// A customer account.
#[derive(Clone, Debug)]
pub struct Customer {
    /// User id.
    pub user_id: i64,
    /// Bearer token.
    pub token: String,
}

/// The catalogue and the accounts the workload uses.
#[derive(Clone, Debug)]
pub struct Shop {
    /// Products with enough stock for every order.
    pub regular: Vec<i64>,
    /// The product that runs out.
    pub scarce: i64,
    /// Its initial stock.
    pub scarce_stock: i64,
    /// The customers.
    pub customers: Vec<Customer>,
    /// Admin tokens.
    pub admins: Vec<String>,
}

async fn login(api: &Api, username: &str, deadline: Instant) -> anyhow::Result<String> {
    let body = json!({"username": username, "password": PASSWORD});
    let reply = api.expect(Call::new(&Method::POST, "/auth/login", None).body(&body), 200, deadline).await?;
    reply["access_token"].as_str().map(str::to_owned).context("login answered without an access_token")
}

/// Registers `users` customers and two admins and creates the products.
pub async fn open_shop(api: &Api, orders: usize, users: usize, deadline: Instant) -> anyhow::Result<Shop> {
    let mut admins: Vec<String> = Vec::new();
    for i in 0..2 {
        let username = format!("chaos-admin-{i}");
        // The bootstrap secret makes the first admin; that admin makes the second.
        let email = format!("{username}@example.com");
        match admins.first() {
            None => {
                let body =
                    json!({"username": username, "email": email, "password": PASSWORD, "secret_key": ADMIN_SECRET});
                api.expect(Call::new(&Method::POST, "/auth/register-admin", None).body(&body), 201, deadline).await?;
            }
            Some(first) => {
                let body = json!({"username": username, "email": email, "password": PASSWORD, "role": "admin"});
                api.expect(Call::new(&Method::POST, "/admin/users", Some(first)).body(&body), 201, deadline).await?;
            }
        }
        admins.push(login(api, &username, deadline).await?);
    }
    let admin = admins[0].as_str();
    let orders_i64 = i64::try_from(orders).context("--orders is too large")?;
    let mut regular = Vec::new();
    for (i, name) in ["Desk lamp", "Notebook", "Mug", "Backpack", "Headphones", "Water bottle"].iter().enumerate() {
        // At most three units of a product per order: never short.
        let body = json!({"name": name, "description": format!("A fine {name}"), "price_cents": 500 + 250 * i,
                          "stock": 3 * orders_i64, "category": "chaos"});
        let product =
            api.expect(Call::new(&Method::POST, "/products/", Some(admin)).body(&body), 201, deadline).await?;
        regular.push(product["id"].as_i64().context("a product without an id")?);
    }
    let scarce_stock = (orders_i64 / 25).max(5);
    let body = json!({"name": "Limited drop", "description": "Few of them, many buyers", "price_cents": 9900,
                      "stock": scarce_stock, "category": "chaos"});
    let scarce =
        api.expect(Call::new(&Method::POST, "/products/", Some(admin)).body(&body), 201, deadline).await?["id"]
            .as_i64()
            .context("a product without an id")?;
    let customers = stream::iter(0..users)
        .map(|i| async move {
            let username = format!("shopper{i}");
            let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
            let user = api.expect(Call::new(&Method::POST, "/auth/register", None).body(&body), 201, deadline).await?;
            let user_id = user["id"].as_i64().context("a user without an id")?;
            anyhow::Ok(Customer { user_id, token: login(api, &username, deadline).await? })
        })
        .buffered(4)
        .try_collect()
        .await?;
    Ok(Shop { regular, scarce, scarce_stock, customers, admins })
}

/// An order waiting for its plan to be carried out.
#[derive(Debug)]
struct FollowUp {
    order_id: i64,
    customer: usize,
    plan: Plan,
    ship_sent: bool,
    not_before: Instant,
}

/// Shared by the customer and follow-up tasks.
struct Ctx {
    api: Arc<Api>,
    shop: Arc<Shop>,
    tally: Arc<Tally>,
    follow_ups: Mutex<VecDeque<FollowUp>>,
    outstanding: AtomicUsize,
    customers_done: AtomicBool,
    orders: usize,
    seed: u64,
    deadline: Instant,
}

impl Ctx {
    fn check_time(&self) -> anyhow::Result<()> {
        if self.api.is_aborted() {
            bail!("the workload was aborted");
        }
        if Instant::now() >= self.deadline {
            bail!("the workload did not finish before the --timeout");
        }
        Ok(())
    }

    fn push_follow_up(&self, follow_up: FollowUp) {
        self.follow_ups.lock().unwrap_or_else(|e| e.into_inner()).push_back(follow_up);
    }
}

/// Runs the workload to its end: `orders` order attempts spread over the
/// shop's customers, and every follow-up carried out.
pub async fn drive(
    api: Arc<Api>,
    shop: Arc<Shop>,
    tally: Arc<Tally>,
    orders: usize,
    seed: u64,
    mut rng: Rng,
    deadline: Instant,
) -> anyhow::Result<()> {
    let ctx = Arc::new(Ctx {
        api,
        shop,
        tally,
        follow_ups: Mutex::new(VecDeque::new()),
        outstanding: AtomicUsize::new(0),
        customers_done: AtomicBool::new(false),
        orders,
        seed,
        deadline,
    });
    let customers: Vec<_> = (0..ctx.shop.customers.len())
        .map(|customer| tokio::spawn(customer_loop(Arc::clone(&ctx), customer, rng.fork())))
        .collect();
    let follow_ups: Vec<_> =
        (0..FOLLOW_UP_TASKS).map(|task| tokio::spawn(follow_up_loop(Arc::clone(&ctx), task))).collect();
    let mut first_error = None;
    for task in customers {
        if let Err(error) = task.await.context("a customer task panicked").and_then(|result| result) {
            first_error.get_or_insert(error);
        }
    }
    ctx.customers_done.store(true, Ordering::Release);
    for task in follow_ups {
        if let Err(error) = task.await.context("a follow-up task panicked").and_then(|result| result) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn customer_loop(ctx: Arc<Ctx>, customer: usize, mut rng: Rng) -> anyhow::Result<()> {
    let mut slot = customer;
    while slot < ctx.orders {
        ctx.check_time()?;
        place_order(&ctx, customer, slot, &mut rng).await?;
        ctx.tally.placed.fetch_add(1, Ordering::Relaxed);
        slot += ctx.shop.customers.len();
    }
    Ok(())
}

/// One or two lines: regular products (1–3 units), sometimes the scarce one.
fn pick_lines(rng: &mut Rng, shop: &Shop) -> Vec<(i64, i64)> {
    let mut lines: Vec<(i64, i64)> = Vec::new();
    if rng.chance(0.15) {
        lines.push((shop.scarce, 1));
    }
    let wanted = 1 + rng.below(2);
    while lines.len() < wanted {
        let product = shop.regular[rng.below(shop.regular.len())];
        if !lines.iter().any(|(p, _)| *p == product) {
            lines.push((product, 1 + i64::try_from(rng.below(3)).unwrap_or(0)));
        }
    }
    lines
}

fn pick_plan(rng: &mut Rng) -> Plan {
    match rng.unit() {
        u if u < 0.08 => Plan::CancelNow,
        u if u < 0.14 => Plan::CancelLater,
        u if u < 0.18 => Plan::AdminCancel,
        u if u < 0.45 => Plan::Ship,
        u if u < 0.70 => Plan::ShipDeliver,
        _ => Plan::Keep,
    }
}

async fn place_order(ctx: &Ctx, customer: usize, slot: usize, rng: &mut Rng) -> anyhow::Result<()> {
    let lines = pick_lines(rng, &ctx.shop);
    let payment_method = match rng.unit() {
        u if u < 0.10 => DECLINED,
        u if u < 0.25 => FLAKY,
        _ => VISA,
    };
    let key = rng.chance(0.3).then(|| format!("chaos-{}-{slot}", ctx.seed));
    let via_cart = rng.chance(0.4);
    let plan = pick_plan(rng);
    let Customer { user_id, token } = &ctx.shop.customers[customer];
    let (path, body) = if via_cart {
        if fill_cart(ctx, token, &lines).await? == 0 {
            ctx.tally.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        (format!("/cart/{user_id}/checkout"), json!({"payment_method": payment_method}))
    } else {
        let items: Vec<Value> = lines.iter().map(|(p, q)| json!({"product_id": p, "quantity": q})).collect();
        ("/orders/".to_owned(), json!({"items": items, "payment_method": payment_method}))
    };
    let Some(order_id) = submit(ctx, customer, token, &path, &body, key.as_deref(), slot.is_multiple_of(3)).await?
    else {
        return Ok(());
    };
    let tally = &ctx.tally;
    tally.accepted.fetch_add(1, Ordering::Relaxed);
    if via_cart {
        tally.via_cart.fetch_add(1, Ordering::Relaxed);
    }
    if key.is_some() {
        tally.keyed.fetch_add(1, Ordering::Relaxed);
    }
    tally.orders.lock().unwrap_or_else(|e| e.into_inner()).push(AcceptedOrder {
        order_id,
        payment_method,
        accepted_at: Instant::now(),
    });
    match plan {
        Plan::CancelNow => {
            let path = format!("/orders/{order_id}/cancel");
            let body = json!({"reason": "changed my mind"});
            let call = Call::new(&Method::POST, &path, Some(token)).body(&body);
            let answer = ctx.api.send_until_answered(call, ctx.deadline).await?;
            match answer.status {
                202 => {
                    tally.cancels.fetch_add(1, Ordering::Relaxed);
                }
                // Already cancelled by the pipeline (stock, decline): nothing ships it in this plan.
                409 => {}
                _ => tally.unexpected_answer("cancel right after checkout", &answer),
            }
            tally.oblige(order_id, Expected::Cancelled, "customer cancel racing the pipeline");
        }
        Plan::Keep => {}
        _ => {
            ctx.outstanding.fetch_add(1, Ordering::AcqRel);
            ctx.push_follow_up(FollowUp { order_id, customer, plan, ship_sent: false, not_before: Instant::now() });
        }
    }
    Ok(())
}

/// Adds the lines to the cart; returns how many were accepted (409 beyond stock).
async fn fill_cart(ctx: &Ctx, token: &str, lines: &[(i64, i64)]) -> anyhow::Result<usize> {
    let mut added = 0;
    for (product_id, quantity) in lines {
        let body = json!({"product_id": product_id, "quantity": quantity});
        // A repeat after a cut connection may add the units twice: still a valid cart.
        let answer = ctx
            .api
            .send_until_answered(Call::new(&Method::POST, "/cart/", Some(token)).body(&body), ctx.deadline)
            .await?;
        match answer.status {
            200 => added += 1,
            409 => {}
            _ => ctx.tally.unexpected_answer("POST /cart/", &answer),
        }
    }
    Ok(added)
}

/// Places the order; with a key, repeats the request (at once, concurrently,
/// when `concurrent_duplicate`: to two API processes when there are several)
/// and requires the replay to name the same order. Returns the order id when
/// acknowledged.
async fn submit(
    ctx: &Ctx,
    customer: usize,
    token: &str,
    path: &str,
    body: &Value,
    key: Option<&str>,
    concurrent_duplicate: bool,
) -> anyhow::Result<Option<i64>> {
    let call = Call::new(&Method::POST, path, Some(token)).body(body).key(key);
    let tally = &ctx.tally;
    let first = match key {
        None => match ctx.api.send(call).await {
            Ok(answer) if answer.status == 503 => {
                tally.unavailable.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            Ok(answer) => answer,
            Err(_) => {
                tally.unknown.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
        },
        Some(key) if concurrent_duplicate => {
            let (a, b) = tokio::join!(
                ctx.api.send_until_answered(call.via(customer), ctx.deadline),
                ctx.api.send_until_answered(call.via(customer + 1), ctx.deadline)
            );
            let (a, b) = (a?, b?);
            let ids: Vec<i64> = [&a, &b].iter().filter(|x| x.status == 202).filter_map(|x| x.id()).collect();
            if ids.len() == 2 && ids[0] != ids[1] {
                tally.replay_mismatch(format!("key {key}: two concurrent requests created orders {ids:?}"));
            }
            for answer in [&a, &b] {
                if answer.status != 202 && answer.status != 409 {
                    tally.unexpected_answer(&format!("POST {path} (concurrent duplicate)"), answer);
                }
            }
            if b.status == 202 && a.status != 202 { b } else { a }
        }
        Some(_) => ctx.api.send_until_answered(call, ctx.deadline).await?,
    };
    match first.status {
        202 => {}
        409 => {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        _ => {
            tally.unexpected_answer(&format!("POST {path}"), &first);
            return Ok(None);
        }
    }
    let Some(order_id) = first.id() else {
        tally.unexpected_answer(&format!("POST {path} (202 without an id)"), &first);
        return Ok(None);
    };
    if let Some(key) = key {
        let replay = ctx.api.send_until_answered(call, ctx.deadline).await?;
        tally.replays_checked.fetch_add(1, Ordering::Relaxed);
        if replay.status != 202 || !replay.replayed || replay.id() != Some(order_id) {
            tally.replay_mismatch(format!(
                "key {key}: first answer order {order_id}, replay {} (replayed: {}) {}",
                replay.status, replay.replayed, replay.body
            ));
        }
    }
    Ok(Some(order_id))
}

/// What to do with a follow-up after one look at its order.
enum Step {
    Done,
    Later(Duration),
}

async fn follow_up_loop(ctx: Arc<Ctx>, task: usize) -> anyhow::Result<()> {
    let admin = ctx.shop.admins[task % ctx.shop.admins.len()].clone();
    loop {
        ctx.check_time()?;
        let next = ctx.follow_ups.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let Some(mut follow_up) = next else {
            if ctx.customers_done.load(Ordering::Acquire) && ctx.outstanding.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if follow_up.not_before > Instant::now() {
            ctx.push_follow_up(follow_up);
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        match step(&ctx, &admin, &mut follow_up).await {
            Step::Done => {
                ctx.outstanding.fetch_sub(1, Ordering::AcqRel);
            }
            Step::Later(delay) => {
                follow_up.not_before = Instant::now() + delay;
                ctx.push_follow_up(follow_up);
            }
        }
    }
}

/// Sends a move; 202 → `Some(true)`, 409 (the order moved meanwhile) →
/// `Some(false)`, API unreachable or database cut (503) → `None`.
async fn send_move(ctx: &Ctx, call: Call<'_>, what: &str) -> Option<bool> {
    match ctx.api.send(call).await {
        Ok(answer) if answer.status == 202 => Some(true),
        Ok(answer) if answer.status == 409 => Some(false),
        Ok(answer) if answer.status == 503 => None,
        Ok(answer) => {
            ctx.tally.unexpected_answer(what, &answer);
            Some(false)
        }
        Err(_) => None,
    }
}

async fn step(ctx: &Ctx, admin: &str, follow_up: &mut FollowUp) -> Step {
    const SOON: Duration = Duration::from_millis(100);
    const PIPELINE: Duration = Duration::from_millis(300);
    let order_id = follow_up.order_id;
    let path = format!("/orders/{order_id}");
    let order = match ctx.api.send(Call::new(&Method::GET, &path, Some(admin))).await {
        Ok(answer) if answer.status == 200 => answer.body,
        Ok(answer) if answer.status == 503 => return Step::Later(SOON),
        Ok(answer) => {
            ctx.tally.unexpected_answer("GET /orders/{id}", &answer);
            return Step::Done;
        }
        Err(_) => return Step::Later(SOON),
    };
    let tally = &ctx.tally;
    let status_path = format!("/orders/{order_id}/status");
    match (order["status"].as_str().unwrap_or_default(), follow_up.plan) {
        ("pending", _) => Step::Later(PIPELINE),
        ("confirmed", Plan::CancelLater) => {
            let token = &ctx.shop.customers[follow_up.customer].token;
            let cancel = format!("/orders/{order_id}/cancel");
            let body = json!({"reason": "found it cheaper"});
            match send_move(ctx, Call::new(&Method::POST, &cancel, Some(token)).body(&body), "customer cancel").await {
                Some(true) => {
                    tally.cancels.fetch_add(1, Ordering::Relaxed);
                    tally.oblige(order_id, Expected::Cancelled, "customer cancel of a confirmed order");
                    Step::Done
                }
                _ => Step::Later(SOON),
            }
        }
        ("confirmed", Plan::AdminCancel) => {
            let body = json!({"status": "cancelled", "reason": "chaos: admin cancel"});
            match send_move(ctx, Call::new(&Method::PUT, &status_path, Some(admin)).body(&body), "admin cancel").await {
                Some(true) => {
                    tally.cancels.fetch_add(1, Ordering::Relaxed);
                    tally.oblige(order_id, Expected::Cancelled, "admin cancel");
                    Step::Done
                }
                _ => Step::Later(SOON),
            }
        }
        ("confirmed", Plan::Ship | Plan::ShipDeliver) if !follow_up.ship_sent => {
            let body = json!({"status": "shipped", "reason": "chaos: parcel handed over"});
            match send_move(ctx, Call::new(&Method::PUT, &status_path, Some(admin)).body(&body), "ship").await {
                Some(true) => {
                    tally.ships.fetch_add(1, Ordering::Relaxed);
                    tally.oblige(order_id, Expected::ShippedOrDelivered, "admin ship");
                    follow_up.ship_sent = true;
                    if follow_up.plan == Plan::Ship { Step::Done } else { Step::Later(PIPELINE) }
                }
                _ => Step::Later(SOON),
            }
        }
        ("confirmed", Plan::ShipDeliver) => Step::Later(PIPELINE),
        ("shipped", Plan::ShipDeliver) => {
            let body = json!({"status": "delivered"});
            match send_move(ctx, Call::new(&Method::PUT, &status_path, Some(admin)).body(&body), "deliver").await {
                Some(true) => {
                    tally.deliveries.fetch_add(1, Ordering::Relaxed);
                    tally.oblige(order_id, Expected::Delivered, "admin deliver");
                    Step::Done
                }
                _ => Step::Later(SOON),
            }
        }
        ("confirmed" | "shipped" | "delivered" | "cancelled", _) => Step::Done,
        _ => {
            tally.unexpected_answer(
                "GET /orders/{id} (unknown status)",
                &Answer { status: 200, replayed: false, body: order },
            );
            Step::Done
        }
    }
}
