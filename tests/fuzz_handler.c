/* fuzz_handler.c -- fuzz target for the wire codec and the server's request
 * handler (net/proto.c, net/handler.cpp).
 *
 * Each input is one request message. It goes to fx_hdr_decode, then to
 * fx_state_handle on a server state with API keys and three pre-built
 * indexes; the reply must be a well-formed reply message (header valid,
 * FX_FLAG_REPLY, ids echoed, body exactly an error string or the op's
 * result fields). Any violation aborts.
 *
 * Handles: index handles start at a time-based offset, so no fixed input
 * could name one. Instead, any 8-byte-aligned body word whose top 56 bits
 * are FUZZ_HANDLE_TAG is replaced, before handling, by the handle of
 * pre-built index (low byte % 4): 0 = Flat d=8 (named "fz-flat"),
 * 1 = IDMap,Flat d=8 ("fz-idmap"), 2 = IVF4,Flat d=8 trained ("fz-ivf"),
 * 3 = Flat d=8 ("fz-flat2", a MERGE_FROM source for 0).
 * tools/gen_corpus.py writes its seeds with these tags. Requests that may
 * change the state rebuild it afterwards, so every input sees the same
 * state (crashes reproduce from one file).
 *
 * UPLOAD (and the binary UPLOAD sub-op) are fuzzed like every op: the
 * target links faissx-server's allocation guard (net/alloc_guard.cpp), so
 * a forged size field is refused and what a failed parse left behind is
 * freed, as in the server. state_build checks that the guard is in force
 * (a forged upload must be refused for its claimed allocation).
 *
 * Two builds:
 *   - libFuzzer (clang): see docs/protocol.md, "Fuzzing" (link
 *     net/alloc_guard.cpp too);
 *   - otherwise (the meson build): a program that replays every file in
 *     the directories (or files) given as arguments; `meson test
 *     fuzz-corpus` runs it on tests/corpus/handler. */
#include "net/proto.h"
#include "net/server.h"

#include <faissx/faissx.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_HANDLE_TAG 0xFA155E00000000ull /* word >> 8 */
#define FUZZ_KEY "fuzz-key"
#define FUZZ_RO_KEY "fuzz-ro"
#define FUZZ_D 8
#define NFIX 4

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static fx_state* g_state;
static uint64_t g_handles[NFIX];
static uint64_t g_rid;
static int g_verbose; /* replay: print each input's op and reply status */

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "fuzz_handler: check failed: %s: ", #cond);     \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* Sends one request built in w (header space + key + fields) and returns
 * the reply body reader; the reply stays in *reply. */
static int setup_call(fx_wbuf* w, int op, fx_wbuf* reply, fx_rbuf* r) {
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    h.request_id = ++g_rid;
    h.client_id = 1;
    fx_w_finish(w, &h);
    fx_w_init(reply);
    fx_state_handle(g_state, w->data, w->len, 1, reply, NULL);
    fx_w_free(w);
    fx_hdr rh;
    char err[256];
    CHECK(fx_hdr_decode(reply->data, reply->len, &rh, err, sizeof err) == 0,
          "%s", err);
    fx_r_init(r, reply->data + FX_HDR_SIZE, reply->len - FX_HDR_SIZE);
    if (rh.status != 0) {
        char m[512] = "";
        fx_r_str(r, m, sizeof m - 1);
        fprintf(stderr, "fuzz_handler: setup %s failed: %s\n", fx_op_name(op),
                m);
        abort();
    }
    return 0;
}

static void begin(fx_wbuf* w) {
    fx_w_init(w);
    fx_w_header_space(w);
    fx_w_str(w, FUZZ_KEY);
}

static uint64_t setup_create(const char* name, const char* desc) {
    fx_wbuf w, reply;
    fx_rbuf r;
    begin(&w);
    fx_w_str(&w, name);
    fx_w_i64(&w, FUZZ_D);
    fx_w_i64(&w, 1); /* METRIC_L2 */
    fx_w_str(&w, desc);
    setup_call(&w, FX_OP_CREATE, &reply, &r);
    uint64_t h = 0;
    fx_r_u64(&r, &h);
    fx_w_free(&reply);
    return h;
}

