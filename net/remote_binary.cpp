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

using namespace reply;

namespace {

/* Reads "binfo" into *out, as read_info does for a RemoteIndex. */
void read_binfo(fx_rbuf* r, const std::shared_ptr<Conn>& conn,
                const char* name, std::unique_ptr<RemoteIndexBinary>* out) {
    IndexInfo in;
    read_index_info(r, "binary index info", &in);
    out->reset(RemoteIndexBinary::from_info(in, conn, name));
}

FaissIndexBinary* hand_out(std::unique_ptr<RemoteIndexBinary> ix) {
    return handle<FaissIndexBinary>(
            static_cast<faiss::IndexBinary*>(ix.release()));
}

} // namespace

/* ---- RemoteIndexBinary ---- */

void RemoteIndexBinary::send(const Conn* c, int64_t op, int op_class,
                             const WireBuild& build, const WireParse& parse,
                             uint64_t rid) {
    if (rid) fx_client_next_call_as(rid, 0);
    remote_call(c, FX_OP_BINARY, op_class,
                [&](fx_wbuf* w) {
                    fx_w_i64(w, op);
                    build(w);
                },
                parse);
}

namespace {

/* A sub-op of the admin class sent once (no reopen on a lost handle). */
void bcall(const Conn* c, int64_t op,
           const WireBuild& build,
           const WireParse& parse) {
    RemoteIndexBinary::send(c, op, FAISSX_OP_ADMIN, build, parse, 0);
}

} // namespace

RemoteIndexBinary* RemoteIndexBinary::from_info(const IndexInfo& in,
                                                const std::shared_ptr<Conn>& c,
                                                const char* index_name) {
    // Checked first: a handle made here would release the index.
    if (!(in.kind & FX_KIND_BINARY))
        throw Error(FAISSX_E_PROTOCOL, "the server answered with a "
                                       "non-binary index");
    auto ix = new RemoteIndexBinary();
    ix->adopt(in, c, index_name);
    ix->code_size = ix->d / 8;
    return ix;
}

bool RemoteIndexBinary::reopen() const {
    return reopen_as("binary index", [&](const IndexInfo& in) {
        return in.d == d && (in.kind & FX_KIND_BINARY);
    });
}

RemoteIndexBinary::~RemoteIndexBinary() = default; // see ~RemoteOf

void RemoteIndexBinary::train(idx_t n, const uint8_t* x) {
    remote_change(this, FX_BIN_TRAIN, FAISSX_OP_TRAIN, "binary train",
           [&](fx_wbuf* w) {
               fx_w_i64(w, n);
               fx_w_array(w, x, (uint64_t)n * code_size, 1);
           });
}

void RemoteIndexBinary::add(idx_t n, const uint8_t* x) {
    if (add_stream(n, x, nullptr)) return;
    remote_change(this, FX_BIN_ADD, FAISSX_OP_ADD, "binary add", [&](fx_wbuf* w) {
        fx_w_i64(w, n);
        fx_w_array(w, x, (uint64_t)n * code_size, 1);
    });
}

void RemoteIndexBinary::add_with_ids(idx_t n, const uint8_t* x,
                                     const idx_t* xids) {
    if (add_stream(n, x, xids)) return;
    remote_change(this, FX_BIN_ADD_WITH_IDS, FAISSX_OP_ADD, "binary add_with_ids",
           [&](fx_wbuf* w) {
               fx_w_i64(w, n);
               fx_w_array(w, x, (uint64_t)n * code_size, 1);
               fx_w_array(w, xids, (uint64_t)n, sizeof(idx_t));
           });
}

