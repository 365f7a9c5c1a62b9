/* factory.cpp -- index_factory_c.h, clone_index_c.h, and the binary
 * factory/clone extensions of faissx.h. */
#include "core/core.h"

#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexNSG.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/clone_index.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <cctype>
#include <cstdio>
#include <memory>
#include <string>

namespace {

/* faiss 1.7.3's factories accept zero-valued parameters ("PQ0",
 * "IVF0,Flat", "HNSW0", "OPQ0,PQ8", "PQ8x0", "BIVF0", ...) and build
 * indexes that divide by zero or fail an assertion (SIGFPE / abort) when
 * constructed, trained or searched. No factory parameter is meaningful as
 * 0, so a standalone 0 is refused. Returns the offending position or -1. */
long zero_parameter(const char* s) {
    for (const char* p = s; *p;) {
        if (!std::isdigit((unsigned char)*p)) {
            p++;
            continue;
        }
        const char* q = p;
        bool zero = true;
        while (std::isdigit((unsigned char)*q)) zero &= *q++ == '0';
        if (zero) return p - s;
        p = q;
    }
    return -1;
}

/* faiss 1.7.3's clone_index dereferences the graph of an IndexNSG, which
 * is NULL until the index is built (added to): cloning an empty NSG
 * segfaults. Looks through the wrappers clone_index recurses into. */
bool has_unbuilt_nsg(const faiss::Index* ix) {
    if (!ix) return false;
    if (auto nsg = dynamic_cast<const faiss::IndexNSG*>(ix))
        return !nsg->nsg.final_graph;
    if (auto im = dynamic_cast<const faiss::IndexIDMap*>(ix))
        return has_unbuilt_nsg(im->index);
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(ix))
        return has_unbuilt_nsg(pt->index);
    if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(ix))
        return has_unbuilt_nsg(ivf->quantizer);
    if (auto rf = dynamic_cast<const faiss::IndexRefine*>(ix))
        return has_unbuilt_nsg(rf->base_index) ||
               has_unbuilt_nsg(rf->refine_index);
    return false;
}

/* faiss 1.7.3's clone_index turns an IndexHNSWFlat (SQ, PQ...) into a
 * plain IndexHNSW, which searches but cannot be written ("'h != 0'
 * failed"). Indexes holding one are cloned through the serialiser, which
 * keeps the exact type. */
bool has_hnsw(const faiss::Index* ix) {
    if (!ix) return false;
    if (dynamic_cast<const faiss::IndexHNSW*>(ix)) return true;
    if (auto im = dynamic_cast<const faiss::IndexIDMap*>(ix))
        return has_hnsw(im->index);
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(ix))
        return has_hnsw(pt->index);
    if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(ix))
        return has_hnsw(ivf->quantizer);
    if (auto rf = dynamic_cast<const faiss::IndexRefine*>(ix))
        return has_hnsw(rf->base_index) || has_hnsw(rf->refine_index);
    return false;
}

faiss::Index* clone_by_serialising(const faiss::Index* ix) {
    faiss::VectorIOWriter w;
    try {
        faiss::write_index(ix, &w);
    } catch (const faiss::FaissException&) {
        return faiss::clone_index(ix); // not serialisable: faiss's clone
    }
    faiss::VectorIOReader r;
    r.data.swap(w.data);
    return faiss::read_index(&r);
}

} // namespace

extern "C" {

int faiss_index_factory(FaissIndex** p_index, int d, const char* description,
                        FaissMetricType metric) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(description);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    if (int rc = fx::check_metric(__func__, fx::raw_enum(metric))) return rc;
    FX_REQUIRE(description[0] != '\0', "description is empty");
    long z = zero_parameter(description);
    FX_REQUIRE(z < 0, "description '%s': parameter 0 at offset %ld is not "
                      "valid",
               description, z);
    FX_REMOTE_CREATE(p_index, d, description, metric);
    FX_TRY
    *p_index = fx::handle<FaissIndex>(faiss::index_factory(
            d, description, static_cast<faiss::MetricType>(metric)));
    return 0;
    FX_CATCH
}

int faiss_clone_index(const FaissIndex* index, FaissIndex** p_out) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(p_out);
    if (auto r = fx::as_remote(fx::index(index)))
        return fx::remote_clone(__func__, r, p_out);
    FX_REQUIRE(!has_unbuilt_nsg(fx::index(index)),
               "cannot clone an NSG index before it is built (add vectors "
               "first)");
    FX_TRY
    const faiss::Index* ix = fx::index(index);
    *p_out = fx::handle<FaissIndex>(has_hnsw(ix) ? clone_by_serialising(ix)
                                                 : faiss::clone_index(ix));
    return 0;
    FX_CATCH
}

int faiss_index_binary_factory(FaissIndexBinary** p_index, int d,
                               const char* description) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(description);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_REQUIRE(d % 8 == 0, "binary dimension d must be a multiple of 8 "
                           "(got %d)", d);
    FX_REQUIRE(description[0] != '\0', "description is empty");
    long z = zero_parameter(description);
    FX_REQUIRE(z < 0, "description '%s': parameter 0 at offset %ld is not "
                      "valid",
               description, z);
    /* Hash widths, parsed as faiss parses them: faiss does not bound
     * "BHash<b>" (hash keys are 64-bit words), and its check of
     * "BHash<n>x<b>" throws from a constructor that leaks its storage. */
    int nhash = 1, b = 0;
    if (std::sscanf(description, "BHash%dx%d", &nhash, &b) != 2) {
        nhash = 1;
        if (std::sscanf(description, "BHash%d", &b) != 1) b = 0;
    }
    FX_REQUIRE(b <= 64 && (long long)nhash * b <= d,
               "description '%s': %d hash(es) of %d bits (each at most 64, "
               "in total at most d = %d)",
               description, nhash, b, d);
    std::shared_ptr<fx::Conn> conn;
    if (int rc = fx::remote_conn(__func__, &conn)) return rc;
    if (conn)
        return fx::remote_bin_create(__func__, conn, nullptr, d, description,
                                     p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexBinary>(
            faiss::index_binary_factory(d, description));
    return 0;
    FX_CATCH
}

/* faiss 1.7.3 has no binary clone: round-trip through its serialiser, which
 * knows every binary index type. */
int faissx_clone_index_binary(const FaissIndexBinary* index,
                              FaissIndexBinary** p_out) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(p_out);
    if (auto r = fx::as_remote_bin(fx::bindex(index)))
        return fx::remote_bin_clone(__func__, r, p_out);
    FX_TRY
    faiss::VectorIOWriter w;
    faiss::write_index_binary(fx::bindex(index), &w);
    faiss::VectorIOReader r;
    r.data.swap(w.data);
    *p_out = fx::handle<FaissIndexBinary>(faiss::read_index_binary(&r));
    return 0;
    FX_CATCH
}

} // extern "C"
