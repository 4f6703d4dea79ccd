-- broadcaster_history: a broadcaster's 5-minute viewer history over a period, all streams.
-- Answers: "how many watched broadcaster @broadcaster_id, bucket by bucket, between @from and @to".
-- Parameters: @broadcaster_id BIGINT, @from DATETIME, @to DATETIME (UTC, @to exclusive)
--   e.g. SET @broadcaster_id = 7, @from = '2026-11-01', @to = '2026-11-08';
-- Plan: ix_vh_broadcaster (broadcaster_id, recorded_at): range read in recorded_at
-- order (no sort), only the monthly partitions of the period are touched.
SELECT vh.recorded_at,
       vh.stream_id,
       vh.peak_viewers,
       vh.min_viewers,
       vh.avg_viewers,
       vh.distinct_viewers,
       vh.joins,
       vh.leaves,
       vh.watch_seconds
  FROM viewer_history AS vh
 WHERE vh.broadcaster_id = @broadcaster_id
   AND vh.recorded_at >= @from
   AND vh.recorded_at < @to
 ORDER BY vh.recorded_at;