void RemoteIndexBinary::search(idx_t n, const uint8_t* x, idx_t k,
                               int32_t* distances, idx_t* labels,
                               const faiss::SearchParameters* params) const {
    remote_refuse_quantizer_params(params);
    // The server applies them as faissx_IndexBinary_search_with_params.
    remote_on(this, FX_BIN_SEARCH, FAISSX_OP_SEARCH, false,
              [&](fx_wbuf* w) {
                  fx_w_i64(w, n);
                  fx_w_i64(w, k);
                  fx_w_array(w, x, (uint64_t)n * code_size, 1);
                  if (params) remote_write_search_params(w, params);
              },
              [&](fx_rbuf* r) {
                  read_into(r, distances, (uint64_t)n * k, "binary search");
                  read_into(r, labels, (uint64_t)n * k, "binary search");
              });
    saw_trained(); // the server searches trained indexes only
}

void RemoteIndexBinary::range_search(idx_t n, const uint8_t* x, int radius,
                                     faiss::RangeSearchResult* result,
                                     const faiss::SearchParameters* params) const {
    if (params)
        throw Error(FAISSX_E_UNSUPPORTED, "search parameters are not "
                                          "supported on remote binary indexes");
    remote_on(this, FX_BIN_RANGE_SEARCH, FAISSX_OP_SEARCH, false,
              [&](fx_wbuf* w) {
                  fx_w_i64(w, n);
                  fx_w_i64(w, radius);
                  fx_w_array(w, x, (uint64_t)n * code_size, 1);
              },
              [&](fx_rbuf* r) {
                  read_range(r, n, result, "binary range_search");
              });
    saw_trained();
}

void RemoteIndexBinary::reset() {
    remote_change(this, FX_BIN_RESET, FAISSX_OP_ADD, "binary reset",
           [](fx_wbuf*) {});
}

size_t RemoteIndexBinary::remove_ids(const faiss::IDSelector& sel) {
    uint64_t removed = 0;
    remote_change(this, FX_BIN_REMOVE_IDS, FAISSX_OP_ADD, "binary remove_ids",
           [&](fx_wbuf* w) { remote_write_selector(w, &sel); },
           [&](fx_rbuf* r) {
               if (fx_r_u64(r, &removed))
                   proto_error("binary remove_ids", r);
           });
    return removed;
}

void RemoteIndexBinary::reconstruct(idx_t key, uint8_t* recons) const {
    remote_on(this, FX_BIN_RECONSTRUCT_KEYS, FAISSX_OP_SEARCH, false,
              [&](fx_wbuf* w) { fx_w_array(w, &key, 1, sizeof(idx_t)); },
              [&](fx_rbuf* r) {
                  read_into(r, recons, code_size, "binary reconstruct");
              });
}

void RemoteIndexBinary::reconstruct_n(idx_t i0, idx_t ni,
                                      uint8_t* recons) const {
    remote_on(this, FX_BIN_RECONSTRUCT_N, FAISSX_OP_SEARCH, false,
              [&](fx_wbuf* w) {
                  fx_w_i64(w, i0);
                  fx_w_i64(w, ni);
              },
              [&](fx_rbuf* r) {
                  read_into(r, recons, ni > 0 ? (uint64_t)ni * code_size : 0,
                            "binary reconstruct_n");
              });
}

void RemoteIndexBinary::sync() {
    IndexInfo in;
    remote_on(this, FX_BIN_INFO, FAISSX_OP_ADMIN, false, [](fx_wbuf*) {},
              [&](fx_rbuf* r) { read_index_info(r, "binary index info", &in); });
    if (!(in.kind & FX_KIND_BINARY))
        throw Error(FAISSX_E_PROTOCOL, "the server answered with a "
                                       "non-binary index");
    take_info(in);
}

void RemoteIndexBinary::set_param(const char* name, double value) {
    remote_change(this, FX_BIN_SET_PARAM, FAISSX_OP_ADMIN, "binary set_param",
           [&](fx_wbuf* w) {
               fx_w_str(w, name);
               fx_w_f64(w, value);
           });
    if (!std::strcmp(name, "verbose")) verbose = value != 0;
}

