-- daily_top_broadcasters: the broadcasters of one UTC day by hours watched.
-- Answers: "top 100 broadcasters of @day: hours watched, peak, average viewers, sessions".
-- Parameters: @day DATE   e.g. SET @day = '2026-11-24';
-- Source: the view daily_broadcaster_statistics (sql/migrations/004): the condition on
-- stat_date is pushed into it (a primary-key range of daily_statistics), the day's
-- broadcasters are grouped and sorted in memory. No join.
SELECT d.broadcaster_id,
       d.watch_seconds / 3600 AS hours_watched,
       d.peak_viewers,
       d.avg_viewers,
       d.sessions
  FROM daily_broadcaster_statistics AS d
 WHERE d.stat_date = @day
 ORDER BY d.watch_seconds DESC
 LIMIT 100;
