-- Refunds with a second look (docs/TILL.md, "Refunds"): an operator's role (a supervisor
-- approves refunds on the till with their PIN), the merchant's limit above which a refund
-- needs that approval (in minor units; 0: every refund), and who approved each refund (who
-- asked is `refunds.operator_id`).
ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'cashier' CHECK (role IN ('cashier', 'supervisor'));
ALTER TABLE merchants ADD COLUMN refund_approval_above BIGINT NOT NULL DEFAULT 0 CHECK (refund_approval_above >= 0);
ALTER TABLE refunds ADD COLUMN approved_by TEXT;
