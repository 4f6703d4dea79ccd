-- 003_partition_maintenance: automatic partition creation and expiry, and the
-- trigger that keeps current_viewers in step with streams.
--
-- vc_partition_maintenance(today) makes sure that
--   viewer_history has monthly partitions from today's month to 3 months ahead,
--     and none that ends before the first day of (today's month - 12 months)
--     (the current month plus 12 full months are kept);
--   user_sessions has daily partitions from today to 7 days ahead, and none
--     for a day older than today - 30 days (30 full days are kept, GDPR).
-- Partitions are named pYYYYMM / pYYYYMMDD after the month / day they hold;
-- p_future (MAXVALUE) catches anything beyond, and new partitions are split out
-- of it (REORGANIZE of an empty partition: metadata only). Idempotent; `today`
-- is a parameter so that a test can simulate any date.
--
-- Scheduling: the MariaDB event scheduler runs it daily at 02:00 UTC
-- (event_scheduler=ON in deploy's my.cnf); vc-sink also calls it at start-up,
-- and this migration once. Chosen over a timer in the sink so that the
-- retention also happens while no sink runs, and so that a DBA sees it with
-- SHOW EVENTS.

DELIMITER //

CREATE OR REPLACE PROCEDURE vc_partition_split(IN p_table VARCHAR(64), IN p_name VARCHAR(64), IN p_bound VARCHAR(32))
    MODIFIES SQL DATA
    COMMENT 'Split partition p_name (rows < p_bound) out of p_future of p_table'
BEGIN
    SET @vc_sql = CONCAT('ALTER TABLE `', p_table, '` REORGANIZE PARTITION p_future INTO (',
                         'PARTITION ', p_name, ' VALUES LESS THAN (''', p_bound, '''), ',
                         'PARTITION p_future VALUES LESS THAN (MAXVALUE))');
    PREPARE vc_stmt FROM @vc_sql;
    EXECUTE vc_stmt;
    DEALLOCATE PREPARE vc_stmt;
END //

CREATE OR REPLACE PROCEDURE vc_partition_drop(IN p_table VARCHAR(64), IN p_name VARCHAR(64))
    MODIFIES SQL DATA
BEGIN
    SET @vc_sql = CONCAT('ALTER TABLE `', p_table, '` DROP PARTITION ', p_name);
    PREPARE vc_stmt FROM @vc_sql;
    EXECUTE vc_stmt;
    DEALLOCATE PREPARE vc_stmt;
END //

-- The highest lower bound already split out (the end of the last named
-- partition), or NULL if there is none. Named partitions are contiguous and
-- ascending, so a new one can only be added above it.
CREATE OR REPLACE FUNCTION vc_partition_last_end(p_table VARCHAR(64), p_monthly BOOLEAN) RETURNS DATE
    READS SQL DATA
BEGIN
    DECLARE v_last VARCHAR(64);
    SELECT MAX(partition_name) INTO v_last
      FROM information_schema.partitions
     WHERE table_schema = DATABASE() AND table_name = p_table AND partition_name <> 'p_future';
    IF v_last IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_monthly THEN
        RETURN STR_TO_DATE(CONCAT(SUBSTRING(v_last, 2), '01'), '%Y%m%d') + INTERVAL 1 MONTH;
    END IF;
    RETURN STR_TO_DATE(SUBSTRING(v_last, 2), '%Y%m%d') + INTERVAL 1 DAY;
END //

CREATE OR REPLACE PROCEDURE vc_partition_maintain(IN p_table VARCHAR(64), IN p_monthly BOOLEAN,
                                       IN p_today DATE, IN p_ahead INT, IN p_keep INT)
    MODIFIES SQL DATA
BEGIN
    DECLARE v_first DATE;     -- first period to exist (today's month / day)
    DECLARE v_last DATE;      -- last period to exist
    DECLARE v_cutoff DATE;    -- periods starting before this are dropped
    DECLARE v_next DATE;
    DECLARE v_name VARCHAR(64);
    DECLARE v_done BOOLEAN DEFAULT FALSE;
    DECLARE cur CURSOR FOR
        SELECT partition_name FROM information_schema.partitions
         WHERE table_schema = DATABASE() AND table_name = p_table AND partition_name <> 'p_future'
         ORDER BY partition_name;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;

    IF p_monthly THEN
        SET v_first = p_today - INTERVAL (DAYOFMONTH(p_today) - 1) DAY;
        SET v_last = v_first + INTERVAL p_ahead MONTH;
        SET v_cutoff = v_first - INTERVAL p_keep MONTH;
    ELSE
        SET v_first = p_today;
        SET v_last = p_today + INTERVAL p_ahead DAY;
        SET v_cutoff = p_today - INTERVAL p_keep DAY;
    END IF;

    -- create: from the end of the last named partition (or today) up to v_last
    SET v_next = GREATEST(v_first, COALESCE(vc_partition_last_end(p_table, p_monthly), v_first));
    WHILE v_next <= v_last DO
        IF p_monthly THEN
            CALL vc_partition_split(p_table, DATE_FORMAT(v_next, 'p%Y%m'),
                                    DATE_FORMAT(v_next + INTERVAL 1 MONTH, '%Y-%m-%d'));
            SET v_next = v_next + INTERVAL 1 MONTH;
        ELSE
            CALL vc_partition_split(p_table, DATE_FORMAT(v_next, 'p%Y%m%d'),
                                    DATE_FORMAT(v_next + INTERVAL 1 DAY, '%Y-%m-%d'));
            SET v_next = v_next + INTERVAL 1 DAY;
        END IF;
    END WHILE;

    -- drop: every named partition whose period starts before the cutoff
    OPEN cur;
    drop_loop: LOOP
        FETCH cur INTO v_name;
        IF v_done THEN
            LEAVE drop_loop;
        END IF;
        IF (p_monthly AND STR_TO_DATE(CONCAT(SUBSTRING(v_name, 2), '01'), '%Y%m%d') < v_cutoff)
           OR (NOT p_monthly AND STR_TO_DATE(SUBSTRING(v_name, 2), '%Y%m%d') < v_cutoff) THEN
            CALL vc_partition_drop(p_table, v_name);
        END IF;
    END LOOP;
    CLOSE cur;
END //

CREATE OR REPLACE PROCEDURE vc_partition_maintenance(IN p_today DATE)
    MODIFIES SQL DATA
    COMMENT 'Create viewer_history (3 months) and user_sessions (7 days) partitions ahead, drop expired'
BEGIN
    CALL vc_partition_maintain('viewer_history', TRUE, p_today, 3, 12);
    CALL vc_partition_maintain('user_sessions', FALSE, p_today, 7, 30);
END //

-- current_viewers carries the stream's broadcaster, category and status so
-- that the ranking reads one table; the platform changes them in `streams`.
CREATE OR REPLACE TRIGGER trg_streams_ai AFTER INSERT ON streams FOR EACH ROW
    UPDATE current_viewers
       SET broadcaster_id = NEW.broadcaster_id, category_id = NEW.category_id,
           status = NEW.status, started_at = COALESCE(NEW.started_at, started_at)
     WHERE stream_id = NEW.stream_id //

CREATE OR REPLACE TRIGGER trg_streams_au AFTER UPDATE ON streams FOR EACH ROW
    UPDATE current_viewers
       SET broadcaster_id = NEW.broadcaster_id, category_id = NEW.category_id,
           status = NEW.status, started_at = COALESCE(NEW.started_at, started_at)
     WHERE stream_id = NEW.stream_id //

DELIMITER ;

CALL vc_partition_maintenance(UTC_DATE());

CREATE EVENT IF NOT EXISTS ev_vc_partition_maintenance
    ON SCHEDULE EVERY 1 DAY
    STARTS TIMESTAMP(UTC_DATE() + INTERVAL 1 DAY, '02:00:00')
    ON COMPLETION PRESERVE
    COMMENT 'Daily partition creation and expiry (see 003_partition_maintenance.sql)'
    DO CALL vc_partition_maintenance(UTC_DATE());
