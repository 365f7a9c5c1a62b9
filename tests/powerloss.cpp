/* powerloss.cpp -- the power-loss file-I/O table (powerloss.h).
 *
 * Every file and directory under the root is an object with a number of
 * its own (not its inode: inode numbers are reused after unlink); `cur`
 * maps the paths that exist now to objects, and renames move the mapping.
 * A file object keeps its durable bytes (as of its last fsync) and the
 * writes since; a directory object keeps its durable entries (name ->
 * object, as of its last directory fsync). After the loss the tree is
 * rebuilt from the root's durable entries down. */
#include "powerloss.h"

#include "persist/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace {

struct Write {
    bool truncate; // ftruncate(len) instead of a write
    off_t off;     // write offset, or truncation length
    std::string data;
};

struct Obj {
    bool dir = false;
    bool has_durable = false;               // files: fsynced (or scanned)
    std::string durable;                    // files: durable content
    std::vector<Write> pending;             // files: since the last fsync
    std::map<std::string, int> entries;     // dirs: durable entries
};

std::mutex mu;
std::string root;
std::map<int, Obj> objs;
std::map<std::string, int> cur; // existing path -> object
std::map<int, int> fds;         // open fd -> object
int next_id = 1;
int root_id = 0;
long calls = 0, crash_at = 0;
bool crashed = false;

const fx_fileio* real() { return fx_fileio_default(); }

bool under_root(const std::string& p) {
    return p == root || p.compare(0, root.size() + 1, root + "/") == 0;
}

std::string parent_of(const std::string& p) {
    size_t s = p.rfind('/');
    return s == std::string::npos ? "." : p.substr(0, s);
}

