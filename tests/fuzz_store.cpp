/* fuzz_store.cpp -- fuzz target for the store's parsers: snapshot
 * container load and write-ahead-log replay (persist/snapshot.cpp,
 * persist/wal.cpp, persist/store.cpp apply_record).
 *
 * The first byte of an input selects the parser, the rest is a file:
 *   's'  a snapshot file: verified, then (only if the checksums hold)
 *        loaded by faiss; a loaded index must match its header.
 *   'w'  a log segment: scanned and replayed onto a fresh IDMap,Flat
 *        (d = 8) as recovery does; the scan's numbers must be consistent.
 * Anything else is ignored. Crashes, sanitizer reports and failed
 * consistency checks (abort) are findings.
 *
 * Two builds, as tests/fuzz_handler.c:
 *   - libFuzzer (clang):
 *       clang++ -g -O1 -fsanitize=fuzzer,address,undefined -DFX_LIBFUZZER \
 *         -I. -Iinclude -Ibuild/include/faissx tests/fuzz_store.cpp \
 *         build/libfaissx.a -lfaiss -lopenblas -lgomp -lm -lpthread \
 *         -o fuzz_store
 *       ./fuzz_store corpus_dir tests/corpus/store
 *   - otherwise (the meson build): a program replaying every file in the
 *     directories (or files) given as arguments; `meson test store-fuzz-corpus`
 *     runs it on tests/corpus/store. `fuzz_store --write-corpus DIR` writes
 *     the seed corpus from a real store. */
#include "core/bridge.h"
#include "persist/snapshot.h"
#include "persist/store.h"
#include "persist/wal.h"

#include <faissx/faissx.h>

#include <faiss/index_factory.h>
#include <faiss/impl/FaissException.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#define CHECK(c)                                                       \
    do {                                                               \
        if (!(c)) {                                                    \
            fprintf(stderr, "fuzz_store: check failed: %s (%s:%d)\n",  \
                    #c, __FILE__, __LINE__);                           \
            abort();                                                   \
        }                                                              \
    } while (0)

static void fuzz_snapshot(const uint8_t* p, size_t n) {
    fx::snap::Header h;
    const uint8_t* payload = nullptr;
    std::string why;
    bool ok = fx::snap::verify(p, n, &h, &payload, &why);
    CHECK(ok == why.empty());
    if (!ok) return;
    CHECK(payload == p + fx::snap::HEADER_SIZE);
    CHECK(h.payload_len == n - fx::snap::HEADER_SIZE);
    try {
        std::unique_ptr<faiss::Index> ix(fx::snap::decode(p, n, "fuzz", &h));
        CHECK(ix->d == h.d && ix->ntotal == h.ntotal);
    } catch (const fx::Error&) {
    } catch (const faiss::FaissException&) {
    }
}

static void fuzz_log(const uint8_t* p, size_t n) {
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(8, "IDMap,Flat"));
    fx::wal::Scan s;
    uint64_t seen = 0;
    fx::wal::scan(p, n, &s,
                  [&](uint16_t type, uint16_t flags, uint64_t seq,
                      const uint8_t* pl, size_t len, std::string* why) {
                      CHECK(seq == s.base_seq + seen + 1 || seen == 0);
                      CHECK(flags == 0 || flags == fx::wal::REC_FLAG_TAGGED);
                      CHECK(!flags || len >= fx::wal::TAG_SIZE);
                      seen++;
                      if (flags) {
                          pl += fx::wal::TAG_SIZE;
                          len -= fx::wal::TAG_SIZE;
                      }
                      try {
                          return fx::store::apply_record(ix.get(), type, pl,
                                                         len, why);
                      } catch (const fx::Error&) {
                      } catch (const faiss::FaissException&) {
                      }
                      return true;
                  });
    CHECK(s.good_end <= s.file_size && s.file_size == n);
    CHECK(s.nrecords <= seen);
    CHECK(!s.header_ok || s.last_seq == s.base_seq + s.nrecords);
    CHECK(s.bad || s.good_end == n);
    CHECK(s.valid_after == 0 || s.bad);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    if (data[0] == 's') fuzz_snapshot(data + 1, size - 1);
    if (data[0] == 'w') fuzz_log(data + 1, size - 1);
    return 0;
}

#ifndef FX_LIBFUZZER

static std::vector<uint8_t> read_all(const std::string& path) {
    std::vector<uint8_t> b;
    FILE* f = fopen(path.c_str(), "rb");
    if (!f) return b;
    uint8_t buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) b.insert(b.end(), buf, buf + k);
    fclose(f);
    return b;
}

static void write_seed(const std::string& dir, const std::string& name,
                       char kind, std::vector<uint8_t> body) {
    body.insert(body.begin(), (uint8_t)kind);
    FILE* f = fopen((dir + "/" + name).c_str(), "wb");
    if (!f || fwrite(body.data(), 1, body.size(), f) != body.size()) {
        fprintf(stderr, "fuzz_store: cannot write %s/%s\n", dir.c_str(), name.c_str());
        exit(1);
    }
    fclose(f);
}