double RemoteIndexBinary::get_param(const char* name) const {
    if (!std::strcmp(name, "nlist") && nlist_seen > 0)
        return (double)nlist_seen.load(); // fixed when the IVF was built
    double v = 0;
    remote_on(this, FX_BIN_GET_PARAM, FAISSX_OP_ADMIN, false,
              [&](fx_wbuf* w) { fx_w_str(w, name); },
              [&](fx_rbuf* r) {
                  if (fx_r_f64(r, &v)) proto_error("binary get_param", r);
              });
    return v;
}

std::vector<uint8_t> RemoteIndexBinary::serialize() const {
    return remote_download(conn.get(), handle, FX_UPLOAD_BINARY, [&] {
        std::vector<uint8_t> out;
        bcall(conn.get(), FX_BIN_SERIALIZE,
              [&](fx_wbuf* w) { fx_w_u64(w, handle); },
              [&](fx_rbuf* r) { out = read_bytes(r, "binary serialize"); });
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
        std::unique_ptr<RemoteIndexBinary> ix;
        bcall(conn.get(), FX_BIN_CREATE,
              [&](fx_wbuf* w) {
                  fx_w_str(w, name ? name : "");
                  fx_w_i64(w, d);
                  fx_w_str(w, description);
              },
              [&](fx_rbuf* r) { read_binfo(r, conn, name, &ix); });
        *out = hand_out(std::move(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

int remote_bin_wrap_ivf(const char* func, RemoteIndexBinary* quantizer,
                        int64_t d, int64_t nlist, FaissIndexBinary** out) {
    try {
        std::unique_ptr<RemoteIndexBinary> ix;
        bcall(quantizer->conn.get(), FX_BIN_WRAP_IVF,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, quantizer->handle);
                  fx_w_i64(w, d);
                  fx_w_i64(w, nlist);
              },
              [&](fx_rbuf* r) {
                  read_binfo(r, quantizer->conn, nullptr, &ix);
              });
        ix->children.push_back(quantizer);
        ix->own_children = true; // as faissx_IndexBinaryIVF_new's own_fields
        *out = hand_out(std::move(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

int remote_bin_clone(const char* func, const RemoteIndexBinary* src,
                     FaissIndexBinary** out) {
    try {
        std::unique_ptr<RemoteIndexBinary> ix;
        bcall(src->conn.get(), FX_BIN_CLONE,
              [&](fx_wbuf* w) { fx_w_u64(w, src->handle); },
              [&](fx_rbuf* r) { read_binfo(r, src->conn, nullptr, &ix); });
        *out = hand_out(std::move(ix));
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
    fx::IndexInfo in; // info and binfo have the same layout
    fx::remote_call(c.get(), FX_OP_OPEN, FAISSX_OP_ADMIN,
                    [&](fx_wbuf* w) { fx_w_str(w, name); },
                    [&](fx_rbuf* r) {
                        fx::reply::read_index_info(r, "binary index info",
                                                   &in);
                    });
    if (!(in.kind & FX_KIND_BINARY))
        return fx::fail(FAISSX_E_INVALID, __func__,
                        "index '%s' is not a binary index (open it with "
                        "faissx_index_open)",
                        name);
    *p_index = fx::hand_out(std::unique_ptr<fx::RemoteIndexBinary>(
            fx::RemoteIndexBinary::from_info(in, c, name)));
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
    std::unique_ptr<fx::RemoteIndexBinary> ix;
    auto info = [&](fx_rbuf* r) { fx::read_binfo(r, c, name, &ix); };
    fx::remote_upload(
            c.get(), b.data(), b.size(), FX_UPLOAD_BINARY, name,
            [&] {
                fx::bcall(c.get(), FX_BIN_UPLOAD,
                          [&](fx_wbuf* w) {
                              fx_w_str(w, name ? name : "");
                              fx_w_array(w, b.data(), b.size(), 1);
                          },
                          info);
            },
            info);
    *p_index = fx::hand_out(std::move(ix));
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
