-- 001_master_data: the normalised master data (3NF).
--
-- These four tables belong to the platform (sign-up, channel pages, "go live"):
-- the viewer-count pipeline only reads them, to denormalise broadcaster and
-- category into its own tables. Every time is UTC, millisecond precision.
-- Foreign keys are kept here (none of these tables is partitioned).

CREATE TABLE IF NOT EXISTS users (
    user_id       BIGINT       NOT NULL,           -- the id in the viewer JWT and in events
    username      VARCHAR(64)  NOT NULL,
    display_name  VARCHAR(128) NOT NULL DEFAULT '',
    country_code  CHAR(2)      NULL,
    created_at    DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (user_id),
    -- login / profile lookup by name
    UNIQUE KEY uq_users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS categories (
    category_id   INT          NOT NULL,
    name          VARCHAR(64)  NOT NULL,
    slug          VARCHAR(64)  NOT NULL,
    PRIMARY KEY (category_id),
    -- category page URL -> id
    UNIQUE KEY uq_categories_slug (slug)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A broadcaster is a user with a channel (1:1, optional on the user side).
CREATE TABLE IF NOT EXISTS broadcasters (
    broadcaster_id BIGINT       NOT NULL,
    user_id        BIGINT       NOT NULL,
    channel_name   VARCHAR(128) NOT NULL,
    created_at     DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (broadcaster_id),
    -- one channel per user; also serves "is this user a broadcaster"
    UNIQUE KEY uq_broadcasters_user (user_id),
    CONSTRAINT fk_broadcasters_user FOREIGN KEY (user_id) REFERENCES users (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per broadcast. stream_id is the id carried by every viewer event.
CREATE TABLE IF NOT EXISTS streams (
    stream_id      BIGINT       NOT NULL,
    broadcaster_id BIGINT       NOT NULL,
    category_id    INT          NOT NULL,
    title          VARCHAR(255) NOT NULL DEFAULT '',
    status         ENUM('scheduled','live','ended') NOT NULL DEFAULT 'scheduled',
    started_at     DATETIME(3)  NULL,
    ended_at       DATETIME(3)  NULL,
    PRIMARY KEY (stream_id),
    -- a broadcaster's streams, newest first (channel page, sql/queries/broadcaster_history.sql)
    KEY ix_streams_broadcaster_started (broadcaster_id, started_at),
    -- live streams of a category (category page before counts are known; also the FK's index)
    KEY ix_streams_category_status (category_id, status, started_at),
    CONSTRAINT fk_streams_broadcaster FOREIGN KEY (broadcaster_id) REFERENCES broadcasters (broadcaster_id),
    CONSTRAINT fk_streams_category FOREIGN KEY (category_id) REFERENCES categories (category_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
