-- stream_graph: one stream's 5-minute graph for one UTC day.
-- Answers: "viewers of stream @stream_id on @day, bucket by bucket" (288 points).
-- Parameters: @stream_id BIGINT, @day DATE   e.g. SET @stream_id = 42, @day = '2026-11-24';
-- Plan: primary key (stream_id, recorded_at): one range read in order, one partition.
SELECT vh.recorded_at,
       vh.peak_viewers,
       vh.min_viewers,
       vh.avg_viewers,
       vh.distinct_viewers,
       vh.joins,
       vh.leaves
  FROM viewer_history AS vh
 WHERE vh.stream_id = @stream_id
   AND vh.recorded_at >= @day
   AND vh.recorded_at < @day + INTERVAL 1 DAY
 ORDER BY vh.recorded_at;
