/* powerloss.h -- a file-I/O table (persist/fileio.h) that simulates a power
 * loss under a directory tree, for test_powerloss.c.
 *
 * The table remembers, per file, what its last fsync made durable and the
 * writes (and truncations) since; per directory, the entries its last
 * directory fsync made durable. Nothing is really fsynced (the model is the
 * point, and it is fast). The Nth mutating call (an open that creates or
 * truncates, pwrite, ftruncate, fsync, fdatasync, rename, unlink, directory
 * fsync) "loses power": it fails with EIO without doing anything, and so
 * does every mutating call after it, so the process can only close what it
 * holds. pl_restore() then rewrites the tree as a disk would hold it after
 * the loss: each directory with the entries of its last fsync (or of the
 * scan at pl_install) and each file with its durable content plus a random
 * prefix of its unsynced writes, the last of them possibly torn. A disk that
 * writes back a file's pages in any order is not modelled: pages reach the
 * disk in the order they were written (see docs/format.md, Durability).
 *
 * Not thread-safe to install/restore while the store runs; the table
 * itself is (a mutex), so the store's background sync thread may use it. */
#ifndef FXT_POWERLOSS_H
#define FXT_POWERLOSS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Scans `root` (everything in it counts as durable) and installs the
 * table. crash_at: the mutating call number that loses power (1 = the
 * first); 0 = never. */
void pl_install(const char* root, long crash_at);

/* Mutating calls made since pl_install. */
long pl_calls(void);

/* 1 once the power was lost. */
int pl_crashed(void);

/* Loses power now (if it was not lost yet). */
void pl_crash_now(void);

/* Restores the default table and rewrites the tree under root as the
 * loss left it. keep_unsynced: 0 drops every unsynced write; 1 keeps a
 * random prefix of each file's unsynced writes (seeded by `seed`), the
 * last one kept possibly cut short. Returns how many files lost unsynced
 * writes. */
int pl_restore(int keep_unsynced, unsigned seed);

#ifdef __cplusplus
}
#endif

#endif
