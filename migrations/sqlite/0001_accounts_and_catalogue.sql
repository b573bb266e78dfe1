-- Accounts and the product catalogue. Timestamps are Unix milliseconds.

create table users (
    id            integer primary key,
    username      text    not null collate nocase unique,
    email         text    not null collate nocase unique,
    password_hash text    not null,
    role          text    not null check (role in ('customer', 'admin')),
    created_at    integer not null
);

create table products (
    id            integer primary key,
    name          text    not null,
    description   text    not null default '',
    price_cents   integer not null check (price_cents >= 0),
    currency      text    not null,
    -- Units on hand and not held by a live order. Never negative.
    stock         integer not null check (stock >= 0),
    -- Stock at creation; with stock_adjustments this lets the stock audit
    -- check that no unit was created or lost.
    initial_stock integer not null check (initial_stock >= 0),
    category      text    not null,
    sku           text    unique,
    -- Soft delete: hidden from the catalogue, kept for past orders.
    deleted_at    integer,
    created_at    integer not null,
    updated_at    integer not null
);

create index products_category on products (category) where deleted_at is null;
create index products_price on products (price_cents) where deleted_at is null;
create index products_created on products (created_at) where deleted_at is null;

-- Full-text index over the catalogue, kept in sync by triggers so every
-- write to products updates it in the same transaction.
create virtual table products_fts using fts5 (
    name, description, category, sku,
    content = 'products',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

create trigger products_fts_insert after insert on products begin
    insert into products_fts (rowid, name, description, category, sku)
    values (new.id, new.name, new.description, new.category, coalesce(new.sku, ''));
end;

create trigger products_fts_delete after delete on products begin
    insert into products_fts (products_fts, rowid, name, description, category, sku)
    values ('delete', old.id, old.name, old.description, old.category, coalesce(old.sku, ''));
end;

create trigger products_fts_update after update of name, description, category, sku on products begin
    insert into products_fts (products_fts, rowid, name, description, category, sku)
    values ('delete', old.id, old.name, old.description, old.category, coalesce(old.sku, ''));
    insert into products_fts (rowid, name, description, category, sku)
    values (new.id, new.name, new.description, new.category, coalesce(new.sku, ''));
end;

-- Every change an admin makes to stock outside the order pipeline.
create table stock_adjustments (
    id            integer primary key,
    product_id    integer not null references products (id),
    delta         integer not null,
    reason        text    not null,
    actor_user_id integer references users (id),
    created_at    integer not null
);

create index stock_adjustments_product on stock_adjustments (product_id);

-- One line per (user, product) in a shopper's cart.
create table cart_items (
    user_id    integer not null references users (id) on delete cascade,
    product_id integer not null references products (id),
    quantity   integer not null check (quantity between 1 and 1000),
    added_at   integer not null,
    primary key (user_id, product_id)
) without rowid;
