/* Merging the per-partition rankings into the overall top N. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "reader.h"

Test(ranking, merges_partitions_by_viewers)
{
    gw_rank_entry e[] = {{1, 10}, {2, 50}, {3, 30}, {4, 50}, {5, 1}};
    char *json = gw_ranking_json(0, e, 5, 3);

    cr_assert_str_eq(json, "{\"category\":0,\"streams\":[{\"stream\":2,\"viewers\":50},{\"stream\":4,\"viewers\":50},"
                           "{\"stream\":3,\"viewers\":30}]}");
    free(json);
}

Test(ranking, fewer_than_limit_and_empty)
{
    gw_rank_entry e[] = {{9, 2}};
    char *json = gw_ranking_json(7, e, 1, 10);
    char *empty = gw_ranking_json(7, NULL, 0, 10);

    cr_assert_str_eq(json, "{\"category\":7,\"streams\":[{\"stream\":9,\"viewers\":2}]}");
    cr_assert_str_eq(empty, "{\"category\":7,\"streams\":[]}");
    free(json);
    free(empty);
}
