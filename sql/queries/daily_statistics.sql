-- daily_statistics: one stream's day-by-day statistics.
-- Answers: "per UTC day: peak, average viewers while live, hours watched, joins,
-- finished sessions of stream @stream_id between @from and @to".
-- Parameters: @stream_id BIGINT, @from DATE, @to DATE (@to exclusive)
--   e.g. SET @stream_id = 42, @from = '2026-11-01', @to = '2026-12-01';
-- Plan: ix_ds_stream (stream_id, stat_date): one range read in order. No join.
SELECT d.stat_date,
       d.broadcaster_id,
       d.category_id,
       d.peak_viewers,
       d.avg_viewers,
       d.watch_seconds / 3600 AS hours_watched,
       d.live_seconds,
       d.joins,
       d.leaves,
       d.sessions
  FROM daily_statistics AS d
 WHERE d.stream_id = @stream_id
   AND d.stat_date >= @from
   AND d.stat_date < @to
 ORDER BY d.stat_date;
