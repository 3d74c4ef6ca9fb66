-- Who made each wallet call on an order's timeline: the gateway process (its node and run),
-- so that the timeline shows which worker acted when (and that two never acted at once).
ALTER TABLE order_events ADD COLUMN worker TEXT;
