/* db.h -- the MariaDB connection settings that the gateway's database
 * threads (the catalog, the history) copy at start, and the connection they
 * make from them: one place for the copy, the timeouts and the charset. */
#ifndef GW_DB_H
#define GW_DB_H

#include <mysql.h>
#include <stddef.h>

typedef struct {
    char *host, *user, *password, *db;   /* owned copies, never NULL after gw_db_conf_copy */
    int port;
} gw_db_conf;

/* Copy the settings (NULL strings become ""). 0, or -1 out of memory (then
 * nothing is held). */
int gw_db_conf_copy(gw_db_conf *dst, const char *host, int port, const char *user, const char *password,
                    const char *db);
void gw_db_conf_free(gw_db_conf *c);

/* Connect with the given connect and read/write timeouts (seconds), utf8mb4,
 * and init_command (NULL: none) run on every connect. NULL and err on
 * failure. */
MYSQL *gw_db_connect(const gw_db_conf *c, unsigned connect_s, unsigned io_s, const char *init_command, char *err,
                     size_t errsize);

#endif