static void setup_vecs(int op, uint64_t h, int64_t n, int with_ids) {
    float x[256 * FUZZ_D];
    int64_t ids[256];
    uint64_t seed = 12345;
    for (int64_t i = 0; i < n * FUZZ_D; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(seed >> 40) / 16777216.0f;
    }
    for (int64_t i = 0; i < n; i++) ids[i] = 1000 + 3 * i;
    fx_wbuf w, reply;
    fx_rbuf r;
    begin(&w);
    fx_w_u64(&w, h);
    fx_w_i64(&w, n);
    fx_w_array(&w, x, (uint64_t)(n * FUZZ_D), sizeof(float));
    if (with_ids) fx_w_array(&w, ids, (uint64_t)n, sizeof(int64_t));
    setup_call(&w, op, &reply, &r);
    fx_w_free(&reply);
}

static void state_build(void) {
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.auth_keys = FUZZ_KEY ":fuzz," FUZZ_RO_KEY ":fuzz:ro,other:mallory";
    /* Small limits keep a fuzz input from asking for huge work. */
    c.max_k = 64;
    c.max_batch = 1024;
    c.max_message_bytes = 1 << 20;
    c.max_upload_bytes = 1 << 20;
    char err[256];
    CHECK(fx_state_new(&c, &g_state, err, sizeof err) == 0, "%s", err);
    g_handles[0] = setup_create("fz-flat", "Flat");
    g_handles[1] = setup_create("fz-idmap", "IDMap,Flat");
    g_handles[2] = setup_create("fz-ivf", "IVF4,Flat");
    g_handles[3] = setup_create("fz-flat2", "Flat");
    setup_vecs(FX_OP_ADD, g_handles[0], 64, 0);
    setup_vecs(FX_OP_ADD_WITH_IDS, g_handles[1], 64, 1);
    setup_vecs(FX_OP_TRAIN, g_handles[2], 256, 0);
    setup_vecs(FX_OP_ADD, g_handles[2], 64, 0);
    setup_vecs(FX_OP_ADD, g_handles[3], 16, 0);
}

/* The allocation guard is linked and in force: an upload whose codes
 * vector claims 2^36 words is refused for that claim (without the guard,
 * faiss would try the allocation itself). */
static void check_guard(void) {
    uint8_t b[4 + 33 + 8 + 3 * FUZZ_D * 4];
    size_t o = 0;
    int32_t d = FUZZ_D, metric = 1;
    int64_t ntotal = 3, dummy = 1 << 20;
    uint64_t words = (uint64_t)1 << 36; /* faiss itself refuses >= 2^40 */
    uint8_t trained = 1;
    memcpy(b + o, "IxF2", 4), o += 4;
    memcpy(b + o, &d, 4), o += 4;
    memcpy(b + o, &ntotal, 8), o += 8;
    memcpy(b + o, &dummy, 8), o += 8;
    memcpy(b + o, &dummy, 8), o += 8;
    memcpy(b + o, &trained, 1), o += 1;
    memcpy(b + o, &metric, 4), o += 4;
    memcpy(b + o, &words, 8), o += 8;
    memset(b + o, 0, sizeof b - o);
    fx_wbuf w, reply;
    begin(&w);
    fx_w_str(&w, "");
    fx_w_array(&w, b, sizeof b, 1);
    fx_hdr h = {0};
    h.op = FX_OP_UPLOAD;
    h.request_id = ++g_rid;
    h.client_id = 1;
    fx_w_finish(&w, &h);
    fx_w_init(&reply);
    fx_state_handle(g_state, w.data, w.len, 1, &reply, NULL);
    fx_w_free(&w);
    fx_hdr rh;
    char err[256], m[512] = "";
    CHECK(fx_hdr_decode(reply.data, reply.len, &rh, err, sizeof err) == 0,
          "%s", err);
    fx_rbuf r;
    fx_r_init(&r, reply.data + FX_HDR_SIZE, reply.len - FX_HDR_SIZE);
    if (rh.status != 0) fx_r_str(&r, m, sizeof m - 1);
    CHECK(rh.status == FAISSX_E_IO && strstr(m, "claim an allocation"),
          "the allocation guard is not in force: a forged upload gave "
          "status %d (%s)", rh.status, m);
    fx_w_free(&reply);
}

/* Ops that leave the state as it was (whatever their outcome). */
static int read_only_op(int op) {
    switch (op) {
    case FX_OP_PING: case FX_OP_OPEN: case FX_OP_LIST: case FX_OP_INFO:
    case FX_OP_SEARCH: case FX_OP_RANGE_SEARCH: case FX_OP_ASSIGN:
    case FX_OP_RECONSTRUCT_N: case FX_OP_RECONSTRUCT_KEYS:
    case FX_OP_RESIDUAL: case FX_OP_SA_CODE_SIZE: case FX_OP_SA_ENCODE:
    case FX_OP_SA_DECODE: case FX_OP_GET_PARAM: case FX_OP_SERIALIZE:
    case FX_OP_PROGRESS: case FX_OP_LIMITS:
        return 1;
    default: return 0;
    }
}

