-- broadcaster_growth: a broadcaster's week-over-week growth.
-- Answers: "per ISO week: hours watched, peak, average viewers while live, and the
-- growth of hours watched against the previous week (percent)".
-- Parameters: @broadcaster_id BIGINT, @from DATE, @to DATE (@to exclusive; take whole weeks)
--   e.g. SET @broadcaster_id = 7, @from = '2026-09-07', @to = '2026-11-30';
-- Source: the view daily_broadcaster_statistics over daily_statistics (ix_ds_broadcaster
-- (broadcaster_id, stat_date): one range read). No join.
WITH weekly AS (
    SELECT YEARWEEK(d.stat_date, 3)            AS iso_week,
           MIN(d.stat_date)                    AS first_day,
           SUM(d.watch_seconds) / 3600         AS hours_watched,
           MAX(d.peak_viewers)                 AS peak_viewers,
           SUM(d.watch_seconds) / NULLIF(SUM(d.live_seconds), 0) AS avg_viewers_live,
           SUM(d.sessions)                     AS sessions
      FROM daily_broadcaster_statistics AS d
     WHERE d.broadcaster_id = @broadcaster_id
       AND d.stat_date >= @from
       AND d.stat_date < @to
     GROUP BY YEARWEEK(d.stat_date, 3)
)
SELECT iso_week,
       first_day,
       hours_watched,
       peak_viewers,
       avg_viewers_live,
       sessions,
       ROUND(100 * (hours_watched - LAG(hours_watched) OVER w) / NULLIF(LAG(hours_watched) OVER w, 0), 1)
           AS growth_pct
  FROM weekly
WINDOW w AS (ORDER BY iso_week)
 ORDER BY iso_week;
