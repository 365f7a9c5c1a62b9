/* plain.h -- checks for the test programs that run without Criterion.
 *
 * Criterion cannot start under ThreadSanitizer (its boxfort arena wants
 * address space TSan reserves: "Could not initialize inheritable arena",
 * Criterion issue #274), so the multi-threaded client test is a plain
 * program (exit 0 = pass). These macros give it, and server_fixture.c
 * compiled with -DFXT_PLAIN, cr_assert's shape: on failure they print
 * file:line and the message and end the process through fxt_plain_fail,
 * which the program defines (it must stop any server it started). */
#ifndef FXT_PLAIN_H
#define FXT_PLAIN_H

#include <stdio.h>

/* Prints "file:line: failed: what: message" and exits non-zero. */
void fxt_plain_fail(const char* file, int line, const char* what,
                    const char* fmt, ...)
        __attribute__((noreturn, format(printf, 4, 5)));

#define cr_assert(cond, ...)                                                \
    ((cond) ? (void)0                                                       \
            : fxt_plain_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__))
#define cr_assert_fail(...)                                                 \
    fxt_plain_fail(__FILE__, __LINE__, "assertion", __VA_ARGS__)

/* A fresh path in a private temporary directory (as in common.h). */
const char* fxt_tmp_path(const char* basename);

#endif
