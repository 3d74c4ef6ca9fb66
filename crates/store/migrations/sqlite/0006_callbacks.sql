-- Notifications to merchants (OTTPAY "call-back", ottpay.md §6): an outbox row written in the
-- same transaction as the order becoming paid, and every delivery attempt.

CREATE TABLE callbacks (
    order_key        TEXT PRIMARY KEY NOT NULL REFERENCES orders (key),
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    url              TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT,
    claimed_by       TEXT,
    claimed_until    BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE INDEX callbacks_due ON callbacks (next_attempt_at);

CREATE TABLE callback_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_key    TEXT NOT NULL REFERENCES callbacks (order_key),
    http_status  BIGINT,
    latency_ms   BIGINT NOT NULL,
    excerpt      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
