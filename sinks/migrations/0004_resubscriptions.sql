-- Opting in again (email.subscribed) lifts an address's suppression when it holds only unsubscribes, all
-- older than the opt-in; hard bounces and complaints are never lifted. The latest opt-in per address is
-- kept whether or not the address is suppressed yet, so an unsubscribe that arrives late (an older event)
-- does not suppress an address that has opted in since.
CREATE TABLE resubscriptions (
    email         text        PRIMARY KEY,
    subscribed_at timestamptz NOT NULL
);

ALTER TABLE suppressions ADD COLUMN unsubscribe_only boolean NOT NULL DEFAULT false;
-- Entries from before: one counted event with the reason unsubscribe surely was one; more may hold others.
UPDATE suppressions SET unsubscribe_only = true WHERE reason = 'unsubscribe' AND count = 1;
