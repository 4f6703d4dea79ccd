-- peak_hours_category: the busiest hours of the day (UTC) in one category.
-- Answers: "in category @category_id between @from and @to, how many viewers were
-- watching on average at each hour of the day", busiest first.
-- Parameters: @category_id INT, @from DATETIME, @to DATETIME (@to exclusive)
--   e.g. SET @category_id = 3, @from = '2026-11-01', @to = '2026-12-01';
-- Plan: ix_vh_category (category_id, recorded_at, avg_viewers) covers the query
-- (range read, no row lookups); the 24 groups are sorted in memory.
SELECT HOUR(vh.recorded_at)                              AS hour_utc,
       SUM(vh.avg_viewers) / COUNT(DISTINCT vh.recorded_at) AS avg_concurrent_viewers,
       COUNT(DISTINCT DATE(vh.recorded_at))              AS days
  FROM viewer_history AS vh
 WHERE vh.category_id = @category_id
   AND vh.recorded_at >= @from
   AND vh.recorded_at < @to
 GROUP BY HOUR(vh.recorded_at)
 ORDER BY avg_concurrent_viewers DESC;
