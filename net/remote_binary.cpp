/* remote_binary.cpp -- RemoteIndexBinary: a faiss::IndexBinary living on a
 * faissx-server (FX_OP_BINARY, docs/protocol.md), and the named binary
 * index calls of faissx.h. Vectors travel as raw uint8 codes. */
#include "net/remote.h"

#include "core/core.h"

#include <faiss/IndexIVF.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <cstring>
#include <memory>

namespace fx {

namespace {

int64_t rd_i64(fx_rbuf* r, const char* what) {
    int64_t v;
    if (fx_r_i64(r, &v)) remote_proto_error(what, r);
    return v;
}

template <class T>
void read_into(fx_rbuf* r, T* out, uint64_t expect, const char* what) {
    const void* p;
    uint64_t n;
    if (fx_r_array(r, sizeof(T), expect, &p, &n) != 0 || n != expect)
        remote_proto_error(what, r);
    if (n) std::memcpy(out, p, n * sizeof(T));
}

void read_state(fx_rbuf* r, RemoteIndexBinary* ix, const char* what) {
    ix->ntotal = rd_i64(r, what);
    ix->is_trained = rd_i64(r, what) != 0;
}

/* Reads "binfo" into a new RemoteIndexBinary. */
RemoteIndexBinary* read_binfo(fx_rbuf* r, const std::shared_ptr<Conn>& conn,
                              bool named) {
    std::unique_ptr<RemoteIndexBinary> ix(new RemoteIndexBinary());
    uint64_t h;
    char cls[256];
    if (fx_r_u64(r, &h)) remote_proto_error("binary index info", r);
    ix->handle = h;
    ix->d = (int)rd_i64(r, "binary index info");
    ix->code_size = ix->d / 8;
    ix->metric_type = (faiss::MetricType)rd_i64(r, "binary index info");
    ix->is_trained = rd_i64(r, "binary index info") != 0;
    ix->ntotal = rd_i64(r, "binary index info");
    ix->kind = rd_i64(r, "binary index info");
    if (fx_r_str(r, cls, sizeof cls - 1))
        remote_proto_error("binary index info", r);
    int64_t sizes[3]; // nlist, nprobe, code size (= d / 8)
    remote_read_info_sizes(r, sizes);
    ix->nlist_seen = sizes[0];
    if (!(ix->kind & FX_KIND_BINARY))
        throw Error(FAISSX_E_PROTOCOL, "the server answered with a "
                                       "non-binary index");
    ix->cls = cls;
    ix->conn = conn;
    ix->named = named;
    return ix.release();
}

/* One FX_OP_BINARY round trip: the sub-op, then build's fields; with
 * request id rid when not 0 (a retry across a restart reuses it). */
void bcall(const Conn* c, int64_t op, int op_class,
           const std::function<void(fx_wbuf*)>& build,
           const std::function<void(fx_rbuf*)>& parse, uint64_t rid = 0) {
    if (rid) fx_client_next_call_as(rid, 0);
    remote_call(c, FX_OP_BINARY, op_class,
                [&](fx_wbuf* w) {
                    fx_w_i64(w, op);
                    build(w);
                },
                parse);
}


} // namespace

/* ---- RemoteIndexBinary ---- */

bool RemoteIndexBinary::reopen() const {
    if (!named || name.empty() || !conn) return false;
    uint64_t h = 0;
    int64_t d2 = 0, kind2 = 0;
    try {
        remote_call(conn.get(), FX_OP_OPEN, FAISSX_OP_ADMIN,
                    [&](fx_wbuf* w) { fx_w_str(w, name.c_str()); },
                    [&](fx_rbuf* r) {
                        // info and binfo have the same layout
                        int64_t v;
                        char cls[256];
                        if (fx_r_u64(r, &h) || fx_r_i64(r, &d2) ||
                            fx_r_i64(r, &v) || fx_r_i64(r, &v) ||
                            fx_r_i64(r, &v) || fx_r_i64(r, &kind2) ||
                            fx_r_str(r, cls, sizeof cls - 1))
                            remote_proto_error("binary index info", r);
                        int64_t sizes[3];
                        remote_read_info_sizes(r, sizes);
                    });
    } catch (...) {
        return false;
    }
    if (d2 != d || !(kind2 & FX_KIND_BINARY))
        return false; // another index now has the name
    fx_clog(FAISSX_LOG_INFO, "binary index '%s': handle %llu is gone (server "
            "restarted?); reopened as %llu", name.c_str(),
            (unsigned long long)handle.load(), (unsigned long long)h);
    handle = h;
    return true;
}

RemoteIndexBinary::~RemoteIndexBinary() {
    if (own_children)
        for (auto c : children) delete c;
    if (named || !conn || fx_client_state(conn->c) != FAISSX_CONN_CONNECTED)
        return;
    try {
        fx_client_next_call_wait(FX_RELEASE_WAIT_MS); // as ~RemoteIndex
        remote_call(conn.get(), FX_OP_RELEASE, FAISSX_OP_ADMIN,
                    [&](fx_wbuf* w) { fx_w_u64(w, handle); },
                    [](fx_rbuf*) {});
    } catch (...) {
        // The server may be gone; it reclaims orphans itself.
    }
}

void RemoteIndexBinary::train(idx_t n, const uint8_t* x) {
    with_reopen(this, [&](uint64_t rid) {
        bcall(conn.get(), FX_BIN_TRAIN, FAISSX_OP_TRAIN,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, n);
                  fx_w_array(w, x, (uint64_t)n * code_size, 1);
              },
              [&](fx_rbuf* r) { read_state(r, this, "binary train"); }, rid);
    });
}