std::string read_all(int fd) {
    std::string out;
    struct stat st;
    if (fstat(fd, &st) != 0) return out;
    out.resize((size_t)st.st_size);
    size_t got = 0;
    while (got < out.size()) {
        ssize_t r = pread(fd, &out[got], out.size() - got, (off_t)got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    out.resize(got);
    return out;
}

std::string read_path(const std::string& p) {
    int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    std::string s = read_all(fd);
    close(fd);
    return s;
}

int new_obj(bool dir) {
    int id = next_id++;
    objs[id].dir = dir;
    return id;
}

/* The object at path, registering it (as never synced) if unknown; its
 * parents too (directories made with mkdir are not seen by the table). */
int obj_at(const std::string& p, bool dir) {
    auto it = cur.find(p);
    if (it != cur.end()) return it->second;
    if (p != root && under_root(parent_of(p))) obj_at(parent_of(p), true);
    int id = new_obj(dir);
    cur[p] = id;
    return id;
}

/* Everything under p is durable as it is now. */
void scan(const std::string& p, int id) {
    Obj& o = objs[id];
    DIR* d = opendir(p.c_str());
    if (!d) return;
    std::vector<std::pair<std::string, bool>> names;
    while (struct dirent* e = readdir(d)) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        std::string c = p + "/" + e->d_name;
        struct stat st;
        if (lstat(c.c_str(), &st) != 0) continue;
        names.push_back({e->d_name, S_ISDIR(st.st_mode)});
    }
    closedir(d);
    for (auto& n : names) {
        std::string c = p + "/" + n.first;
        int cid = new_obj(n.second);
        cur[c] = cid;
        o.entries[n.first] = cid;
        if (n.second) {
            scan(c, cid);
        } else {
            objs[cid].has_durable = true;
            objs[cid].durable = read_path(c);
        }
    }
}

/* Counts a mutating call; true when it must fail (power lost). */
bool lose_power() {
    if (crashed) return true;
    calls++;
    if (crash_at > 0 && calls >= crash_at) crashed = true;
    return crashed;
}

int fail_eio() {
    errno = EIO;
    return -1;
}

int t_open(const char* path, int flags, mode_t mode) {
    std::lock_guard<std::mutex> g(mu);
    std::string p = path;
    bool mutating = (flags & (O_CREAT | O_TRUNC)) != 0;
    if (mutating && under_root(p) && lose_power()) return fail_eio();
    int fd = real()->open(path, flags, mode);
    if (fd < 0 || !under_root(p)) return fd;
    int id = obj_at(p, false);
    fds[fd] = id;
    if (flags & O_TRUNC) objs[id].pending.push_back({true, 0, ""});
    return fd;
}

ssize_t t_pwrite(int fd, const void* buf, size_t n, off_t off) {
    std::lock_guard<std::mutex> g(mu);
    auto it = fds.find(fd);
    if (it == fds.end()) return real()->pwrite(fd, buf, n, off);
    if (lose_power()) return fail_eio();
    ssize_t w = real()->pwrite(fd, buf, n, off);
    if (w > 0)
        objs[it->second].pending.push_back(
                {false, off, std::string((const char*)buf, (size_t)w)});
    return w;
}

ssize_t t_pread(int fd, void* buf, size_t n, off_t off) {
    return real()->pread(fd, buf, n, off);
}

int t_sync(int fd) {
    std::lock_guard<std::mutex> g(mu);
    auto it = fds.find(fd);
    if (it == fds.end()) return real()->fsync(fd);
    if (lose_power()) return fail_eio();
    Obj& o = objs[it->second];
    // fd may be write-only: read the file through a new descriptor.
    o.durable = read_path("/proc/self/fd/" + std::to_string(fd));
    o.has_durable = true;
    o.pending.clear();
    return 0;
}

int t_ftruncate(int fd, off_t len) {
    std::lock_guard<std::mutex> g(mu);
    auto it = fds.find(fd);
    if (it == fds.end()) return real()->ftruncate(fd, len);
    if (lose_power()) return fail_eio();
    int rc = real()->ftruncate(fd, len);
    if (rc == 0) objs[it->second].pending.push_back({true, len, ""});
    return rc;
}

int t_close(int fd) {
    std::lock_guard<std::mutex> g(mu);
    fds.erase(fd);
    return real()->close(fd);
}

int t_rename(const char* from, const char* to) {
    std::lock_guard<std::mutex> g(mu);
    std::string a = from, b = to;
    if (!under_root(a) && !under_root(b)) return real()->rename(from, to);
    if (lose_power()) return fail_eio();
    struct stat st;
    bool dir = stat(from, &st) == 0 && S_ISDIR(st.st_mode);
    int id = obj_at(a, dir);
    int rc = real()->rename(from, to);
    if (rc != 0) return rc;
    // Move a and everything below it to b (b's old object leaves `cur`
    // but stays where durable entries still name it).
    std::map<std::string, int> moved;
    for (auto it = cur.begin(); it != cur.end();) {
        const std::string& p = it->first;
        bool below_b = p == b || p.compare(0, b.size() + 1, b + "/") == 0;
        bool below_a = p == a || p.compare(0, a.size() + 1, a + "/") == 0;
        if (below_a)
            moved[b + p.substr(a.size())] = it->second;
        if (below_a || below_b)
            it = cur.erase(it);
        else
            ++it;
    }
    cur.insert(moved.begin(), moved.end());
    cur[b] = id;
    if (b != root) obj_at(parent_of(b), true);
    return 0;
}

int t_unlink(const char* path) {
    std::lock_guard<std::mutex> g(mu);
    std::string p = path;
    if (!under_root(p)) return real()->unlink(path);
    if (lose_power()) return fail_eio();
    int rc = real()->unlink(path);
    if (rc == 0) cur.erase(p);
    return rc;
}

int t_fsync_dir(const char* dir) {
    std::lock_guard<std::mutex> g(mu);
    std::string p = dir;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    if (!under_root(p)) return real()->fsync_dir(dir);
    if (lose_power()) return fail_eio();
    int id = obj_at(p, true);
    // The directory's entries as they are now: those the table knows, and
    // those made outside it (mkdir) as never-synced objects.
    DIR* d = opendir(p.c_str());
    if (!d) return -1;
    std::map<std::string, int> entries;
    while (struct dirent* e = readdir(d)) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        std::string c = p + "/" + e->d_name;
        struct stat st;
        if (lstat(c.c_str(), &st) != 0) continue;
        entries[e->d_name] = obj_at(c, S_ISDIR(st.st_mode));
    }
    closedir(d);
    objs[id].entries = entries;
    return 0;
}

