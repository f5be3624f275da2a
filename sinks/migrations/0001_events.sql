-- Canonical events, one row per event id, partitioned by month of the event's time.
-- The primary key holds the partition key (PostgreSQL requires it); an event's time comes from its
-- content, so a redelivered event has the same (id, time) and ON CONFLICT DO NOTHING drops it.
CREATE TABLE events (
    id                  text        NOT NULL,
    time                timestamptz NOT NULL,
    type                text        NOT NULL,
    source              text        NOT NULL,
    subject             text,
    provider            text,
    source_id           text,
    provider_event_type text,
    provider_event_id   text,
    occurred_at         timestamptz,
    received_at         timestamptz,
    event               jsonb       NOT NULL,
    PRIMARY KEY (id, time)
) PARTITION BY RANGE (time);

CREATE INDEX events_subject_time ON events (subject, time);
CREATE INDEX events_type_time ON events (type, time);
CREATE INDEX events_time ON events (time);
