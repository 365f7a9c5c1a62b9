/* remote.h -- internal: remote indexes. A RemoteIndex is a faiss::Index
 * whose methods run on a faissx-server, so every C API call -- and faiss's
 * own composites -- work on it unchanged. */
#ifndef FX_REMOTE_H
#define FX_REMOTE_H

#include "core/bridge.h"
#include "net/client.h"
#include "net/shm.h"

#include <faiss/VectorTransform.h>

#include <cstring>
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include <string>

namespace fx {

class JobScope;

/* A connection shared by the indexes created through it. */
struct Conn {
    fx_client* c = nullptr;
    /* Its shared-memory region for adds (net/shm.h), made on first use. */
    shm::ClientShm shm;
    /* The server refused FX_FLAG_STATE (it predates it): calls ask INFO
     * for the state instead. */
    mutable std::atomic<bool> no_state_flag{false};
    /* The ring first: a stream's call it still holds is on c. */
    ~Conn() {
        shm.ring.reset();
        fx_client_close(c);
    }
};

/* A request's fields, and the reader of its reply. */
using WireBuild = std::function<void(fx_wbuf*)>;
using WireParse = std::function<void(fx_rbuf*)>;

/* Index info (docs/protocol.md, "Index info"): what CREATE, OPEN, INFO,
 * CLONE, ... answer for an index of either family. */
struct IndexInfo {
    uint64_t handle = 0;
    int64_t d = 0, metric = 0, ntotal = 0, kind = 0;
    bool trained = false;
    std::string cls;
    /* nlist, nprobe, code size; kSizeUnknown from a server that predates
     * them. */
    int64_t sizes[3] = {0, 0, 0};
};

/* What a remote index holds whatever its faiss family (Base:
 * faiss::Index or faiss::IndexBinary): the server-side handle and how to
 * reach it again, and the cached state. Its destructor frees the children
 * it owns and releases an unnamed handle on the server. */
template <class Base>
struct RemoteOf : Base {
    using idx_t = typename Base::idx_t;
    std::shared_ptr<Conn> conn;
    /* Atomic: reopen() replaces it while other threads may use it. */
    mutable std::atomic<uint64_t> handle{0};
    bool named = false;
    std::string name; /* of a named index (for reopen) */
    int64_t kind = 0;      /* FX_KIND_* bits of the server-side index */
    std::string cls;       /* its faiss class name */
    /* Client-side handles this index was built from (the quantizer of an
     * IVF, the sub-index of an IDMap, ...): with own_children set
     * (faiss_X_set_own_fields), freeing this handle frees them, as faiss's
     * own_fields would. The server-side index holds its own copies. */
    std::vector<Base*> children;
    bool own_children = false;
    static constexpr int64_t kSizeUnknown = -2;
    /* nlist from the index info (0: not an IVF; kSizeUnknown: not sent):
     * fixed when the IVF is built, so get_param("nlist") sends nothing. */
    std::atomic<int64_t> nlist_seen{kSizeUnknown};
    /* The server refused a shared-memory add for this index (its type):
     * it always adds the ordinary way. */
    std::atomic<bool> no_stream{false};
    /* Orders the writes of ntotal/is_trained/kind from replies (getters
     * may run on one handle from many threads at once, as on a local
     * index): a field is written only when it changed, so concurrent
     * searches, which read the fields, see no write while nothing
     * changes. */
    std::mutex sync_mu;

    /* Takes ntotal and is_trained from a reply (under sync_mu). */
    void take_state(idx_t nt, bool trained) const;
    /* A call that the server runs only on a trained index succeeded: the
     * cached state says trained from now on (no INFO needed). */
    void saw_trained() const;
    /* Reads the state (ntotal, is_trained) that ends a change's reply. */
    void read_state(fx_rbuf* r, const char* what);

    ~RemoteOf() override;

