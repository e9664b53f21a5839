-- pgbench: the SQL of one market BUY as the service does it (orders.services.place_order),
-- against the same tables: user lock, debit USD, add to the holding (weighted average price),
-- the order row COMPLETED, the cash and the asset ledger rows. The ledger stays consistent,
-- so `manage.py reconcile_ledger` still passes after the bench.
-- Variables (pgbench -D): minuid, maxuid (bench users; equal for the hot account), asset,
-- qty, price, cost (= qty x price rounded up to the cent).
-- Run in simple query mode (-M simple, pgbench's default, like Django's psycopg client-side
-- binding): :oid and :asset are substituted as text, hence the quotes around them.
\set uid random(:minuid, :maxuid)
BEGIN;
SELECT id, current_balance, held FROM balances_usdbalance WHERE user_id = :uid FOR NO KEY UPDATE;
UPDATE balances_usdbalance SET current_balance = current_balance - :cost, updated_at = now()
  WHERE user_id = :uid RETURNING current_balance AS bal \gset
INSERT INTO balances_assetbalance AS b (user_id, asset_id, quantity, held_quantity, average_purchase_price,
    total_bought, total_sold, last_transaction_at, created_at, updated_at)
  VALUES (:uid, ':asset', :qty, 0, :price, :qty, 0, now(), now(), now())
  ON CONFLICT (user_id, asset_id) DO UPDATE SET
    average_purchase_price = round((b.quantity * b.average_purchase_price + EXCLUDED.quantity * EXCLUDED.average_purchase_price)
                                   / (b.quantity + EXCLUDED.quantity), 12),
    quantity = b.quantity + EXCLUDED.quantity,
    total_bought = b.total_bought + EXCLUDED.quantity,
    last_transaction_at = EXCLUDED.last_transaction_at,
    updated_at = EXCLUDED.updated_at;
INSERT INTO orders_order (order_id, user_id, asset_id, order_type, quantity, order_price, total_amount, executed_price,
    held_amount, status, failure_reason, client_order_id, expires_at, created_at, updated_at, filled_at)
  VALUES (gen_random_uuid(), :uid, ':asset', 'BUY', :qty, NULL, :cost, :price, 0, 'COMPLETED', '', NULL, NULL,
    now(), now(), now())
  RETURNING order_id AS oid \gset
INSERT INTO balances_cashtransaction (user_id, transaction_type, amount, balance_after, order_id, client_reference,
    note, actor_id, created_at)
  VALUES (:uid, 'BUY', -:cost, :bal, ':oid', NULL, '', NULL, now());
INSERT INTO balances_assettransaction (user_id, asset_id, transaction_type, quantity, price_per_unit, total_amount,
    realized_pnl, order_id, status, price_source, note, actor_id, created_at)
  VALUES (:uid, ':asset', 'BUY', :qty, :price, :cost, NULL, ':oid', 'COMPLETED', 'pgbench', '', NULL, now());
COMMIT;