void RemoteIndexBinary::add(idx_t n, const uint8_t* x) {
    with_reopen(this, [&](uint64_t rid) {
        bcall(conn.get(), FX_BIN_ADD, FAISSX_OP_ADD,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, n);
                  fx_w_array(w, x, (uint64_t)n * code_size, 1);
              },
              [&](fx_rbuf* r) { read_state(r, this, "binary add"); }, rid);
    });
}

void RemoteIndexBinary::add_with_ids(idx_t n, const uint8_t* x,
                                     const idx_t* xids) {
    with_reopen(this, [&](uint64_t rid) {
        bcall(conn.get(), FX_BIN_ADD_WITH_IDS, FAISSX_OP_ADD,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, n);
                  fx_w_array(w, x, (uint64_t)n * code_size, 1);
                  fx_w_array(w, xids, (uint64_t)n, sizeof(idx_t));
              },
              [&](fx_rbuf* r) { read_state(r, this, "binary add_with_ids"); },
              rid);
    });
}

void RemoteIndexBinary::search(idx_t n, const uint8_t* x, idx_t k,
                               int32_t* distances, idx_t* labels,
                               const faiss::SearchParameters* params) const {
    auto ivfp = dynamic_cast<const faiss::SearchParametersIVF*>(params);
    if (ivfp && ivfp->quantizer_params)
        throw Error(FAISSX_E_UNSUPPORTED,
                    "quantizer search parameters cannot be sent to a server");
    // The server applies them as faissx_IndexBinary_search_with_params.
    with_reopen(this, [&](uint64_t) {
        bcall(conn.get(), FX_BIN_SEARCH, FAISSX_OP_SEARCH,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, handle);
                      fx_w_i64(w, n);
                      fx_w_i64(w, k);
                      fx_w_array(w, x, (uint64_t)n * code_size, 1);
                      if (params) remote_write_search_params(w, params);
                  },
                  [&](fx_rbuf* r) {
                      read_into(r, distances, (uint64_t)n * k, "binary search");
                      read_into(r, labels, (uint64_t)n * k, "binary search");
                  });
    });
    saw_trained(); // the server searches trained indexes only
}

void RemoteIndexBinary::saw_trained() const {
    if (!is_trained) const_cast<RemoteIndexBinary*>(this)->is_trained = true;
}

