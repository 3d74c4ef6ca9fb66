-- Refunds, the merchant fee rate, wallet exchange rates and the double-entry ledger
-- (docs/LEDGER.md).

-- The provider's fee on each payment, in basis points of the amount paid (tip included).
ALTER TABLE merchants ADD COLUMN fee_bps BIGINT NOT NULL DEFAULT 0 CHECK (fee_bps >= 0 AND fee_bps <= 10000);

-- What refunds hold on a paid order: `refund_reserved` counts refunds in progress and done (a
-- new refund is accepted only while it stays within the amount paid, in one conditional
-- UPDATE, so two refunds at once cannot together exceed it); `refunded` counts those done.
ALTER TABLE orders ADD COLUMN refund_reserved BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN refunded BIGINT NOT NULL DEFAULT 0;

CREATE TABLE refunds (
    key                 TEXT PRIMARY KEY NOT NULL,
    merchant_id         TEXT NOT NULL REFERENCES merchants (id),
    refund_order_id     TEXT NOT NULL,
    order_key           TEXT NOT NULL REFERENCES orders (key),
    wallet              TEXT NOT NULL CHECK (wallet IN ('wechatpay', 'alipay', 'unionpay')),
    currency            TEXT NOT NULL CHECK (currency IN ('CAD', 'USD', 'CNY')),
    amount              BIGINT NOT NULL CHECK (amount > 0),
    cny_amount          BIGINT,
    status              TEXT NOT NULL CHECK (status IN ('processing', 'succeeded', 'failed')),
    wallet_code         TEXT,
    wallet_message      TEXT,
    channel_ref         TEXT,
    sends               BIGINT NOT NULL,
    operator_id         TEXT,
    request_digest      TEXT NOT NULL,
    wallet_created_at   BIGINT NOT NULL,
    next_check_at       BIGINT,
    claimed_by          TEXT,
    claimed_until       BIGINT,
    finished_at         BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (merchant_id, refund_order_id),
    UNIQUE (merchant_id, request_digest)
);

CREATE INDEX refunds_due ON refunds (next_check_at);
CREATE INDEX refunds_by_order ON refunds (order_key);

-- Every money movement as balanced entries: debits positive, credits negative, in the
-- order's currency; one posting (`txn`) per payment or refund, written in the same
-- transaction as the state change it records. `payer_amount` keeps, on the wallet's leg,
-- the CNY the customer's wallet moved.
CREATE TABLE ledger_entries (
    id            BIGSERIAL PRIMARY KEY,
    txn           TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
    account       TEXT NOT NULL,
    currency      TEXT NOT NULL CHECK (currency IN ('CAD', 'USD', 'CNY')),
    amount        BIGINT NOT NULL,
    payer_amount  BIGINT,
    order_key     TEXT NOT NULL REFERENCES orders (key),
    refund_key    TEXT REFERENCES refunds (key),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (txn, account)
);

CREATE INDEX ledger_by_account ON ledger_entries (account);
CREATE INDEX ledger_by_order ON ledger_entries (order_key);

-- Rates the wallets publish (WeChat Pay /pay/queryexchagerate), refreshed in the background.
CREATE TABLE wallet_fx_rates (
    wallet      TEXT NOT NULL CHECK (wallet IN ('wechatpay', 'alipay', 'unionpay')),
    currency    TEXT NOT NULL CHECK (currency IN ('CAD', 'USD', 'CNY')),
    rate_e8     BIGINT NOT NULL CHECK (rate_e8 > 0),
    rate_time   TEXT,
    fetched_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (wallet, currency)
);

-- Orders paid before the ledger existed get their payment posting now (no fee was set then),
-- so that the ledger starts complete and its checks hold on an upgraded database.
INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, order_key,
                            refund_key, created_at, updated_at)
SELECT 'payment:' || key, 'payment', 'wallet_clearing:' || wallet, currency, amount + tip,
       cny_amount, key, NULL, updated_at, updated_at
FROM orders WHERE status = 'paid';

INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, order_key,
                            refund_key, created_at, updated_at)
SELECT 'payment:' || key, 'payment', 'merchant_payable:' || merchant_id, currency,
       -(amount + tip), NULL, key, NULL, updated_at, updated_at
FROM orders WHERE status = 'paid';
