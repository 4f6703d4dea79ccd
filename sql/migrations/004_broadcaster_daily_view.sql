-- 004_broadcaster_daily_view: per-broadcaster daily statistics become a view
-- over daily_statistics, and the daily indexes stop carrying watch_seconds.
--
-- Why: the daily rows are updated at every flush (watch_seconds += ...) for
-- every live stream. Writing a second, per-broadcaster copy of the same deltas
-- doubled that work (the 100,000-stream flush in sink/README.md), and an index
-- containing watch_seconds is rewritten at every update. The broadcaster's day
-- is the sum of its streams' days: the view reads it with one range of
-- ix_ds_broadcaster and no join. The "top of the day" queries read one day's
-- rows (a range on stat_date) and sort them in memory.
-- Re-runnable.

DROP TABLE IF EXISTS daily_broadcaster_statistics;

ALTER TABLE daily_statistics
    DROP INDEX IF EXISTS ix_ds_category,
    -- a category's streams of a day (sql/queries/daily_statistics.sql variants, ad hoc)
    ADD INDEX ix_ds_category (stat_date, category_id),
    -- daily_broadcaster_statistics below: one broadcaster's days
    -- (sql/queries/broadcaster_growth.sql)
    ADD INDEX IF NOT EXISTS ix_ds_broadcaster (broadcaster_id, stat_date);

-- Per broadcaster per UTC day (streams whose broadcaster is known), no join.
-- peak_viewers is the highest bucket peak of any one of the broadcaster's
-- streams that day.
CREATE OR REPLACE SQL SECURITY INVOKER VIEW daily_broadcaster_statistics AS
SELECT broadcaster_id,
       stat_date,
       MAX(peak_viewers)                               AS peak_viewers,
       SUM(live_seconds)                               AS live_seconds,
       SUM(watch_seconds)                              AS watch_seconds,
       SUM(watch_seconds) / NULLIF(SUM(live_seconds), 0) AS avg_viewers,
       SUM(joins)                                      AS joins,
       SUM(leaves)                                     AS leaves,
       SUM(sessions)                                   AS sessions,
       COUNT(*)                                        AS streams
  FROM daily_statistics
 WHERE broadcaster_id IS NOT NULL
 GROUP BY broadcaster_id, stat_date;