  protected:
    RemoteOf() = default;
    /* Takes handle, d, metric, state, kind, class and nlist from fresh
     * index info, the connection, and the name (NULL: unnamed). */
    void adopt(const IndexInfo& in, const std::shared_ptr<Conn>& c,
               const char* index_name);
    /* Takes ntotal, is_trained and kind from fresh index info (under
     * sync_mu, each written only when it changed). */
    void take_info(const IndexInfo& in);
    /* reopen() of either family: opens the name again and takes the new
     * handle when same(info) says it is still this index (same() may take
     * more from the info). `family` ("index", "binary index") names it in
     * the log and in a malformed-reply error. */
    bool reopen_as(const char* family,
                   const std::function<bool(const IndexInfo&)>& same) const;
};

extern template struct RemoteOf<faiss::Index>;
extern template struct RemoteOf<faiss::IndexBinary>;

/* final: as_remote identifies it by its exact type (a typeid compare,
 * not a dynamic_cast, on every call's path). */
struct RemoteIndex final : RemoteOf<faiss::Index> {
    /* The client's transform objects in this pre-transform's chain, in
     * chain order (they are the chain's first ones: prepending puts one in
     * front). The server holds copies; train() copies the trained state
     * back into them. Freed with the handle when own_fields says so. */
    std::vector<faiss::VectorTransform*> child_transforms;
    /* Handles on inner indexes of a server-built composite (FX_COMP_INNER),
     * by FX_KIND_* bit, made on first use and freed with this handle. */
    std::map<int64_t, std::unique_ptr<RemoteIndex>> inner_views;
    std::mutex inner_mu;
    /* Shares server-side data with another handle (a composite made by
     * remote_wrap, or its child): a write through it invalidates the
     * client cache of its whole server. */
    bool linked = false;
    /* Sizes from index info (docs/protocol.md, "Index info"), so that
     * search_preassigned and sa_decode size their requests without asking
     * first: nlist (0: not an IVF), the nprobe this handle last saw (info,
     * or its own set_param / get_param: the value a caller sizes assign
     * by), sa_code_size (-1: no standalone codec); kSizeUnknown from a
     * server that does not send them (then they are asked for). The
     * server checks them again on every request, so a stale nprobe (other
     * clients change it) costs a clear error, never a wrong size. */
    std::atomic<int64_t> nprobe_seen{kSizeUnknown},
            code_size_seen{kSizeUnknown};
    /* Copies nlist and the code size of fresh index info when it has
     * them; not nprobe (see nprobe_seen). */
    void take_sizes(const IndexInfo& in);
    /* A new handle on the index `in` describes (named when index_name
     * is not NULL). */
    static RemoteIndex* from_info(const IndexInfo& in,
                                  const std::shared_ptr<Conn>& c,
                                  const char* index_name);
    /* One round trip of op for remote_on (rid: as fx_client_next_call_as). */
    static void send(const Conn* c, int64_t op, int op_class,
                     const WireBuild& build, const WireParse& parse,
                     uint64_t rid);

    ~RemoteIndex() override;
    /* A named index whose handle the server no longer knows (it
     * restarted): opens it by name again and takes the new handle. False
     * (handle unchanged) when it cannot. */
    bool reopen() const;
    void train(idx_t n, const float* x) override;
    void add(idx_t n, const float* x) override;
    void add_with_ids(idx_t n, const float* x, const idx_t* xids) override;
    /* add (add_with_ids when xids is not NULL) that checks the vectors
     * while copying them into the request, instead of in a pass of its
     * own: a NaN or inf throws Error(FAISSX_E_INVALID) with the text of
     * check_vectors, and nothing is sent (faiss_Index_add and
     * faiss_Index_add_with_ids use it). */
    void add_checked(idx_t n, const float* x, const idx_t* xids);
    /* The add through the connection's shared-memory ring (ADD_STREAM)
     * when the server offers one and the add is large enough: true when
     * done; false when the caller must add the ordinary way (nothing was
     * added). A NaN or inf throws Error(FAISSX_E_INVALID) with
     * check_vectors' text (nothing added). With `job` (the add's, when
     * the calling thread has a progress callback or cancel token) it
     * reports progress per chunk, and a cancellation throws
     * Error(FAISSX_E_CANCELED) (nothing added). */
    bool add_stream(idx_t n, const float* x, const idx_t* xids,
                    JobScope* job);
    void search(idx_t n, const float* x, idx_t k, float* distances,
                idx_t* labels,
                const faiss::SearchParameters* params = nullptr) const override;
    void range_search(idx_t n, const float* x, float radius,
                      faiss::RangeSearchResult* result,
                      const faiss::SearchParameters* params = nullptr) const override;
    void assign(idx_t n, const float* x, idx_t* labels,
                idx_t k = 1) const override;
    void reset() override;
    size_t remove_ids(const faiss::IDSelector& sel) override;
    void reconstruct(idx_t key, float* recons) const override;
    void reconstruct_n(idx_t i0, idx_t ni, float* recons) const override;
    /* reconstruct of n keys in one round trip */
    void reconstruct_batch(idx_t n, const idx_t* keys, float* recons) const;
    void compute_residual(const float* x, float* residual,
                          idx_t key) const override;
    void compute_residual_n(idx_t n, const float* xs, float* residuals,
                            const idx_t* keys) const override;
    size_t sa_code_size() const override;
    void sa_encode(idx_t n, const float* x, uint8_t* bytes) const override;
    void sa_decode(idx_t n, const uint8_t* bytes, float* x) const override;
    void merge_from(faiss::Index& other, idx_t add_id = 0) override;