void RemoteIndexBinary::range_search(idx_t n, const uint8_t* x, int radius,
                                     faiss::RangeSearchResult* result,
                                     const faiss::SearchParameters* params) const {
    if (params)
        throw Error(FAISSX_E_UNSUPPORTED, "search parameters are not "
                                          "supported on remote binary indexes");
    with_reopen(this, [&](uint64_t) {
        bcall(conn.get(), FX_BIN_RANGE_SEARCH, FAISSX_OP_SEARCH,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, handle);
                      fx_w_i64(w, n);
                      fx_w_i64(w, radius);
                      fx_w_array(w, x, (uint64_t)n * code_size, 1);
                  },
                  [&](fx_rbuf* r) {
                      const char* what = "binary range_search";
                      std::vector<uint64_t> lims(n + 1);
                      read_into(r, lims.data(), (uint64_t)n + 1, what);
                      if (lims[0] != 0) remote_proto_error(what, r);
                      for (idx_t i = 0; i < n; i++) {
                          if (lims[i + 1] < lims[i]) remote_proto_error(what, r);
                          result->lims[i] = lims[i + 1] - lims[i];
                      }
                      result->do_allocation();
                      read_into(r, result->labels, lims[n], what);
                      read_into(r, result->distances, lims[n], what);
                  });
    });
    saw_trained();
}

void RemoteIndexBinary::reset() {
    with_reopen(this, [&](uint64_t rid) {
        bcall(conn.get(), FX_BIN_RESET, FAISSX_OP_ADD,
                  [&](fx_wbuf* w) { fx_w_u64(w, handle); },
                  [&](fx_rbuf* r) { read_state(r, this, "binary reset"); }, rid);
    });
}

size_t RemoteIndexBinary::remove_ids(const faiss::IDSelector& sel) {
    uint64_t removed = 0;
    with_reopen(this, [&](uint64_t rid) {
        bcall(conn.get(), FX_BIN_REMOVE_IDS, FAISSX_OP_ADD,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, handle);
                      remote_write_selector(w, &sel);
                  },
                  [&](fx_rbuf* r) {
                      if (fx_r_u64(r, &removed))
                          remote_proto_error("binary remove_ids", r);
                      read_state(r, this, "binary remove_ids");
                  }, rid);
    });
    return removed;
}

void RemoteIndexBinary::reconstruct(idx_t key, uint8_t* recons) const {
    with_reopen(this, [&](uint64_t) {
        bcall(conn.get(), FX_BIN_RECONSTRUCT_KEYS, FAISSX_OP_SEARCH,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, handle);
                      fx_w_array(w, &key, 1, sizeof(idx_t));
                  },
                  [&](fx_rbuf* r) {
                      read_into(r, recons, code_size, "binary reconstruct");
                  });
    });
}

void RemoteIndexBinary::reconstruct_n(idx_t i0, idx_t ni,
                                      uint8_t* recons) const {
    with_reopen(this, [&](uint64_t) {
        bcall(conn.get(), FX_BIN_RECONSTRUCT_N, FAISSX_OP_SEARCH,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, handle);
                      fx_w_i64(w, i0);
                      fx_w_i64(w, ni);
                  },
                  [&](fx_rbuf* r) {
                      read_into(r, recons, ni > 0 ? (uint64_t)ni * code_size : 0,
                                "binary reconstruct_n");
                  });
    });
}

void RemoteIndexBinary::sync() {
    with_reopen(this, [&](uint64_t) {
        bcall(conn.get(), FX_BIN_INFO, FAISSX_OP_ADMIN,
                  [&](fx_wbuf* w) { fx_w_u64(w, handle); },
                  [&](fx_rbuf* r) {
                      std::unique_ptr<RemoteIndexBinary> tmp(
                              read_binfo(r, nullptr, true));
                      ntotal = tmp->ntotal;
                      is_trained = tmp->is_trained;
                  });
    });
}

void RemoteIndexBinary::set_param(const char* name, double value) {
    with_reopen(this, [&](uint64_t rid) {
        bcall(conn.get(), FX_BIN_SET_PARAM, FAISSX_OP_ADMIN,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, handle);
                      fx_w_str(w, name);
                      fx_w_f64(w, value);
                  },
                  [&](fx_rbuf* r) { read_state(r, this, "binary set_param"); }, rid);
    });
    if (!std::strcmp(name, "verbose")) verbose = value != 0;
}

