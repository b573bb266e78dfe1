-- Claims take the due jobs of the oldest order first (order ids grow with
-- acceptance), then by id; jobs of no order count as order 0. An order's
-- next step (its charge, its e-mails) so goes before the first step of
-- every order placed since, and orders in flight finish while new ones keep
-- coming, instead of each stage waiting behind the whole backlog.
create index jobs_pending_by_order on jobs (coalesce(order_id, 0), id) where status = 'pending';