    /* Refresh ntotal/is_trained/kind from the server (other clients write
     * too); the fresh values also go to *nt and *trained when given.
     * Getters call it (see sync_mu). */
    void sync(idx_t* nt = nullptr, bool* trained = nullptr);
    /* is_trained, asking the server while the cached value says no. */
    bool trained_now();
    void set_param(const char* name, double value);
    double get_param(const char* name) const;
    /* The faiss bytes of the server-side index. */
    std::vector<uint8_t> serialize() const;
    /* A copy of an internal array (FX_OP_FETCH: "xb", "id_map", ...). */
    std::vector<uint8_t> fetch(const char* what, int64_t arg = 0) const;
    /* FX_OP_IVF calls (with FX_FLAG_STATE when want_state: parse then
     * finds the extra state unless the server predates the flag);
     * ivf_mutate reads the state reply. */
    void ivf_call(int64_t op, const WireBuild& build,
                  const WireParse& parse,
                  bool want_state = false);
    void ivf_mutate(int64_t op, const WireBuild& build);
    /* FX_COMP_PREPEND: puts the transform (faiss bytes) in front of the
     * server-side chain and refreshes d, is_trained, kind. */
    void prepend_transform(const std::vector<uint8_t>& vt_bytes);
    /* A handle on the inner index that `kind` names (the wrapped index of
     * a pre-transform or IDMap, an IVF's quantizer, a refine's base),
     * owned by this handle. Throws fx::Error. */
    RemoteIndex* inner(int64_t kind);
    /* Copies the server-side chain's state (e.g. trained parameters) into
     * child_transforms (FX_COMP_CHAIN). Throws fx::Error. */
    void copy_back_transforms();
    /* Client-side copies handed out by faiss_IndexFlat_xb and
     * faiss_IndexIDMap_id_map: valid until the next such call or free. */
    std::vector<uint8_t> xb_copy, id_map_copy;
};

/* The remote index behind a handle, or NULL for a local one. */
RemoteIndex* as_remote(const faiss::Index* ix);

/* The connection new indexes go to: 0 with *out empty in local mode (or,
 * with fallback_local, while the server is unreachable: then a warning is
 * logged when `warn`), 0 with a connection in remote mode, or a FaissxError
 * (recorded for func) when a server is configured but cannot be reached. */
int remote_conn(const char* func, std::shared_ptr<Conn>* out,
                bool warn = true);

/* Creates an (anonymous when name is NULL) index on the server. */
int remote_create(const char* func, const std::shared_ptr<Conn>& conn,
                  const char* name, int d, const char* description,
                  int metric, FaissIndex** out);

/* Sends a freshly built local index to the server (for constructors that a
 * factory string cannot express) and returns the remote handle. Takes
 * ownership of `local` and frees it. */
int remote_upload_new(const char* func, const std::shared_ptr<Conn>& conn,
                      faiss::Index* local, FaissIndex** out);

/* The faiss bytes of server-side index `handle` (kind FX_UPLOAD_INDEX or
 * FX_UPLOAD_BINARY), fetched in chunks (DOWNLOAD_BEGIN/CHUNK/END), with
 * progress (FAISSX_PROGRESS_DOWNLOAD) and cancellation between chunks;
 * single() fetches them in one message from a server that predates
 * chunked downloads. Throws fx::Error. */
std::vector<uint8_t> remote_download(
        const Conn* c, uint64_t handle, int kind,
        const std::function<std::vector<uint8_t>()>& single);

/* Uploads n faiss index bytes of kind FX_UPLOAD_* in chunks
 * (UPLOAD_BEGIN/CHUNK/COMMIT, ABORT on failure or cancel) and commits them
 * as `name` (NULL or "": unnamed), with progress (FAISSX_PROGRESS_UPLOAD)
 * and cancellation between chunks; single() sends small uploads (and all
 * of them to a server that predates chunked uploads) in one message.
 * An upload the server lost (a CHUNK or COMMIT answered "unknown upload":
 * it restarted) is started over, at most 3 times; a retried COMMIT that
 * made its index before a restart is answered by the server's store.
 * info() reads COMMIT's (or single()'s) reply. Throws fx::Error. */
void remote_upload(const Conn* c, const uint8_t* data, uint64_t n, int kind,
                   const char* name, const std::function<void()>& single,
                   const WireParse& info);

/* Builds a composite of wrap type `type` (FX_WRAP_*) over a remote child
 * on the child's server (FX_OP_WRAP: they share one data structure there,
 * as in a local faiss program); `fields` writes the type's fields. The child
 * handle is recorded as the composite's child. */
int remote_wrap(const char* func, RemoteIndex* child, int64_t type,
                const WireBuild& fields, FaissIndex** out);

/* Clone (server-side copy) of a remote index. */
int remote_clone(const char* func, const RemoteIndex* r, FaissIndex** out);

/* True when the handle is remote and its server-side index has any of the
 * FX_KIND bits in `kind`. */
bool remote_is(const faiss::Index* ix, int64_t kind);

/* ---- binary indexes (net/remote_binary.cpp) ---- */

/* A faiss::IndexBinary living on a faissx-server (FX_OP_BINARY). kind:
 * FX_KIND_BINARY | FX_KIND_FLAT/IVF/HNSW; children: the quantizer handle
 * an IVF was built from (faiss_IndexBinaryIVF_set_own_fields). */
struct RemoteIndexBinary : RemoteOf<faiss::IndexBinary> {
    /* As RemoteIndex::from_info; throws FAISSX_E_PROTOCOL when the index
     * is not binary. */
    static RemoteIndexBinary* from_info(const IndexInfo& in,
                                        const std::shared_ptr<Conn>& c,
                                        const char* index_name);
    /* As RemoteIndex::send, as an FX_OP_BINARY sub-op. */
    static void send(const Conn* c, int64_t op, int op_class,
                     const WireBuild& build, const WireParse& parse,
                     uint64_t rid);
    ~RemoteIndexBinary() override;
    void train(idx_t n, const uint8_t* x) override;
    void add(idx_t n, const uint8_t* x) override;
    void add_with_ids(idx_t n, const uint8_t* x, const idx_t* xids) override;
    /* As RemoteIndex::add_stream, for codes (FX_BIN_ADD_STREAM): true
     * when done, false when the caller must add the ordinary way. */
    bool add_stream(idx_t n, const uint8_t* x, const idx_t* xids);
    void search(idx_t n, const uint8_t* x, idx_t k, int32_t* distances,
                idx_t* labels,
                const faiss::SearchParameters* params = nullptr) const override;
    void range_search(idx_t n, const uint8_t* x, int radius,
                      faiss::RangeSearchResult* result,
                      const faiss::SearchParameters* params = nullptr) const override;
    void reset() override;
    size_t remove_ids(const faiss::IDSelector& sel) override;
    void reconstruct(idx_t key, uint8_t* recons) const override;
    void reconstruct_n(idx_t i0, idx_t ni, uint8_t* recons) const override;

