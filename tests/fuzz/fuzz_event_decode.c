/* fuzz_event_decode -- libFuzzer harness over vc_event_decode().
 *
 * A newer writer schema (tests/schemas/viewer_event_v2.avsc) and an older
 * one (viewer_event_older.avsc, whose missing fields take the reader's
 * defaults) are registered first, so inputs carrying their fingerprints
 * exercise the avro-c resolution path as well as the hand-written fast path. Whatever decodes must encode
 * again and decode to the same event. Built and run by tests/fuzz/run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_event.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void register_file(const char *path)
{
    char err[256] = "";
    static char json[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f) {
        perror(path);
        abort();
    }
    n = fread(json, 1, sizeof json - 1, f);
    fclose(f);
    json[n] = '\0';
    if (vc_schema_register(json, err, sizeof err) != 0) {
        fprintf(stderr, "cannot register %s: %s\n", path, err);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    register_file(VC_V2_AVSC);
    register_file(VC_OLDER_AVSC);
    return 0;
}

static void same_event(const vc_event *a, const vc_event *b)
{
    if (a->type != b->type || a->stream_id != b->stream_id || a->user_id != b->user_id ||
        a->conn_id != b->conn_id || strcmp(a->gateway_id, b->gateway_id) != 0 ||
        a->gateway_epoch != b->gateway_epoch || a->seq != b->seq || a->ts_ms != b->ts_ms ||
        a->reason != b->reason || a->snapshot_id != b->snapshot_id || a->chunk != b->chunk ||
        a->chunks != b->chunks || a->nviewers != b->nviewers)
        abort();
    for (size_t i = 0; i < a->nviewers; i++)
        if (memcmp(&a->viewers[i], &b->viewers[i], sizeof a->viewers[i]) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[VC_EVENT_ENCODED_MAX];
    char err[256];
    vc_event ev, again;
    size_t len;

    vc_event_init(&ev);
    vc_codec_rc rc = vc_event_decode(data, size, &ev, err, sizeof err);
    if (rc != VC_CODEC_OK) {
        if (rc < VC_CODEC_ERR_MAGIC || rc > VC_CODEC_ERR_INVALID || ev.viewers || ev.nviewers)
            abort();
        return 0;
    }
    /* A decoded event keeps the contract, so it encodes and reads back the same. */
    if (vc_event_validate(&ev, NULL, 0) != VC_CODEC_OK)
        abort();
    if (vc_event_encode(&ev, out, sizeof out, &len) != VC_CODEC_OK)
        abort();
    vc_event_init(&again);
    if (vc_event_decode(out, len, &again, err, sizeof err) != VC_CODEC_OK)
        abort();
    same_event(&ev, &again);
    vc_event_free(&again);
    vc_event_free(&ev);
    return 0;
}
