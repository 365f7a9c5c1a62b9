/* fileio.h -- internal: the file-I/O table every store write goes through.
 *
 * All durable-store I/O (snapshots, log segments, manifests, the lock file)
 * calls through the table returned by fx_io(), never the libc functions
 * directly, so tests can install a table that fails the Nth write or fsync,
 * reports ENOSPC, or counts calls (SQLite's VFS idea, cut down to what the
 * store needs). Functions follow POSIX conventions: -1 with errno set on
 * failure. Not installed; not API. */
#ifndef FX_FILEIO_H
#define FX_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_fileio {
    int (*open)(const char* path, int flags, mode_t mode); /* open(2) */
    ssize_t (*pwrite)(int fd, const void* buf, size_t n, off_t off); /* pwrite(2) */
    ssize_t (*pread)(int fd, void* buf, size_t n, off_t off); /* pread(2) */
    int (*fsync)(int fd);                        /* fsync(2) */
    int (*fdatasync)(int fd);                    /* fdatasync(2) */
    int (*ftruncate)(int fd, off_t len);         /* ftruncate(2) */
    int (*close)(int fd);                        /* close(2) */
    int (*rename)(const char* from, const char* to); /* rename(2) */
    int (*unlink)(const char* path);             /* unlink(2) */
    int (*fsync_dir)(const char* dir);           /* open dir, fsync, close */
} fx_fileio;

/* The table in use (never NULL). */
const fx_fileio* fx_io(void);

/* The libc-backed default table. */
const fx_fileio* fx_fileio_default(void);

/* Installs `t` (borrowed: must outlive its use); NULL restores the
 * default. Returns the previous table. Thread-safe (atomic pointer). */
const fx_fileio* fx_fileio_set(const fx_fileio* t);

/* Writes all n bytes at `off` (looping over short writes and EINTR).
 * 0, or -1 with errno. */
int fx_pwrite_all(int fd, const void* buf, size_t n, off_t off);

/* Reads exactly n bytes at `off`; -1 with errno (EIO for a short file). */
int fx_pread_all(int fd, void* buf, size_t n, off_t off);

/* Reads a whole file into a malloc'd buffer (*out, *n; free with free()).
 * 0, or -1 with errno. */
int fx_read_file(const char* path, uint8_t** out, size_t* n);

/* Durably replaces `path` with the concatenation of `nparts` buffers:
 * writes `path`.tmp, fsyncs it, renames it over `path`, fsyncs the
 * directory. 0, or -1 with errno (the temporary is removed on failure). */
int fx_write_file_durable(const char* path, const void* const* parts,
                          const size_t* sizes, int nparts);

/* The directory part of `path` into buf ("." when none). */
void fx_dirname(const char* path, char* buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