/* ---- reply checks ---- */

static void need(fx_rbuf* r, int ok, const char* what) {
    CHECK(ok == 0, "reply field %s: %s", what, r->err ? r->err : "?");
}

static void skip_array(fx_rbuf* r, size_t elem, uint64_t* n) {
    const void* p;
    need(r, fx_r_array(r, elem, UINT64_MAX, &p, n), "array");
    CHECK(((uintptr_t)p & 7) == 0, "reply array misaligned");
}

static void check_info(fx_rbuf* r) {
    uint64_t h;
    int64_t v;
    char cls[1024];
    need(r, fx_r_u64(r, &h), "handle");
    for (int i = 0; i < 5; i++) need(r, fx_r_i64(r, &v), "info");
    need(r, fx_r_str(r, cls, sizeof cls - 1), "class");
    need(r, fx_r_i64(r, &v), "nlist");
    CHECK(v >= 0, "negative nlist");
    need(r, fx_r_i64(r, &v), "nprobe");
    CHECK(v >= 0, "negative nprobe");
    need(r, fx_r_i64(r, &v), "code size");
    CHECK(v >= -1, "code size %lld", (long long)v);
}

static void check_state(fx_rbuf* r) {
    int64_t v;
    need(r, fx_r_i64(r, &v), "ntotal");
    CHECK(v >= 0, "negative ntotal");
    need(r, fx_r_i64(r, &v), "is_trained");
    CHECK(v == 0 || v == 1, "is_trained %lld", (long long)v);
}

/* The sub-op of an op whose body is key, u64 handle, i64 sub-op
 * (COMPOSITE), or 0. */
static int64_t request_sub(const uint8_t* msg, size_t size) {
    fx_rbuf r;
    char key[1100];
    uint64_t h;
    int64_t sub = 0;
    if (size < FX_HDR_SIZE) return 0;
    fx_r_init(&r, msg + FX_HDR_SIZE, size - FX_HDR_SIZE);
    if (fx_r_str(&r, key, 1024) || fx_r_u64(&r, &h) || fx_r_i64(&r, &sub))
        return 0;
    return sub;
}

/* The body of a successful reply has exactly the op's result fields (and,
 * asked with FX_FLAG_STATE, the extra state of SEARCH, MERGE_FROM and IVF
 * COPY_SUBSET_TO). */
