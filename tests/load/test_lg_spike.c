/* lg_spike: when vc-loadgen's star goes live and ends, once or repeatedly. */
#include <criterion/criterion.h>

#include "lg_spike.h"

static int check(lg_spike_plan p)
{
    char why[128] = "";

    return lg_spike_plan_check(&p, why, sizeof(why));
}

Test(lg_spike, one_spike_without_length_never_ends)
{
    lg_spike_plan p = {.at = 20, .arrive_s = 5, .duration = 60};

    cr_assert_eq(check(p), 0);
    cr_assert_eq(lg_spike_count(&p), 1);
    cr_assert_float_eq(lg_spike_start(&p, 0), 20, 1e-9);
    cr_assert_eq(lg_spike_live_at(&p, 19.99), -1, "before the star goes live");
    cr_assert_eq(lg_spike_live_at(&p, 20), 0);
    cr_assert_eq(lg_spike_live_at(&p, 59), 0, "live until the run's end");
    cr_assert(lg_spike_end(&p, 0) > 1e100);
}

Test(lg_spike, one_spike_after_the_run_does_not_happen)
{
    lg_spike_plan p = {.at = 60, .arrive_s = 5, .duration = 60};

    cr_assert_eq(lg_spike_count(&p), 0);
    cr_assert_eq(lg_spike_live_at(&p, 61), -1);
}

Test(lg_spike, one_spike_with_a_length_ends)
{
    lg_spike_plan p = {.at = 10, .arrive_s = 5, .length = 30, .duration = 100};

    cr_assert_eq(check(p), 0);
    cr_assert_eq(lg_spike_count(&p), 1);
    cr_assert_float_eq(lg_spike_end(&p, 0), 40, 1e-9);
    cr_assert_eq(lg_spike_live_at(&p, 39.9), 0);
    cr_assert_eq(lg_spike_live_at(&p, 40), -1, "the star has ended");
    cr_assert_eq(lg_spike_live_at(&p, 99), -1, "and does not come back");
}

/* The demo's star: live at 20 s, then every 60 s, each for 40 s. */
Test(lg_spike, repeated_spikes_cover_the_whole_run)
{
    lg_spike_plan p = {.at = 20, .arrive_s = 5, .every = 60, .length = 40, .duration = 200};

    cr_assert_eq(check(p), 0);
    cr_assert_eq(lg_spike_count(&p), 3, "starts at 20, 80, 140; not at 200, when the run is over");
    for (int k = 0; k < 3; k++) {
        double t0 = 20 + 60.0 * k;

        cr_assert_float_eq(lg_spike_start(&p, k), t0, 1e-9, "spike %d", k);
        cr_assert_float_eq(lg_spike_end(&p, k), t0 + 40, 1e-9, "spike %d", k);
        cr_assert_eq(lg_spike_live_at(&p, t0), k, "spike %d goes live", k);
        cr_assert_eq(lg_spike_live_at(&p, t0 + 39.5), k, "spike %d still live", k);
        cr_assert_eq(lg_spike_live_at(&p, t0 + 40), -1, "spike %d ended", k);
        cr_assert_eq(lg_spike_live_at(&p, t0 + 59.9), -1, "the gap after spike %d", k);
    }
}

Test(lg_spike, a_start_just_before_the_end_counts)
{
    lg_spike_plan p = {.at = 20, .arrive_s = 5, .every = 60, .length = 40, .duration = 200.5};

    cr_assert_eq(lg_spike_count(&p), 4);
    cr_assert_eq(lg_spike_live_at(&p, 200.2), 3, "the fourth star, live when the run ends");
}

Test(lg_spike, a_star_ends_before_the_next_one_goes_live)
{
    lg_spike_plan p = {.at = 0, .arrive_s = 5, .every = 60, .length = 60, .duration = 600};

    cr_assert_eq(check(p), 0, "a star may end just as the next one starts");
    cr_assert_eq(lg_spike_live_at(&p, 59.9), 0);
    cr_assert_eq(lg_spike_live_at(&p, 60), 1, "the next star, not the ended one");
    p.length = 61;
    cr_assert_eq(check(p), -1, "overlapping stars would share the same sessions");
    p.length = 0;
    cr_assert_eq(check(p), -1, "a repeated star must end");
    p.length = 5;
    cr_assert_eq(check(p), -1, "a star must outlast its viewers' arrival");
    p.length = 30;
    p.at = -1;
    cr_assert_eq(check(p), -1, "negative times");
}
