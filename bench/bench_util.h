/* bench_util.h -- small pieces every benchmark program needs: a monotonic
 * clock, strict integer options, and medians. */
#ifndef FX_BENCH_UTIL_H
#define FX_BENCH_UTIL_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on the monotonic clock. */
double bench_now(void);

/* A base-10 integer >= lo, the whole string, no overflow: 0, else -1. */
int bench_parse_ll(const char* s, long long lo, long long* out);

/* qsort comparator for doubles (ascending). */
int bench_cmp_double(const void* a, const void* b);

/* Median of n > 0 values (t is not modified). */
double bench_median(const double* t, int n);

/* Sleeps ms milliseconds. */
void bench_sleep_ms(int ms);

/* A loopback TCP port that was free a moment ago, or -1. */
int bench_free_port(void);

/* 1 if something accepts TCP connections on 127.0.0.1:port, else 0. */
int bench_port_open(int port);

#ifdef __cplusplus
}
#endif

#endif
