-- subscriber_topics keeps only its primary key (topic, status,
-- subscriber): the index on subscriber (migration 0012), about 40 bytes
-- a subscription, goes. Every statement that probed a subscriber's rows
-- through it gives the topics and statuses it looks for, and so probes
-- the primary key once per pair (internal/postgres/audience.go,
-- allStatuses and heldTopics): the topics a subscriber's rows can have
-- are those the table holds, read by a skip scan of the primary key,
-- one descent per topic; the statuses are the four codes.
DROP INDEX subscriber_topics_subscriber;