double RemoteIndexBinary::get_param(const char* name) const {
    if (!std::strcmp(name, "nlist") && nlist_seen > 0)
        return (double)nlist_seen; // fixed when the IVF was built
    double v = 0;
    with_reopen(this, [&](uint64_t) {
        bcall(conn.get(), FX_BIN_GET_PARAM, FAISSX_OP_ADMIN,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, handle);
                      fx_w_str(w, name);
                  },
                  [&](fx_rbuf* r) {
                      if (fx_r_f64(r, &v)) remote_proto_error("binary get_param", r);
                  });
    });
    return v;
}

std::vector<uint8_t> RemoteIndexBinary::serialize() const {
    return remote_download(conn.get(), handle, FX_UPLOAD_BINARY, [&] {
        std::vector<uint8_t> out;
        bcall(conn.get(), FX_BIN_SERIALIZE, FAISSX_OP_ADMIN,
              [&](fx_wbuf* w) { fx_w_u64(w, handle); },
              [&](fx_rbuf* r) {
                  const void* p;
                  uint64_t n;
                  if (fx_r_array(r, 1, UINT64_MAX, &p, &n))
                      remote_proto_error("binary serialize", r);
                  out.assign(static_cast<const uint8_t*>(p),
                             static_cast<const uint8_t*>(p) + n);
              });
        return out;
    });
}

RemoteIndexBinary* as_remote_bin(const faiss::IndexBinary* ix) {
    return const_cast<RemoteIndexBinary*>(
            dynamic_cast<const RemoteIndexBinary*>(ix));
}

bool remote_bin_is(const faiss::IndexBinary* ix, int64_t kind) {
    auto r = as_remote_bin(ix);
    return r && (r->kind & kind) != 0;
}

