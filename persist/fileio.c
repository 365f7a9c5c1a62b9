/* fileio.c -- the default (libc) file-I/O table and helpers over it. */
#include "persist/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int d_open(const char* path, int flags, mode_t mode) {
    return open(path, flags | O_CLOEXEC, mode);
}
static ssize_t d_pwrite(int fd, const void* buf, size_t n, off_t off) {
    return pwrite(fd, buf, n, off);
}
static ssize_t d_pread(int fd, void* buf, size_t n, off_t off) {
    return pread(fd, buf, n, off);
}
static int d_fsync(int fd) { return fsync(fd); }
static int d_fdatasync(int fd) { return fdatasync(fd); }
static int d_ftruncate(int fd, off_t len) { return ftruncate(fd, len); }
static int d_close(int fd) { return close(fd); }
static int d_rename(const char* a, const char* b) { return rename(a, b); }
static int d_unlink(const char* p) { return unlink(p); }

static int d_fsync_dir(const char* dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static const fx_fileio g_default = {
    d_open, d_pwrite, d_pread, d_fsync, d_fdatasync,
    d_ftruncate, d_close, d_rename, d_unlink, d_fsync_dir,
};

static _Atomic(const fx_fileio*) g_table = &g_default;

const fx_fileio* fx_io(void) {
    return atomic_load_explicit(&g_table, memory_order_acquire);
}

const fx_fileio* fx_fileio_default(void) { return &g_default; }

const fx_fileio* fx_fileio_set(const fx_fileio* t) {
    return atomic_exchange(&g_table, t ? t : &g_default);
}

int fx_pwrite_all(int fd, const void* buf, size_t n, off_t off) {
    const char* p = buf;
    while (n > 0) {
        ssize_t w = fx_io()->pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int fx_pread_all(int fd, void* buf, size_t n, off_t off) {
    char* p = buf;
    while (n > 0) {
        ssize_t r = fx_io()->pread(fd, p, n, off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

int fx_read_file(const char* path, uint8_t** out, size_t* n) {
    const fx_fileio* io = fx_io();
    int fd = io->open(path, O_RDONLY, 0);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        io->close(fd);
        errno = e;
        return -1;
    }
    size_t sz = (size_t)st.st_size;
    uint8_t* buf = malloc(sz ? sz : 1);
    if (!buf) {
        io->close(fd);
        errno = ENOMEM;
        return -1;
    }
    if (sz && fx_pread_all(fd, buf, sz, 0) != 0) {
        int e = errno;
        free(buf);
        io->close(fd);
        errno = e;
        return -1;
    }
    io->close(fd);
    *out = buf;
    *n = sz;
    return 0;
}

void fx_dirname(const char* path, char* buf, size_t cap) {
    const char* slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, cap, ".");
    } else if (slash == path) {
        snprintf(buf, cap, "/");
    } else {
        snprintf(buf, cap, "%.*s", (int)(slash - path), path);
    }
}

int fx_write_file_durable(const char* path, const void* const* parts,
                          const size_t* sizes, int nparts) {
    const fx_fileio* io = fx_io();
    char tmp[4200], dir[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fx_dirname(path, dir, sizeof dir);
    int fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    off_t off = 0;
    for (int i = 0; i < nparts; i++) {
        if (fx_pwrite_all(fd, parts[i], sizes[i], off) != 0) goto fail;
        off += (off_t)sizes[i];
    }
    if (io->fsync(fd) != 0) goto fail;
    if (io->close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (io->rename(tmp, path) != 0) goto fail;
    /* The rename is durable only once the directory is. If this fails the
     * new file may or may not survive a crash; the caller reports failure
     * and either outcome is a complete file. */
    if (io->fsync_dir(dir) != 0) return -1;
    return 0;
fail: {
    int e = errno;
    if (fd >= 0) io->close(fd);
    io->unlink(tmp);
    errno = e;
    return -1;
}
}
