/* meta.cpp -- MetaIndexes_c.h (IDMap, IDMap2), IndexShards_c.h and
 * IndexReplicas_c.h: indexes that wrap or combine other indexes. */
#include "core/core.h"

#include <faiss/IndexIDMap.h>
#include <faiss/IndexReplicas.h>
#include <faiss/IndexShards.h>

#include <type_traits>

namespace {
template <class T>
void id_map_out(const char* func, FaissIndex* index, idx_t** p_id_map,
                size_t* p_size) {
    // Remote: a client-side copy, valid until the next call or the free.
    if (auto r = index ? fx::as_remote(fx::index(index)) : nullptr) {
        try {
            r->id_map_copy = r->fetch("id_map");
            if (p_id_map) *p_id_map = reinterpret_cast<idx_t*>(r->id_map_copy.data());
            if (p_size) *p_size = r->id_map_copy.size() / sizeof(idx_t);
        } catch (...) {
            fx::handle_exception(func);
            if (p_id_map) *p_id_map = nullptr;
            if (p_size) *p_size = 0;
        }
        return;
    }
    auto m = fx::as<T>(index);
    if (!m) {
        fx::note_error(FAISSX_E_INVALID, func,
                       "index is NULL or not an IndexIDMap");
        if (p_id_map) *p_id_map = nullptr;
        if (p_size) *p_size = 0;
        return;
    }
    if (p_id_map) *p_id_map = m->id_map.data();
    if (p_size) *p_size = m->id_map.size();
}

template <class T>
int idmap_new(const char* func, FaissIndex** p_index, FaissIndex* index) {
    if (!p_index)
        return fx::fail(FAISSX_E_INVALID, func, "argument 'p_index' is NULL");
    if (!index)
        return fx::fail(FAISSX_E_INVALID, func, "argument 'index' is NULL");
    if (fx::index(index)->ntotal != 0)
        return fx::fail(FAISSX_E_INVALID, func,
                        "the wrapped index must be empty (ntotal = %lld)",
                        (long long)fx::index(index)->ntotal);
    if (auto r = fx::as_remote(fx::index(index)))
        return fx::remote_wrap(
                func, r,
                std::is_same<T, faiss::IndexIDMap2>::value ? FX_WRAP_IDMAP2
                                                           : FX_WRAP_IDMAP,
                [](fx_wbuf*) {}, p_index);
    try {
        *p_index = fx::handle<FaissIndex>(
                static_cast<faiss::Index*>(new T(fx::index(index))));
        return 0;
    } catch (...) {
        return fx::handle_exception(func);
    }
}

int check_child(const char* func, const faiss::Index* parent,
                FaissIndex* child) {
    if (!child)
        return fx::fail(FAISSX_E_INVALID, func, "child index is NULL");
    if (fx::index(child) == parent)
        return fx::fail(FAISSX_E_INVALID, func,
                        "an index cannot contain itself");
    if (fx::index(child)->d != parent->d)
        return fx::fail(FAISSX_E_INVALID, func,
                        "child dimension %d differs from %d",
                        fx::index(child)->d, parent->d);
    return 0;
}
} // namespace

