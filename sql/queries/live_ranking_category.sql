-- live_ranking_category: the most watched live streams of one category right now.
-- Answers: "top 50 live streams in category @category_id".
-- Parameters: @category_id INT (e.g. SET @category_id = 3;)
-- Plan: ix_cv_category_ranking (category_id, status, viewer_count DESC, started_at DESC):
-- ref read of the first 50 entries, no sort.
SELECT cv.stream_id,
       s.title,
       cv.broadcaster_id,
       cv.viewer_count,
       cv.peak_viewers,
       cv.started_at,
       cv.updated_at
  FROM current_viewers AS cv
  LEFT JOIN streams AS s ON s.stream_id = cv.stream_id
 WHERE cv.category_id = @category_id
   AND cv.status = 'live'
 ORDER BY cv.viewer_count DESC, cv.started_at DESC
 LIMIT 50;
