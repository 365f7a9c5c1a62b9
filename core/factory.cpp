/* factory.cpp -- index_factory_c.h, clone_index_c.h, and the binary
 * factory/clone extensions of faissx.h. */
#include "core/core.h"

#include <faiss/clone_index.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

extern "C" {

int faiss_index_factory(FaissIndex** p_index, int d, const char* description,
                        FaissMetricType metric) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(description);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    if (int rc = fx::check_metric(__func__, fx::raw_enum(metric))) return rc;
    FX_REQUIRE(description[0] != '\0', "description is empty");
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
    FX_TRY
    *p_out = fx::handle<FaissIndex>(faiss::clone_index(fx::index(index)));
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
