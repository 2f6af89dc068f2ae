-- Practice-system visits: the cached invoice line items of each visit actor. The actor's
-- snapshot holds only when it fetched and how that went; the items live here.
CREATE TABLE visit_line_items (
  visit_id    text    PRIMARY KEY,
  items       jsonb   NOT NULL,
  item_count  integer NOT NULL,
  fetched_at  bigint  NOT NULL,                 -- runtime clock, epoch ms
  final       boolean NOT NULL DEFAULT false    -- fetched at checkout: the invoice's items
);