const fx_fileio table = {t_open,  t_pwrite, t_pread,  t_sync,   t_sync,
                         t_ftruncate, t_close, t_rename, t_unlink, t_fsync_dir};

void remove_tree(const std::string& p) {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        if (DIR* d = opendir(p.c_str())) {
            std::vector<std::string> names;
            while (struct dirent* e = readdir(d))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                    names.push_back(e->d_name);
            closedir(d);
            for (auto& n : names) remove_tree(p + "/" + n);
        }
        rmdir(p.c_str());
    } else {
        unlink(p.c_str());
    }
}

/* Applies the writes as a disk would hold them: with keep, a random prefix
 * of them, the last possibly torn. */
std::string surviving(const Obj& o, bool keep, std::mt19937& rng, int* lost) {
    std::string s = o.has_durable ? o.durable : std::string();
    size_t k = 0, n = o.pending.size();
    if (keep && n) k = std::uniform_int_distribution<size_t>(0, n)(rng);
    if (k < n) ++*lost;
    for (size_t i = 0; i < n && i <= k; i++) {
        const Write& w = o.pending[i];
        size_t take = w.data.size();
        if (i == k) { // the first write not kept whole: maybe torn
            if (!keep || w.truncate || w.data.empty()) break;
            take = std::uniform_int_distribution<size_t>(0, w.data.size() - 1)(rng);
        }
        if (w.truncate) {
            s.resize((size_t)w.off);
        } else {
            if (s.size() < (size_t)w.off + take) s.resize((size_t)w.off + take);
            memcpy(&s[(size_t)w.off], w.data.data(), take);
        }
    }
    return s;
}

void rebuild(const std::string& p, int id, bool keep, std::mt19937& rng,
             int* lost) {
    const Obj& o = objs[id];
    for (auto& kv : o.entries) {
        std::string c = p + "/" + kv.first;
        const Obj& child = objs[kv.second];
        if (child.dir) {
            mkdir(c.c_str(), 0755);
            rebuild(c, kv.second, keep, rng, lost);
        } else {
            std::string s = surviving(child, keep, rng, lost);
            int fd = open(c.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd >= 0) {
                if (!s.empty() && write(fd, s.data(), s.size()) != (ssize_t)s.size())
                    abort();
                close(fd);
            }
        }
    }
}

} // namespace

extern "C" {

void pl_install(const char* dir, long at) {
    std::lock_guard<std::mutex> g(mu);
    root = dir;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    objs.clear();
    cur.clear();
    fds.clear();
    next_id = 1;
    calls = 0;
    crash_at = at;
    crashed = false;
    root_id = new_obj(true);
    cur[root] = root_id;
    scan(root, root_id);
    fx_fileio_set(&table);
}

long pl_calls(void) {
    std::lock_guard<std::mutex> g(mu);
    return calls;
}

int pl_crashed(void) {
    std::lock_guard<std::mutex> g(mu);
    return crashed;
}

void pl_crash_now(void) {
    std::lock_guard<std::mutex> g(mu);
    crashed = true;
}

int pl_restore(int keep_unsynced, unsigned seed) {
    fx_fileio_set(nullptr);
    std::lock_guard<std::mutex> g(mu);
    crashed = true;
    // Everything the tree holds now goes; the durable state comes back.
    if (DIR* d = opendir(root.c_str())) {
        std::vector<std::string> names;
        while (struct dirent* e = readdir(d))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                names.push_back(e->d_name);
        closedir(d);
        for (auto& n : names) remove_tree(root + "/" + n);
    }
    std::mt19937 rng(seed);
    int lost = 0;
    rebuild(root, root_id, keep_unsynced != 0, rng, &lost);
    return lost;
}

} // extern "C"