    /* As RemoteIndex::reopen: a named index whose handle the server no
     * longer knows (it restarted) is opened by name again. */
    bool reopen() const;
    /* Refresh ntotal/is_trained from the server. */
    void sync();
    void set_param(const char* name, double value);
    double get_param(const char* name) const;
    /* The faiss bytes of the server-side index (write_index_binary). */
    std::vector<uint8_t> serialize() const;
};

/* The remote binary index behind a handle, or NULL for a local one. */
RemoteIndexBinary* as_remote_bin(const faiss::IndexBinary* ix);

/* True when ix is remote and its server-side index has any `kind` bit. */
bool remote_bin_is(const faiss::IndexBinary* ix, int64_t kind);

/* Creates a binary index from a binary factory string on the server
 * (named when name is not NULL). */
int remote_bin_create(const char* func, const std::shared_ptr<Conn>& conn,
                      const char* name, int d, const char* description,
                      FaissIndexBinary** out);

/* An IndexBinaryIVF over a remote quantizer, built on the quantizer's
 * server; the quantizer handle becomes the IVF's child (own_children). */
int remote_bin_wrap_ivf(const char* func, RemoteIndexBinary* quantizer,
                        int64_t d, int64_t nlist, FaissIndexBinary** out);

/* Server-side copy of a remote binary index. */
int remote_bin_clone(const char* func, const RemoteIndexBinary* src,
                     FaissIndexBinary** out);

/* ---- shared with remote_binary.cpp (defined in remote.cpp) ---- */

/* One request/reply round trip: build writes the fields after the API key,
 * parse reads the reply body (which must be consumed exactly); op_class -1
 * = the op's. Failures throw fx::Error. */
void remote_call(const Conn* c, int op, int op_class,
                 const WireBuild& build,
                 const WireParse& parse);
/* Encodes an IDSelector (docs/protocol.md, "Selectors"); throws for types
 * that cannot travel. */
void remote_write_selector(fx_wbuf* w, const faiss::IDSelector* s);
/* Encodes search parameters (a selector, IVF nprobe/max_codes) as SEARCH
 * carries them; throws for a selector that cannot travel. */
void remote_write_search_params(fx_wbuf* w,
                                const faiss::SearchParameters* params);
/* Throws FAISSX_E_UNSUPPORTED for IVF search parameters with quantizer
 * parameters (they cannot be sent to a server). */
void remote_refuse_quantizer_params(const faiss::SearchParameters* params);

/* Reading replies: each throws the FAISSX_E_PROTOCOL error "malformed
 * reply to <what>" when the field is missing or malformed. */
namespace reply {
[[noreturn]] void proto_error(const char* what, const fx_rbuf* r);
int64_t rd_i64(fx_rbuf* r, const char* what);
/* An array of exactly `expect` elements, copied into out. */
template <class T>
void read_into(fx_rbuf* r, T* out, uint64_t expect, const char* what) {
    const void* p;
    uint64_t n;
    if (fx_r_array(r, sizeof(T), expect, &p, &n) != 0 || n != expect)
        proto_error(what, r);
    if (n) std::memcpy(out, p, n * sizeof(T));
}
/* An array of bytes of any length. */
std::vector<uint8_t> read_bytes(fx_rbuf* r, const char* what);
/* Index info (the sizes at its end, when a server sends them, are named
 * "index info" in errors). */
void read_index_info(fx_rbuf* r, const char* what, IndexInfo* out);
/* RANGE_SEARCH's reply for n queries (lims, labels, distances) into
 * result, whose lims it fills and whose arrays it allocates. */
void read_range(fx_rbuf* r, int64_t n, faiss::RangeSearchResult* result,
                const char* what);
} // namespace reply

/* The configured server for named-index calls, or an error recorded for
 * func when there is none (local mode). */
int remote_named_conn(const char* func, std::shared_ptr<Conn>* out);

/* Runs call(rid) with one request id; if it fails with FAISSX_E_NOT_FOUND
 * on a named index (its handle is from before a server restart), reopens
 * the index by name and runs call(rid) once more with the same id. A
 * mutation applied before the restart whose reply was lost is then
 * recognised by the server's durable store and answered, not applied
 * again (docs/client.md, "Retries"). Ix: RemoteIndex or RemoteIndexBinary. */
template <class Ix, class F>
void with_reopen(const Ix* ix, F call) {
    uint64_t rid = ix->named ? fx_client_new_request_id(ix->conn->c) : 0;
    try {
        call(rid);
        return;
    } catch (const Error& e) {
        if (e.code != FAISSX_E_NOT_FOUND || !ix->reopen()) throw;
    }
    call(rid);
}

/* A call on ix's server-side index through its family's round trip
 * (Ix::send): the handle, then fields(w); parse reads the reply. A named
 * index is reopened after a server restart (with_reopen); a `change`
 * keeps its request id for the retry, so that one applied before the
 * restart is answered, not applied again. */
template <class Ix>
void remote_on(const Ix* ix, int64_t op, int op_class, bool change,
               const WireBuild& fields,
               const WireParse& parse) {
    with_reopen(ix, [&](uint64_t rid) {
        Ix::send(ix->conn.get(), op, op_class,
                 [&](fx_wbuf* w) {
                     fx_w_u64(w, ix->handle);
                     fields(w);
                 },
                 parse, change ? rid : 0);
    });
}

/* remote_on for a change whose reply ends with ix's new state (after
 * what `first` reads, when given). */
template <class Ix>
void remote_change(Ix* ix, int64_t op, int op_class, const char* what,
                   const WireBuild& fields,
                   const WireParse& first = nullptr) {
    remote_on(ix, op, op_class, true, fields, [&](fx_rbuf* r) {
        if (first) first(r);
        ix->read_state(r, what);
    });
}

} // namespace fx

#endif
