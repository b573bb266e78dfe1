-- E-mails sent about an order: one row per (order, event), written after the
-- SMTP server accepted the message, so a rerun of the notify job sends nothing.

create table notifications (
    order_id   integer not null references orders (id),
    event      text    not null check (event in ('received', 'confirmed', 'shipped', 'delivered', 'cancelled')),
    recipient  text    not null,
    -- Stable per (order, event): a resend after a crash between the SMTP
    -- server's acceptance and this row is recognisable as a duplicate.
    message_id text    not null,
    subject    text    not null,
    transport  text    not null check (transport in ('smtp', 'file')),
    sent_at    integer not null,
    primary key (order_id, event)
) without rowid;
