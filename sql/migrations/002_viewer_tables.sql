-- 002_viewer_tables: what vc-sink writes from the events topic, and what the
-- analysts read (on the replicas).
--
-- Times are UTC and are EVENT time (the ts_ms of the events), never the wall
-- clock of the sink: replaying the log writes the same rows.
--
-- Foreign keys: none of these tables references the master data (001).
--  * viewer_history and user_sessions are partitioned; InnoDB does not support
--    foreign keys on partitioned tables (neither side), so they cannot have one.
--  * current_viewers, daily_statistics and daily_broadcaster_statistics are
--    written from the event log, which can run ahead of the platform's master
--    data (a viewer joins a stream whose row has not been replicated here yet,
--    or a test stream that never gets one). A foreign key would make the sink's
--    transaction fail on data the sink does not own; instead broadcaster_id and
--    category_id are copied from `streams` when they are known (NULL otherwise),
--    and the trigger in 003 keeps current_viewers in step with `streams`.
--
-- Partitions: created here with a single catch-all partition `p_future`; the
-- procedure in 003 (vc_partition_maintenance) splits the real monthly/daily
-- partitions out of it and drops expired ones. 003 runs it once at migration
-- time; the event scheduler runs it daily at 02:00 UTC; vc-sink at start-up.

-- One row per stream: the count as of the last closed bucket.
CREATE TABLE IF NOT EXISTS current_viewers (
    stream_id      BIGINT       NOT NULL,
    broadcaster_id BIGINT       NULL,      -- copied from streams
    category_id    INT          NULL,      -- copied from streams
    status         ENUM('scheduled','live','ended') NOT NULL DEFAULT 'live', -- from streams; 'live' until known
    viewer_count   INT UNSIGNED NOT NULL DEFAULT 0,  -- distinct viewers at updated_at
    peak_viewers   INT UNSIGNED NOT NULL DEFAULT 0,  -- highest distinct count ever seen
    peak_at        DATETIME(3)  NULL,
    total_viewers  BIGINT UNSIGNED NOT NULL DEFAULT 0, -- viewer arrivals (see sql/README.md)
    started_at     DATETIME(3)  NOT NULL,  -- streams.started_at, else the first event seen
    updated_at     DATETIME(3)  NOT NULL,  -- end of the last closed bucket (event time)
    PRIMARY KEY (stream_id),
    -- sql/queries/live_ranking.sql: WHERE status='live' ORDER BY viewer_count DESC, started_at DESC LIMIT n
    -- (covering: stream_id is the clustered key, so no row lookup; no filesort)
    KEY ix_cv_ranking (status, viewer_count DESC, started_at DESC),
    -- sql/queries/live_ranking_category.sql: the same per category
    KEY ix_cv_category_ranking (category_id, status, viewer_count DESC, started_at DESC),
    -- a broadcaster's live streams (channel page)
    KEY ix_cv_broadcaster (broadcaster_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per stream per closed bucket (VC_ROLLUP_SECONDS, 300 in production).
-- Monthly RANGE partitions on recorded_at, 12 months kept.
CREATE TABLE IF NOT EXISTS viewer_history (
    stream_id        BIGINT        NOT NULL,
    recorded_at      DATETIME      NOT NULL,  -- bucket start, UTC
    bucket_seconds   INT UNSIGNED  NOT NULL,
    broadcaster_id   BIGINT        NULL,      -- copied from streams
    category_id      INT           NULL,      -- copied from streams
    peak_viewers     INT UNSIGNED  NOT NULL,  -- max distinct viewers at any instant of the bucket
    min_viewers      INT UNSIGNED  NOT NULL,  -- min distinct viewers at any instant of the bucket
    avg_viewers      DECIMAL(12,3) NOT NULL,  -- time-weighted average = watch_seconds / bucket_seconds
    joins            INT UNSIGNED  NOT NULL,  -- connections opened in the bucket
    leaves           INT UNSIGNED  NOT NULL,  -- connections closed in the bucket (any reason)
    distinct_viewers INT UNSIGNED  NOT NULL,  -- distinct viewers present at any time in the bucket
    watch_seconds    DECIMAL(14,3) NOT NULL,  -- integral of the distinct count over the bucket
    -- the clustered key: a stream's graph for a day (sql/queries/stream_graph.sql) is one range read;
    -- also makes the sink's write idempotent (one row per stream per bucket)
    PRIMARY KEY (stream_id, recorded_at),
    -- sql/queries/broadcaster_history.sql and broadcaster_growth.sql: WHERE broadcaster_id=? AND recorded_at range
    KEY ix_vh_broadcaster (broadcaster_id, recorded_at),
    -- sql/queries/peak_hours_category.sql: WHERE category_id=? AND recorded_at range, grouped by hour
    KEY ix_vh_category (category_id, recorded_at, avg_viewers)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
PARTITION BY RANGE COLUMNS (recorded_at) (
    PARTITION p_future VALUES LESS THAN (MAXVALUE)
);

-- Per stream per UTC day, summed from the closed buckets (no join needed to read).
CREATE TABLE IF NOT EXISTS daily_statistics (
    stat_date      DATE          NOT NULL,
    stream_id      BIGINT        NOT NULL,
    broadcaster_id BIGINT        NULL,      -- copied from streams
    category_id    INT           NULL,      -- copied from streams
    peak_viewers   INT UNSIGNED  NOT NULL,  -- max of the day's bucket peaks
    live_seconds   INT UNSIGNED  NOT NULL,  -- seconds covered by buckets (stream had viewers or events)
    watch_seconds  DECIMAL(16,3) NOT NULL,  -- sum of the buckets' watch_seconds
    avg_viewers    DECIMAL(12,3) AS (watch_seconds / NULLIF(live_seconds, 0)) VIRTUAL,
    joins          INT UNSIGNED  NOT NULL,
    leaves         INT UNSIGNED  NOT NULL,
    sessions       INT UNSIGNED  NOT NULL,  -- viewing sessions that ended that day (user_sessions rows)
    PRIMARY KEY (stat_date, stream_id),
    -- sql/queries/daily_statistics.sql: one stream's days
    KEY ix_ds_stream (stream_id, stat_date),
    -- sql/queries/daily_statistics.sql: a category's streams of a day, by watch time
    KEY ix_ds_category (stat_date, category_id, watch_seconds)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Per broadcaster per UTC day (streams whose broadcaster is known), no join needed to read.
-- peak_viewers is the highest bucket peak of any one of the broadcaster's streams that day.
CREATE TABLE IF NOT EXISTS daily_broadcaster_statistics (
    broadcaster_id BIGINT        NOT NULL,
    stat_date      DATE          NOT NULL,
    peak_viewers   INT UNSIGNED  NOT NULL,
    live_seconds   INT UNSIGNED  NOT NULL,
    watch_seconds  DECIMAL(16,3) NOT NULL,
    avg_viewers    DECIMAL(12,3) AS (watch_seconds / NULLIF(live_seconds, 0)) VIRTUAL,
    joins          INT UNSIGNED  NOT NULL,
    leaves         INT UNSIGNED  NOT NULL,
    sessions       INT UNSIGNED  NOT NULL,
    -- sql/queries/broadcaster_growth.sql: one broadcaster's days (week over week)
    PRIMARY KEY (broadcaster_id, stat_date),
    -- sql/queries/daily_statistics.sql: the day's top broadcasters by watch time
    KEY ix_dbs_date (stat_date, watch_seconds)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per finished viewing session (a connection from join to leave).
-- Daily RANGE partitions on left_at, 30 days kept (GDPR: dropping a partition
-- is the deletion). user_id NULL is an anonymous viewer.
CREATE TABLE IF NOT EXISTS user_sessions (
    stream_id      BIGINT        NOT NULL,
    gateway_id     VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    conn_id        BIGINT        NOT NULL,  -- with gateway_id unique across gateway restarts
    left_at        DATETIME(3)   NOT NULL,
    joined_at      DATETIME(3)   NOT NULL,
    user_id        BIGINT        NULL,
    watch_seconds  DECIMAL(12,3) NOT NULL,  -- left_at - joined_at
    leave_reason   ENUM('client_closed','heartbeat_timeout','gateway_shutdown','rejected',
                        'gateway_dead','repair') NOT NULL,
    -- the natural key (a connection ends once); left_at is in it because every
    -- unique key of a partitioned table must contain the partitioning column
    PRIMARY KEY (stream_id, gateway_id, conn_id, left_at),
    -- a user's sessions (GDPR access request, "what did I watch")
    KEY ix_us_user (user_id, left_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
PARTITION BY RANGE COLUMNS (left_at) (
    PARTITION p_future VALUES LESS THAN (MAXVALUE)
);

-- vc-sink bookkeeping: written in the same transaction as the rows above, so
-- the rows, the offset and the open state always move together.
-- next_offset is the Kafka offset of the next message to consume.
CREATE TABLE IF NOT EXISTS sink_offsets (
    consumer_group VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    topic          VARCHAR(249) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kpartition     INT          NOT NULL,
    next_offset    BIGINT       NOT NULL,
    flushes        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer_group, topic, kpartition)
) ENGINE=InnoDB;

-- The sink's open state of one partition as of next_offset (open sessions,
-- partial buckets, gateway liveness): see sink/rollup.h for the format.
CREATE TABLE IF NOT EXISTS sink_checkpoints (
    consumer_group VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    topic          VARCHAR(249) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kpartition     INT          NOT NULL,
    format         INT          NOT NULL,
    state          LONGBLOB     NOT NULL,
    PRIMARY KEY (consumer_group, topic, kpartition)
) ENGINE=InnoDB;
