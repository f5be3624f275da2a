-- The suppression list: one row per address, from hard bounces, complaints and unsubscribes.
CREATE TABLE suppressions (
    email      text        PRIMARY KEY,
    reason     text        NOT NULL,
    provider   text        NOT NULL,
    source     text        NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    count      bigint      NOT NULL
);

CREATE INDEX suppressions_last_seen ON suppressions (last_seen);

-- Event ids already counted: a redelivered event finds its id here and changes nothing.
CREATE TABLE suppression_events (
    event_id   text        PRIMARY KEY,
    email      text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