static void check_result(int op, int64_t sub, int with_state, fx_rbuf* r) {
    uint64_t u, n, n2;
    double f;
    char s[1024];
    switch (op) {
    case FX_OP_PING:
        need(r, fx_r_u64(r, &u), "version");
        need(r, fx_r_str(r, s, sizeof s - 1), "tenant");
        break;
    case FX_OP_CREATE: case FX_OP_OPEN: case FX_OP_INFO: case FX_OP_UPLOAD:
    case FX_OP_CLONE: case FX_OP_UPLOAD_COMMIT:
        check_info(r);
        break;
    case FX_OP_LIST:
        need(r, fx_r_u64(r, &n), "count");
        for (uint64_t i = 0; i < n; i++) {
            int64_t v;
            need(r, fx_r_str(r, s, sizeof s - 1), "name");
            need(r, fx_r_i64(r, &v), "d");
            need(r, fx_r_i64(r, &v), "ntotal");
        }
        break;
    case FX_OP_DROP: case FX_OP_RELEASE: break;
    case FX_OP_TRAIN: case FX_OP_ADD: case FX_OP_ADD_WITH_IDS:
    case FX_OP_RESET: case FX_OP_SET_PARAM: case FX_OP_MERGE_FROM:
        check_state(r);
        break;
    case FX_OP_REMOVE_IDS:
        need(r, fx_r_u64(r, &u), "n_removed");
        check_state(r);
        break;
    case FX_OP_SEARCH:
        skip_array(r, 4, &n);
        skip_array(r, 8, &n2);
        CHECK(n == n2, "D and I differ in length");
        break;
    case FX_OP_RANGE_SEARCH: {
        const void* p;
        need(r, fx_r_array(r, 8, UINT64_MAX, &p, &n), "lims");
        CHECK(n >= 1, "no lims");
        uint64_t last;
        memcpy(&last, (const uint8_t*)p + 8 * (n - 1), 8);
        skip_array(r, 8, &n);
        CHECK(n == last, "lims end at %llu, %llu labels",
              (unsigned long long)last, (unsigned long long)n);
        skip_array(r, 4, &n2);
        CHECK(n == n2, "labels and distances differ in length");
        break;
    }
    case FX_OP_ASSIGN: skip_array(r, 8, &n); break;
    case FX_OP_RECONSTRUCT_N: case FX_OP_RECONSTRUCT_KEYS:
    case FX_OP_RESIDUAL: case FX_OP_SA_DECODE:
        skip_array(r, 4, &n);
        break;
    case FX_OP_SA_CODE_SIZE: need(r, fx_r_u64(r, &u), "code size"); break;
    case FX_OP_SA_ENCODE: case FX_OP_SERIALIZE: skip_array(r, 1, &n); break;
    case FX_OP_GET_PARAM: need(r, fx_r_f64(r, &f), "value"); break;
    case FX_OP_PROGRESS: {
        int64_t v;
        need(r, fx_r_i64(r, &v), "running");
        need(r, fx_r_i64(r, &v), "op");
        need(r, fx_r_i64(r, &v), "done");
        need(r, fx_r_i64(r, &v), "total");
        need(r, fx_r_f64(r, &f), "elapsed");
        break;
    }
    case FX_OP_CANCEL: {
        int64_t v;
        need(r, fx_r_i64(r, &v), "running");
        break;
    }
    case FX_OP_UPLOAD_BEGIN:
        need(r, fx_r_u64(r, &u), "upload id");
        need(r, fx_r_u64(r, &u), "max chunk");
        break;
    case FX_OP_UPLOAD_CHUNK: need(r, fx_r_u64(r, &u), "received"); break;
    case FX_OP_UPLOAD_ABORT: case FX_OP_DOWNLOAD_END: break;
    case FX_OP_DOWNLOAD_BEGIN:
        need(r, fx_r_u64(r, &u), "total");
        need(r, fx_r_u64(r, &u), "download id");
        need(r, fx_r_u64(r, &u), "max chunk");
        skip_array(r, 1, &n);
        break;
    case FX_OP_DOWNLOAD_CHUNK: skip_array(r, 1, &n); break;
    case FX_OP_COMPOSITE:
        if (sub == FX_COMP_CHAIN) {
            need(r, fx_r_u64(r, &n), "count");
            for (uint64_t i = 0; i < n; i++) skip_array(r, 1, &n2);
        } else {
            CHECK(sub == FX_COMP_PREPEND || sub == FX_COMP_INNER,
                  "composite sub-op %lld succeeded", (long long)sub);
            check_info(r);
        }
        break;
    case FX_OP_LIMITS:
        need(r, fx_r_u64(r, &u), "max_message_bytes");
        CHECK(u >= FX_HDR_SIZE, "max_message_bytes %llu",
              (unsigned long long)u);
        need(r, fx_r_u64(r, &u), "max_k");
        CHECK(u >= 1, "max_k %llu", (unsigned long long)u);
        need(r, fx_r_u64(r, &u), "max_batch");
        CHECK(u >= 1, "max_batch %llu", (unsigned long long)u);
        break;
    default: return; /* an op added after this target: shape unchecked */
    }
    if (with_state && (op == FX_OP_SEARCH || op == FX_OP_MERGE_FROM ||
                       (op == FX_OP_IVF && sub == FX_IVF_COPY_SUBSET_TO)))
        check_state(r);
    CHECK(fx_r_end(r) == 0, "%s reply has trailing bytes", fx_op_name(op));
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!g_state) {
        faissx_remote_disable(); /* as faissx-server: local execution */
        state_build();
        check_guard();
    }
    /* The codec alone, on the raw bytes. */
    fx_hdr req = {0};
    char err[256];
    int drc = fx_hdr_decode(data, size, &req, err, sizeof err);
    CHECK(drc == 0 || err[0] != '\0', "decode failed without a reason");
    if (drc == 0) CHECK(req.body_len == size - FX_HDR_SIZE, "body_len");

    /* An 8-aligned private copy (as NNG delivers it), tags patched. */
    uint8_t* msg = malloc(size ? size : 1);
    CHECK(msg != NULL, "out of memory");
    if (size) memcpy(msg, data, size);
    for (size_t off = FX_HDR_SIZE; off + 8 <= size; off += 8) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v |= (uint64_t)msg[off + i] << (8 * i);
        if (v >> 8 == FUZZ_HANDLE_TAG) {
            v = g_handles[(v & 0xff) % NFIX];
            for (int i = 0; i < 8; i++) msg[off + i] = (uint8_t)(v >> (8 * i));
        }
    }

    fx_wbuf reply;
    fx_w_init(&reply);
    fx_req_meta meta;
    memset(&meta, 0xee, sizeof meta);
    fx_state_handle(g_state, msg, size, 7, &reply, &meta);

    CHECK(!reply.oom && reply.len >= FX_HDR_SIZE, "no reply");
    fx_hdr rh;
    int rrc = fx_hdr_decode(reply.data, reply.len, &rh, err, sizeof err);
    /* A reply repeats the request's op; only when that op is unknown (a
     * request this end cannot decode) may this end's decoder refuse it. */
    if (drc != 0)
        CHECK(rrc == 0 || rrc == FAISSX_E_UNSUPPORTED, "reply: %s", err);
    else
        CHECK(rrc == 0, "reply does not decode: %s", err);
    CHECK(rh.magic == FX_PROTO_MAGIC && rh.version == FX_PROTO_VERSION,
          "reply header");
    CHECK(rh.body_len == reply.len - FX_HDR_SIZE, "reply body_len");
    CHECK(rh.flags == FX_FLAG_REPLY, "reply flags 0x%x", rh.flags);
    CHECK(rh.status <= 0, "reply status %d", rh.status);
    CHECK(meta.status == rh.status, "meta.status %d vs %d", meta.status,
          rh.status);
    if (drc == 0) {
        CHECK(rh.op == req.op, "reply op %u for op %u", rh.op, req.op);
        CHECK(rh.request_id == req.request_id, "request id not echoed");
        CHECK(rh.client_id == req.client_id, "client id not echoed");
    } else {
        CHECK(rh.status < 0, "undecodable request succeeded");
    }
    fx_rbuf r;
    fx_r_init(&r, reply.data + FX_HDR_SIZE, reply.len - FX_HDR_SIZE);
    if (rh.status < 0) {
        char m[4096];
        CHECK(fx_r_str(&r, m, sizeof m - 1) == 0, "error without message");
        CHECK(m[0] != '\0', "empty error message");
        CHECK(fx_r_end(&r) == 0, "error reply has extra bytes");
        if (g_verbose) printf("  %-16s %4d  %s\n", fx_op_name(req.op), rh.status, m);
    } else {
        if (g_verbose) printf("  %-16s    0\n", fx_op_name(req.op));
        CHECK(drc == 0, "undecodable request succeeded");
        check_result(req.op, request_sub(msg, size),
                     (req.flags & FX_FLAG_STATE) != 0, &r);
    }
    fx_w_free(&reply);
    free(msg);

    /* Keep every input's starting state the same (and, in long runs, the
     * handler's per-client bookkeeping bounded). */
    static unsigned since_rebuild;
    if ((drc == 0 && !read_only_op(req.op)) || ++since_rebuild >= 4096) {
        since_rebuild = 0;
        fx_state_free(g_state);
        state_build();
    }
    return 0;
}

