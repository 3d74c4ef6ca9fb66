-- Orders and their timeline of wallet calls.

CREATE TABLE orders (
    key                 TEXT PRIMARY KEY NOT NULL,
    merchant_id         TEXT NOT NULL REFERENCES merchants (id),
    order_id            TEXT NOT NULL,
    mode                TEXT NOT NULL CHECK (mode IN ('passive', 'active')),
    wallet              TEXT NOT NULL CHECK (wallet IN ('wechatpay', 'alipay', 'unionpay')),
    currency            TEXT NOT NULL CHECK (currency IN ('CAD', 'USD', 'CNY')),
    amount              BIGINT NOT NULL CHECK (amount > 0),
    tip                 BIGINT NOT NULL CHECK (tip >= 0),
    cny_amount          BIGINT,
    rate_e8             BIGINT,
    operator_id         TEXT,
    terminal_no         TEXT,
    sale_num            TEXT,
    status              TEXT NOT NULL CHECK (status IN ('paying', 'pending', 'unknown', 'reversing', 'paid', 'failed', 'reversed', 'closed')),
    wallet_code         TEXT,
    wallet_message      TEXT,
    channel_ref         TEXT,
    buyer               TEXT,
    paid_at             BIGINT,
    wallet_created_at   BIGINT NOT NULL,
    next_check_at       BIGINT,
    claimed_by          TEXT,
    claimed_until       BIGINT,
    request_digest      TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (merchant_id, order_id)
);

CREATE INDEX orders_due ON orders (next_check_at);

CREATE TABLE order_events (
    id           BIGSERIAL PRIMARY KEY,
    order_key    TEXT NOT NULL REFERENCES orders (key),
    operation    TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    wallet_code  TEXT,
    latency_ms   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX order_events_by_order ON order_events (order_key, id);
