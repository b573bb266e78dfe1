-- Soft-deleted products leave the full-text index (and a product is indexed
-- only while it is not deleted), so a search by words alone can rank and
-- count its matches in the index without reading the products table.
-- One trigger covers every update that changes what is indexed, deletion
-- included, so an update that renames and deletes at once removes the old
-- entry exactly once.
drop trigger products_fts_update;
create trigger products_fts_update after update of name, description, category, sku, deleted_at on products begin
    insert into products_fts (products_fts, rowid, name, description, category, sku)
    select 'delete', old.id, old.name, old.description, old.category, coalesce(old.sku, '')
    where old.deleted_at is null;
    insert into products_fts (rowid, name, description, category, sku)
    select new.id, new.name, new.description, new.category, coalesce(new.sku, '')
    where new.deleted_at is null;
end;

drop trigger products_fts_delete;
create trigger products_fts_delete after delete on products when old.deleted_at is null begin
    insert into products_fts (products_fts, rowid, name, description, category, sku)
    values ('delete', old.id, old.name, old.description, old.category, coalesce(old.sku, ''));
end;

insert into products_fts (products_fts, rowid, name, description, category, sku)
select 'delete', id, name, description, category, coalesce(sku, '') from products where deleted_at is not null;

-- Browsing a category newest first (the default order without words)
-- walks the category's entries in time order and stops at the page,
-- instead of sorting every product of the category.
drop index products_category;
create index products_category on products (category collate nocase, created_at) where deleted_at is null;
