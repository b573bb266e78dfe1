-- Orders, their items and history, stock reservations, payments, the
-- sandbox gateway's ledger, notifications and idempotency keys.
-- Timestamps are Unix milliseconds.

create table orders (
    id             integer primary key,
    user_id        integer not null references users (id),
    status         text    not null
                   check (status in ('pending', 'confirmed', 'shipped', 'delivered', 'cancelled')),
    total_cents    integer not null check (total_cents >= 0),
    currency       text    not null,
    payment_method text    not null,
    cancel_reason  text,
    created_at     integer not null,
    updated_at     integer not null
);

create index orders_user on orders (user_id, id desc);
create index orders_status on orders (status);
create index orders_created on orders (created_at);

-- Names and prices are snapshotted: later catalogue changes do not alter an order.
create table order_items (
    order_id         integer not null references orders (id),
    product_id       integer not null references products (id),
    name             text    not null,
    unit_price_cents integer not null check (unit_price_cents >= 0),
    quantity         integer not null check (quantity between 1 and 1000),
    line_total_cents integer not null check (line_total_cents >= 0),
    primary key (order_id, product_id)
) without rowid;

create index order_items_product on order_items (product_id);

-- Every status change of an order; from_status is null for creation.
create table order_status_history (
    id          integer primary key,
    order_id    integer not null references orders (id),
    from_status text,
    to_status   text    not null,
    actor       text    not null,
    reason      text,
    at          integer not null
);

create index order_status_history_order on order_status_history (order_id, id);

-- Units an order holds: a row exists once reserve_stock took the order's
-- units, and released_at is set when a cancellation gave them back. The
-- stock audit counts units of reservations not released.
create table stock_reservations (
    order_id    integer primary key references orders (id),
    reserved_at integer not null,
    released_at integer
);

-- One payment per order, keyed by the order so a charge can be recorded once.
create table payments (
    order_id         integer primary key references orders (id),
    provider         text    not null,
    -- pending: a charge was sent and its answer is not recorded yet.
    status           text    not null check (status in ('pending', 'captured', 'refunded', 'declined', 'failed')),
    reference        text,
    amount_cents     integer not null,
    currency         text    not null,
    error            text,
    refund_reference text,
    created_at       integer not null,
    updated_at       integer not null
);

-- The sandbox payment provider's own books: what a real gateway would keep
-- on its side. A call with a known idempotency key returns the first result.
create table sandbox_ledger (
    idempotency_key text    primary key,
    kind            text    not null check (kind in ('charge', 'refund')),
    order_id        integer not null,
    amount_cents    integer not null,
    currency        text    not null,
    payment_method  text    not null,
    outcome         text    not null check (outcome in ('succeeded', 'declined')),
    reference       text    not null,
    created_at      integer not null
);

create index sandbox_ledger_order on sandbox_ledger (order_id);

-- Calls per idempotency key, so `pm_card_flaky` can fail transiently twice.
create table sandbox_calls (
    idempotency_key text    primary key,
    calls           integer not null
);

-- Jobs pushed on behalf of an order, for its timeline.
create table order_jobs (
    order_id integer not null references orders (id),
    job_id   integer not null,
    primary key (order_id, job_id)
) without rowid;

-- Idempotency-Key records: the first response to a (user, key), replayed to
-- retries with the same request; stored in the order's own transaction.
create table idempotency_keys (
    user_id         integer not null references users (id),
    idempotency_key text    not null,
    -- Method, path and canonical JSON body of the first request.
    fingerprint     text    not null,
    status_code     integer not null,
    response_body   text    not null,
    location        text,
    created_at      integer not null,
    expires_at      integer not null,
    primary key (user_id, idempotency_key)
);

create index idempotency_keys_expiry on idempotency_keys (expires_at);