extern "C" {

/* ---- IndexIDMap ---- */

FX_OWN_FIELDS_R(IndexIDMap, faiss::IndexIDMap, FX_KIND_IDMAP)

int faiss_IndexIDMap_new(FaissIndexIDMap** p_index, FaissIndex* index) {
    return idmap_new<faiss::IndexIDMap>(__func__, p_index, index);
}

FX_DOWNCAST_R(IndexIDMap, faiss::IndexIDMap, FX_KIND_IDMAP)

void faiss_IndexIDMap_id_map(FaissIndexIDMap* index, idx_t** p_id_map,
                             size_t* p_size) {
    id_map_out<faiss::IndexIDMap>(__func__, index, p_id_map, p_size);
}

FaissIndex* faiss_IndexIDMap_sub_index(FaissIndexIDMap* index) {
    if (auto r = index ? fx::as_remote(fx::index(index)) : nullptr)
        return fx::child_of(__func__, r, FX_KIND_IDMAP);
    FX_CAST_RET(m, faiss::IndexIDMap, index, nullptr);
    return fx::handle<FaissIndex>(m->index);
}

/* ---- IndexIDMap2 ---- */

FX_OWN_FIELDS_R(IndexIDMap2, faiss::IndexIDMap2, FX_KIND_IDMAP2)

int faiss_IndexIDMap2_new(FaissIndexIDMap2** p_index, FaissIndex* index) {
    return idmap_new<faiss::IndexIDMap2>(__func__, p_index, index);
}

int faiss_IndexIDMap2_construct_rev_map(FaissIndexIDMap2* index) {
    // The server's IDMap2 keeps its reverse map current on every change.
    if (index && fx::remote_is(fx::index(index), FX_KIND_IDMAP2)) return 0;
    FX_CAST(m, faiss::IndexIDMap2, index);
    FX_TRY
    m->construct_rev_map();
    return 0;
    FX_CATCH
}

FX_DOWNCAST_R(IndexIDMap2, faiss::IndexIDMap2, FX_KIND_IDMAP2)

void faiss_IndexIDMap2_id_map(FaissIndexIDMap2* index, idx_t** p_id_map,
                              size_t* p_size) {
    id_map_out<faiss::IndexIDMap2>(__func__, index, p_id_map, p_size);
}

FaissIndex* faiss_IndexIDMap2_sub_index(FaissIndexIDMap2* index) {
    if (auto r = index ? fx::as_remote(fx::index(index)) : nullptr)
        return fx::child_of(__func__, r, FX_KIND_IDMAP2);
    FX_CAST_RET(m, faiss::IndexIDMap2, index, nullptr);
    return fx::handle<FaissIndex>(m->index);
}

/* ---- IndexShards ---- */

FX_INDEX_FREE(IndexShards)
FX_GETTER(IndexShards, faiss::IndexShards, int, own_fields, o->own_fields)
FX_SETTER(IndexShards, faiss::IndexShards, int, own_fields,
          o->own_fields = val != 0)
FX_GETTER(IndexShards, faiss::IndexShards, int, successive_ids,
          o->successive_ids)
FX_SETTER(IndexShards, faiss::IndexShards, int, successive_ids,
          o->successive_ids = val != 0)

int faiss_IndexShards_new_with_options(FaissIndexShards** p_index, idx_t d,
                                       int threaded, int successive_ids) {
    FX_NOT_NULL(p_index);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_TRY
    *p_index = fx::handle<FaissIndexShards>(static_cast<faiss::Index*>(
            new faiss::IndexShards(d, threaded != 0, successive_ids != 0)));
    return 0;
    FX_CATCH
}

int faiss_IndexShards_new(FaissIndexShards** p_index, idx_t d) {
    return faiss_IndexShards_new_with_options(p_index, d, 0, 1);
}

int faiss_IndexShards_add_shard(FaissIndexShards* index, FaissIndex* shard) {
    FX_CAST(s, faiss::IndexShards, index);
    if (int rc = check_child(__func__, s, shard)) return rc;
    for (int i = 0; i < s->count(); i++)
        FX_REQUIRE(s->at(i) != fx::index(shard), "shard was already added");
    FX_TRY
    s->add_shard(fx::index(shard));
    return 0;
    FX_CATCH
}

int faiss_IndexShards_remove_shard(FaissIndexShards* index,
                                   FaissIndex* shard) {
    FX_CAST(s, faiss::IndexShards, index);
    FX_NOT_NULL(shard);
    FX_TRY
    s->remove_shard(fx::index(shard));
    return 0;
    FX_CATCH
}

FaissIndex* faiss_IndexShards_at(FaissIndexShards* index, int i) {
    FX_CAST_RET(s, faiss::IndexShards, index, nullptr);
    FX_REQUIRE_RET(i >= 0 && i < s->count(), nullptr,
                   "shard number %d is outside [0, %d)", i, s->count());
    return fx::handle<FaissIndex>(s->at(i));
}

/* ---- IndexReplicas ---- */

FX_INDEX_FREE(IndexReplicas)
FX_GETTER(IndexReplicas, faiss::IndexReplicas, int, own_fields,
          o->own_fields)
FX_SETTER(IndexReplicas, faiss::IndexReplicas, int, own_fields,
          o->own_fields = val != 0)

int faiss_IndexReplicas_new_with_options(FaissIndexReplicas** p_index,
                                         idx_t d, int threaded) {
    FX_NOT_NULL(p_index);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_TRY
    *p_index = fx::handle<FaissIndexReplicas>(static_cast<faiss::Index*>(
            new faiss::IndexReplicas(d, threaded != 0)));
    return 0;
    FX_CATCH
}

int faiss_IndexReplicas_new(FaissIndexReplicas** p_index, idx_t d) {
    return faiss_IndexReplicas_new_with_options(p_index, d, 1);
}

int faiss_IndexReplicas_add_replica(FaissIndexReplicas* index,
                                    FaissIndex* replica) {
    FX_CAST(r, faiss::IndexReplicas, index);
    if (int rc = check_child(__func__, r, replica)) return rc;
    for (int i = 0; i < r->count(); i++)
        FX_REQUIRE(r->at(i) != fx::index(replica),
                   "replica was already added");
    FX_TRY
    r->add_replica(fx::index(replica));
    return 0;
    FX_CATCH
}

int faiss_IndexReplicas_remove_replica(FaissIndexReplicas* index,
                                       FaissIndex* replica) {
    FX_CAST(r, faiss::IndexReplicas, index);
    FX_NOT_NULL(replica);
    FX_TRY
    r->remove_replica(fx::index(replica));
    return 0;
    FX_CATCH
}

FaissIndex* faiss_IndexReplicas_at(FaissIndexReplicas* index, int i) {
    FX_CAST_RET(r, faiss::IndexReplicas, index, nullptr);
    FX_REQUIRE_RET(i >= 0 && i < r->count(), nullptr,
                   "replica number %d is outside [0, %d)", i, r->count());
    return fx::handle<FaissIndex>(r->at(i));
}

} // extern "C"
