-- The second wave's schema changes (PostgreSQL's 0001 starts with them).
-- Timestamps are Unix milliseconds.

-- A job names the order it acts for, so an order's timeline and the
-- e-mail ordering read one indexed column instead of a link table.
alter table jobs add column order_id integer;
update jobs set order_id = (select oj.order_id from order_jobs oj where oj.job_id = jobs.id);
create index jobs_order on jobs (order_id, id) where order_id is not null;
drop table order_jobs;

-- A cancellation keeps a reason code from a closed set (for metrics,
-- reports and the e-mail's sentence) and, separately, the free text a
-- person gave. Rows written before kept free text in cancel_reason: move it
-- to the note and give the code of whoever cancelled.
alter table orders add column cancel_note text;
alter table order_status_history add column note text;
update orders
set cancel_note = cancel_reason,
    cancel_reason = (
        select case when h.actor like 'admin:%' then 'admin_request' else 'customer_request' end
        from order_status_history h
        where h.order_id = orders.id and h.to_status = 'cancelled'
        order by h.id desc limit 1)
where cancel_reason is not null
  and cancel_reason not in ('out_of_stock', 'payment_declined', 'payment_failed', 'customer_request', 'admin_request');
update order_status_history
set note = reason,
    reason = case
        when to_status <> 'cancelled' then null
        when actor like 'admin:%' then 'admin_request'
        else 'customer_request' end
where reason is not null
  and reason not in ('out_of_stock', 'payment_declined', 'payment_failed', 'customer_request', 'admin_request');

-- The category filter compares without case: give it an index that does too.
drop index products_category;
create index products_category on products (category collate nocase) where deleted_at is null;

-- Accounts: a normalized e-mail (NFKC, case-folded) that uniqueness is
-- checked on, filled by the application for existing rows; a disabled
-- flag; and a token generation that, when raised, revokes every token the
-- account holds.
alter table users add column email_key text;
create unique index users_email_key on users (email_key) where email_key is not null;
alter table users add column disabled_at integer;
alter table users add column token_generation integer not null default 0;

-- Tokens revoked one by one (logout), kept until they would have expired.
create table revoked_tokens (
    token_id   text    primary key,
    user_id    integer not null references users (id) on delete cascade,
    expires_at integer not null
) without rowid;

create index revoked_tokens_expiry on revoked_tokens (expires_at);
