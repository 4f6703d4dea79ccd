-- live_ranking: the most watched live streams right now (all categories).
-- Answers: "top 50 live streams by current viewers", ties broken by the newer stream.
-- Parameters: none (edit LIMIT for a longer list).
-- Freshness: current_viewers is updated at every closed 5-minute bucket (event time);
-- the second-by-second ranking is served from Redis by the gateways.
-- Plan: ix_cv_ranking (status, viewer_count DESC, started_at DESC): a ref read of
-- the first 50 index entries, no sort; streams joined by primary key.
SELECT cv.stream_id,
       s.title,
       cv.broadcaster_id,
       cv.category_id,
       cv.viewer_count,
       cv.peak_viewers,
       cv.started_at,
       cv.updated_at
  FROM current_viewers AS cv
  LEFT JOIN streams AS s ON s.stream_id = cv.stream_id
 WHERE cv.status = 'live'
 ORDER BY cv.viewer_count DESC, cv.started_at DESC
 LIMIT 50;
