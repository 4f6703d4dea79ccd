/* fanout.h -- one pre-framed message written to many sockets, on two threads.
 *
 * On loopback (and on a gateway whose NIC interrupts land on the same core)
 * a send() of a small frame also runs the receiver's TCP input: ~13 us per
 * viewer, so 19,500 viewers of one stream take ~250 ms of one core. The
 * fan-out splits the sockets between the calling thread and one helper
 * thread, so a count change reaches them on two cores.
 *
 * The helper only calls send() on the descriptors it is given: no
 * libwebsockets call leaves the loop thread. gw_fanout_send() returns when
 * both halves are done, so the caller (the loop thread) keeps every
 * descriptor open meanwhile. */
#ifndef GW_FANOUT_H
#define GW_FANOUT_H

#include <stddef.h>
#include <sys/types.h>

/* Below this many sockets the calling thread writes them all itself: one
 * thread takes ~80-130 ms for 10,000 on loopback, within the 200 ms goal,
 * and two gateway processes fanning out at once would otherwise run four
 * writing threads on two cores. */
#define GW_FANOUT_SPLIT_MIN 10000

typedef struct gw_fanout gw_fanout;

/* A fan-out that splits from split_min sockets on (GW_FANOUT_SPLIT_MIN).
 * NULL when the process may run on one CPU only, or on failure (no memory,
 * no thread): gw_fanout_send() then does not split. Destroy accepts NULL. */
gw_fanout *gw_fanout_new(size_t split_min);
void gw_fanout_destroy(gw_fanout *f);

/* send(fds[i], frame, len, MSG_NOSIGNAL | MSG_DONTWAIT) for every i < n;
 * sent[i] is what send() returned (the byte count, or -errno). f may be
 * NULL (one thread). Returns how many took the whole frame. */
size_t gw_fanout_send(gw_fanout *f, const int *fds, ssize_t *sent, size_t n, const void *frame, size_t len);

/* A WebSocket text frame header (server to client: unmasked, FIN) for a
 * payload of len bytes into hdr (up to 10 bytes); returns its length. */
size_t gw_fanout_text_header(unsigned char hdr[10], size_t len);

#endif
