/* db.c -- see db.h. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s)
{
    return strdup(s ? s : "");
}

int gw_db_conf_copy(gw_db_conf *dst, const char *host, int port, const char *user, const char *password,
                    const char *db)
{
    dst->host = dup_str(host);
    dst->user = dup_str(user);
    dst->password = dup_str(password);
    dst->db = dup_str(db);
    dst->port = port;
    if (dst->host && dst->user && dst->password && dst->db)
        return 0;
    gw_db_conf_free(dst);
    return -1;
}

void gw_db_conf_free(gw_db_conf *c)
{
    free(c->host);
    free(c->user);
    free(c->password);
    free(c->db);
    memset(c, 0, sizeof(*c));
}

MYSQL *gw_db_connect(const gw_db_conf *c, unsigned connect_s, unsigned io_s, const char *init_command, char *err,
                     size_t errsize)
{
    MYSQL *db = mysql_init(NULL);

    if (db == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
    mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &io_s);
    mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
    mysql_options(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (init_command)
        mysql_options(db, MYSQL_INIT_COMMAND, init_command);
    if (mysql_real_connect(db, c->host, c->user, c->password, c->db, (unsigned)c->port, NULL, 0) == NULL) {
        snprintf(err, errsize, "%s", mysql_error(db));
        mysql_close(db);
        return NULL;
    }
    return db;
}