/* Seeds from a real store: a snapshot and a log with every record type,
 * and damaged variants of both. */
static int write_corpus(const char* out) {
    char tmpl[] = "/tmp/fxfuzz-XXXXXX";
    if (!mkdtemp(tmpl)) return 1;
    std::string sdir = std::string(tmpl) + "/s";
    FaissxStore* s = nullptr;
    FaissIndex* ix = nullptr;
    if (faissx_store_open(&s, sdir.c_str(), nullptr) ||
        faissx_store_create_index(s, "f", 8, "IDMap,Flat", METRIC_L2, &ix))
        return 1;
    float x[8 * 4];
    for (int i = 0; i < 32; i++) x[i] = (float)(i % 7) * 0.5f;
    idx_t ids[4] = {1, 2, 3, 40};
    faiss_Index_add_with_ids(ix, 4, x, ids);
    faissx_store_checkpoint(s, "f"); // snapshot with data
    faiss_Index_add_with_ids(ix, 2, x, ids);
    FaissIDSelectorRange* r = nullptr;
    faiss_IDSelectorRange_new(&r, 2, 3);
    size_t nr;
    faiss_Index_remove_ids(ix, (FaissIDSelector*)r, &nr);
    faiss_IDSelector_free((FaissIDSelector*)r);
    FaissIDSelectorBatch* b = nullptr;
    faiss_IDSelectorBatch_new(&b, 2, ids);
    faiss_Index_remove_ids(ix, (FaissIDSelector*)b, &nr);
    faiss_IDSelector_free((FaissIDSelector*)b);
    faiss_Index_reset(ix);
    faissx_store_set_param(ix, "verbose", 0); // refused by faiss on IDMap? either way logged only if applied
    faiss_Index_add_with_ids(ix, 1, x, ids + 3);
    faiss_Index_free(ix);
    faissx_store_close(s);
    std::string idir = sdir + "/f";
    std::vector<uint8_t> snap = read_all(idir + "/snap-000000000002.fxs");
    std::vector<uint8_t> log = read_all(idir + "/wal-000000000002.fxl");
    std::vector<uint8_t> log1 = read_all(idir + "/wal-000000000001.fxl");
    if (snap.empty() || log.empty() || log1.empty()) {
        fprintf(stderr, "fuzz_store: store files not found\n");
        return 1;
    }
    mkdir(out, 0755);
    write_seed(out, "snap-valid", 's', snap);
    auto v = snap;
    v[70] ^= 1;
    write_seed(out, "snap-flipped-payload", 's', v);
    v = snap;
    v[20] ^= 1;
    write_seed(out, "snap-flipped-header", 's', v);
    write_seed(out, "snap-truncated", 's',
               std::vector<uint8_t>(snap.begin(), snap.begin() + snap.size() / 2));
    write_seed(out, "snap-empty", 's', {});
    write_seed(out, "log-valid", 'w', log);
    write_seed(out, "log-first-segment", 'w', log1);
    write_seed(out, "log-torn", 'w',
               std::vector<uint8_t>(log.begin(), log.end() - 5));
    v = log;
    v[fx::wal::SEG_HEADER + 30] ^= 8;
    write_seed(out, "log-bad-first-record", 'w', v);
    write_seed(out, "log-header-only", 'w',
               std::vector<uint8_t>(log.begin(), log.begin() + fx::wal::SEG_HEADER));
    std::string cmd = std::string("rm -rf '") + tmpl + "'";
    if (system(cmd.c_str()) != 0) { /* best effort */ }
    printf("fuzz_store: wrote seeds to %s\n", out);
    return 0;
}

static int replay_file(const char* path) {
    std::vector<uint8_t> b = read_all(path);
    LLVMFuzzerTestOneInput(b.data(), b.size());
    return 0;
}

int main(int argc, char** argv) {
    faissx_remote_disable();
    if (argc == 3 && !strcmp(argv[1], "--write-corpus")) return write_corpus(argv[2]);
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE... | --write-corpus DIR\n", argv[0]);
        return 2;
    }
    int files = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            fprintf(stderr, "fuzz_store: %s: no such file or directory\n", argv[a]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            replay_file(argv[a]);
            files++;
            continue;
        }
        DIR* d = opendir(argv[a]);
        if (!d) return 1;
        std::vector<std::string> names;
        while (struct dirent* e = readdir(d))
            if (e->d_name[0] != '.') names.push_back(e->d_name);
        closedir(d);
        std::sort(names.begin(), names.end());
        for (auto& n : names) {
            std::string p = std::string(argv[a]) + "/" + n;
            if (stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
                replay_file(p.c_str());
                files++;
            }
        }
    }
    printf("fuzz_store: replayed %d inputs\n", files);
    if (files == 0) {
        fprintf(stderr, "fuzz_store: no inputs found\n");
        return 1;
    }
    return 0;
}

#endif
