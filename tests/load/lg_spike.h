/* lg_spike.h -- when vc-loadgen's star goes live and when it ends: one spike,
 * or one every --spike-every seconds for the run's whole duration. Pure: the
 * controller (loadgen.c) asks which spike is live at a load time and moves
 * its sessions accordingly; the ground truth follows from those moves. */
#ifndef LG_SPIKE_H
#define LG_SPIKE_H

typedef struct {
    double at;       /* the first spike's start (load time, seconds) */
    double arrive_s; /* its viewers arrive within this many seconds of a start */
    double every;    /* period between starts; 0: one spike */
    double length;   /* a star ends this long after its start; 0: never (one spike only) */
    double duration; /* the run's load time: no spike starts at or after it */
} lg_spike_plan;

/* 0 when the plan is usable; otherwise -1 with a reason in errstr: a repeated
 * spike needs arrive_s < length <= every (the star has ended and its viewers
 * have left before the next one goes live), a single one arrive_s < length
 * when it has a length. */
int lg_spike_plan_check(const lg_spike_plan *p, char *errstr, int errstr_size);

/* Spikes that start within the run: starts at + k * every < duration. */
int lg_spike_count(const lg_spike_plan *p);

/* Start and end of spike k (0-based). The end is 1e300 for a star that never
 * ends; it may lie past the duration (the run's end ends it). */
double lg_spike_start(const lg_spike_plan *p, int k);
double lg_spike_end(const lg_spike_plan *p, int k);

/* The spike live at load time t (started, not ended), or -1. */
int lg_spike_live_at(const lg_spike_plan *p, double t);

#endif