int remote_bin_create(const char* func, const std::shared_ptr<Conn>& conn,
                      const char* name, int d, const char* description,
                      FaissIndexBinary** out) {
    try {
        RemoteIndexBinary* ix = nullptr;
        bcall(conn.get(), FX_BIN_CREATE, FAISSX_OP_ADMIN,
              [&](fx_wbuf* w) {
                  fx_w_str(w, name ? name : "");
                  fx_w_i64(w, d);
                  fx_w_str(w, description);
              },
              [&](fx_rbuf* r) { ix = read_binfo(r, conn, name != nullptr); });
        if (name) ix->name = name;
        *out = handle<FaissIndexBinary>(static_cast<faiss::IndexBinary*>(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

int remote_bin_wrap_ivf(const char* func, RemoteIndexBinary* quantizer,
                        int64_t d, int64_t nlist, FaissIndexBinary** out) {
    try {
        RemoteIndexBinary* ix = nullptr;
        bcall(quantizer->conn.get(), FX_BIN_WRAP_IVF, FAISSX_OP_ADMIN,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, quantizer->handle);
                  fx_w_i64(w, d);
                  fx_w_i64(w, nlist);
              },
              [&](fx_rbuf* r) {
                  ix = read_binfo(r, quantizer->conn, false);
              });
        ix->children.push_back(quantizer);
        ix->own_children = true; // as faissx_IndexBinaryIVF_new's own_fields
        *out = handle<FaissIndexBinary>(static_cast<faiss::IndexBinary*>(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

int remote_bin_clone(const char* func, const RemoteIndexBinary* src,
                     FaissIndexBinary** out) {
    try {
        RemoteIndexBinary* ix = nullptr;
        bcall(src->conn.get(), FX_BIN_CLONE, FAISSX_OP_ADMIN,
              [&](fx_wbuf* w) { fx_w_u64(w, src->handle); },
              [&](fx_rbuf* r) { ix = read_binfo(r, src->conn, false); });
        *out = handle<FaissIndexBinary>(static_cast<faiss::IndexBinary*>(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

} // namespace fx

/* ---- faissx.h: named binary indexes ---- */

extern "C" {

int faissx_index_binary_is_remote(const FaissIndexBinary* index) {
    return index && fx::as_remote_bin(fx::bindex(index)) != nullptr;
}

int faissx_index_binary_create(FaissIndexBinary** p_index, const char* name,
                               int d, const char* description) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(name);
    FX_NOT_NULL(description);
    FX_REQUIRE(name[0] != '\0', "name is empty (use "
                                 "faiss_index_binary_factory for an unnamed "
                                 "index)");
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_REQUIRE(d % 8 == 0, "binary dimension d must be a multiple of 8 "
                           "(got %d)", d);
    std::shared_ptr<fx::Conn> c;
    if (int rc = fx::remote_named_conn(__func__, &c)) return rc;
    return fx::remote_bin_create(__func__, c, name, d, description, p_index);
}

int faissx_index_binary_open(FaissIndexBinary** p_index, const char* name) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(name);
    std::shared_ptr<fx::Conn> c;
    if (int rc = fx::remote_named_conn(__func__, &c)) return rc;
    FX_TRY
    fx::RemoteIndexBinary* ix = nullptr;
    int64_t kind = 0;
    fx::remote_call(c.get(), FX_OP_OPEN, FAISSX_OP_ADMIN,
                    [&](fx_wbuf* w) { fx_w_str(w, name); },
                    [&](fx_rbuf* r) {
                        // info and binfo have the same layout: peek at kind
                        fx_rbuf peek = *r;
                        uint64_t h;
                        int64_t v;
                        fx_r_u64(&peek, &h);
                        for (int i = 0; i < 5; i++) fx_r_i64(&peek, &v);
                        kind = v;
                        if (!(kind & FX_KIND_BINARY)) {
                            r->pos = r->len; // consumed; refused below
                            return;
                        }
                        ix = fx::read_binfo(r, c, true);
                    });
    if (ix) ix->name = name;
    if (!ix)
        return fx::fail(FAISSX_E_INVALID, __func__,
                        "index '%s' is not a binary index (open it with "
                        "faissx_index_open)",
                        name);
    *p_index = fx::handle<FaissIndexBinary>(static_cast<faiss::IndexBinary*>(ix));
    return 0;
    FX_CATCH
}

int faissx_index_binary_upload(const FaissIndexBinary* local,
                               const char* name,
                               FaissIndexBinary** p_index) {
    FX_NOT_NULL(local);
    FX_NOT_NULL(p_index);
    if (name && !name[0]) name = nullptr; // "" means unnamed, as NULL
    FX_REQUIRE(!fx::as_remote_bin(fx::bindex(local)),
               "the index is already remote (use "
               "faissx_clone_index_binary)");
    std::shared_ptr<fx::Conn> c;
    if (int rc = fx::remote_named_conn(__func__, &c)) return rc;
    FX_TRY
    faiss::VectorIOWriter bytes;
    faiss::write_index_binary(fx::bindex(local), &bytes);
    const std::vector<uint8_t>& b = bytes.data;
    fx::RemoteIndexBinary* ix = nullptr;
    auto info = [&](fx_rbuf* r) { ix = fx::read_binfo(r, c, name != nullptr); };
    fx::remote_upload(
            c.get(), b.data(), b.size(), FX_UPLOAD_BINARY, name,
            [&] {
                fx::bcall(c.get(), FX_BIN_UPLOAD, FAISSX_OP_ADMIN,
                          [&](fx_wbuf* w) {
                              fx_w_str(w, name ? name : "");
                              fx_w_array(w, b.data(), b.size(), 1);
                          },
                          info);
            },
            info);
    if (name) ix->name = name; // a named handle reopens by name
    *p_index = fx::handle<FaissIndexBinary>(static_cast<faiss::IndexBinary*>(ix));
    return 0;
    FX_CATCH
}

int faissx_index_binary_download(const FaissIndexBinary* index,
                                 FaissIndexBinary** p_local) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(p_local);
    FX_TRY
    faiss::VectorIOReader in;
    if (auto r = fx::as_remote_bin(fx::bindex(index))) {
        in.data = r->serialize();
    } else {
        faiss::VectorIOWriter w;
        faiss::write_index_binary(fx::bindex(index), &w);
        in.data.swap(w.data);
    }
    *p_local = fx::handle<FaissIndexBinary>(faiss::read_index_binary(&in));
    return 0;
    FX_CATCH
}

} // extern "C"
