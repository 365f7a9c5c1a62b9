/* threads.h -- internal: the thread policy of core/threads.cpp (see there).
 * C and C++. */
#ifndef FX_THREADS_H
#define FX_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Brings the calling thread's OpenMP thread count (and, at the first call
 * in the process, OpenBLAS's) in line with faissx_set_threads /
 * FAISSX_THREADS / the default policy. One thread-local compare when
 * nothing changed. Every C API entry calls it (FX_TRY); so does the
 * server's work pool before each request. */
void fx_threads_enter(void);

#ifdef __cplusplus
}
#endif

#endif