#ifndef FX_LIBFUZZER
/* Corpus replay: every regular file in the directories (or the files)
 * given as arguments, in name order for reproducible output. */
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char* path) {
    if (g_verbose) printf("%s\n", path);
    FILE* f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_handler: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t* buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t* nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "fuzz_handler: out of memory reading %s\n", path);
        return -1;
    }
    /* An exact-size copy, so ASan sees reads past the end. */
    uint8_t* exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int cmp_str(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    int files = 0, failed = 0;
    g_verbose = getenv("FUZZ_VERBOSE") != NULL;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            fprintf(stderr, "fuzz_handler: %s: no such file or directory\n",
                    argv[a]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed += replay_file(argv[a]) != 0;
            files++;
            continue;
        }
        DIR* d = opendir(argv[a]);
        if (!d) {
            fprintf(stderr, "fuzz_handler: cannot read %s\n", argv[a]);
            return 1;
        }
        char** names = NULL;
        size_t n = 0;
        struct dirent* e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char** nn = realloc(names, (n + 1) * sizeof *names);
            if (!nn) return 1;
            names = nn;
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], names[i]);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                failed += replay_file(path) != 0;
                files++;
            }
            free(names[i]);
        }
        free(names);
    }
    if (g_state) fx_state_free(g_state);
    printf("fuzz_handler: replayed %d inputs\n", files);
    if (files == 0) {
        fprintf(stderr, "fuzz_handler: no inputs found\n");
        return 1;
    }
    return failed ? 1 : 0;
}
#endif
