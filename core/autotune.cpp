/* autotune.cpp -- AutoTune_c.h: ParameterSpace and ParameterRange. */
#include "core/core.h"
#include "persist/store.h"

#include <faiss/AutoTune.h>

#include <sstream>
#include <string>

#include <cstring>

namespace {
inline faiss::ParameterSpace* ps(FaissParameterSpace* p) {
    return reinterpret_cast<faiss::ParameterSpace*>(p);
}
inline const faiss::ParameterSpace* ps(const FaissParameterSpace* p) {
    return reinterpret_cast<const faiss::ParameterSpace*>(p);
}
/* Calls set(name, value) for each "name=value" of a comma-separated list
 * (for indexes faiss's own parser cannot reach: remote and store
 * handles). Returns 0 or an error code. */
template <class F>
int each_assignment(const char* func, const char* params, F set) {
    std::stringstream ss(params);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        size_t eq = item.find('=');
        if (eq == std::string::npos || eq == 0)
            return fx::fail(FAISSX_E_INVALID, func,
                            "expected name=value, got '%s'", item.c_str());
        char* end = nullptr;
        std::string val = item.substr(eq + 1);
        double v = strtod(val.c_str(), &end);
        if (!end || *end != '\0' || val.empty())
            return fx::fail(FAISSX_E_INVALID, func, "bad value in '%s'",
                            item.c_str());
        set(item.substr(0, eq).c_str(), v);
    }
    return 0;
}
} // namespace

extern "C" {

const char* faiss_ParameterRange_name(const FaissParameterRange* r) {
    FX_REQUIRE_RET(r, nullptr, "range is NULL");
    return reinterpret_cast<const faiss::ParameterRange*>(r)->name.c_str();
}

void faiss_ParameterRange_values(FaissParameterRange* r, double** p_values,
                                 size_t* p_size) {
    if (!r) {
        fx::note_error(FAISSX_E_INVALID, __func__, "range is NULL");
        if (p_values) *p_values = nullptr;
        if (p_size) *p_size = 0;
        return;
    }
    auto& v = reinterpret_cast<faiss::ParameterRange*>(r)->values;
    if (p_values) *p_values = v.data();
    if (p_size) *p_size = v.size();
}

void faiss_ParameterSpace_free(FaissParameterSpace* obj) {
    delete ps(obj);
}

int faiss_ParameterSpace_new(FaissParameterSpace** space) {
    FX_NOT_NULL(space);
    FX_TRY
    *space = reinterpret_cast<FaissParameterSpace*>(new faiss::ParameterSpace());
    return 0;
    FX_CATCH
}

size_t faiss_ParameterSpace_n_combinations(const FaissParameterSpace* space) {
    FX_REQUIRE_RET(space, 0, "space is NULL");
    FX_TRY
    return ps(space)->n_combinations();
    FX_CATCH_RET(0)
}

int faiss_ParameterSpace_combination_name(const FaissParameterSpace* space,
                                          size_t cno, char* char_buffer,
                                          size_t size) {
    FX_NOT_NULL(space);
    FX_NOT_NULL(char_buffer);
    FX_REQUIRE(size > 0, "buffer size is 0");
    FX_TRY
    size_t n = ps(space)->n_combinations();
    FX_REQUIRE(cno < n, "combination %zu is outside [0, %zu)", cno, n);
    std::string name = ps(space)->combination_name(cno);
    size_t len = name.size() < size - 1 ? name.size() : size - 1;
    std::memcpy(char_buffer, name.data(), len);
    char_buffer[len] = '\0';
    FX_REQUIRE(name.size() < size,
               "buffer of %zu bytes too small for the name (%zu bytes); "
               "truncated",
               size, name.size() + 1);
    return 0;
    FX_CATCH
}

int faiss_ParameterSpace_set_index_parameters(const FaissParameterSpace* space,
                                              FaissIndex* index,
                                              const char* params) {
    FX_NOT_NULL(space);
    FX_NOT_NULL(index);
    FX_NOT_NULL(params);
    FX_TRY
    if (auto r = fx::as_remote(fx::index(index))) {
        // "nprobe=16,efSearch=64": each assignment travels separately.
        return each_assignment(__func__, params, [&](const char* n, double v) {
            r->set_param(n, v);
        });
    }
    if (fx::store::is_stored(fx::index(index))) {
        // Each assignment is logged separately, durable when it returns.
        return each_assignment(__func__, params, [&](const char* n, double v) {
            fx::store::set_param(fx::index(index), n, v);
        });
    }
    ps(space)->set_index_parameters(fx::index(index), params);
    return 0;
    FX_CATCH
}

int faiss_ParameterSpace_set_index_parameters_cno(
        const FaissParameterSpace* space, FaissIndex* index, size_t cno) {
    FX_NOT_NULL(space);
    FX_NOT_NULL(index);
    FX_TRY
    size_t n = ps(space)->n_combinations();
    FX_REQUIRE(cno < n, "combination %zu is outside [0, %zu)", cno, n);
    if (fx::as_remote(fx::index(index)) ||
        fx::store::is_stored(fx::index(index))) {
        std::string name = ps(space)->combination_name(cno);
        return faiss_ParameterSpace_set_index_parameters(space, index,
                                                         name.c_str());
    }
    ps(space)->set_index_parameters(fx::index(index), cno);
    return 0;
    FX_CATCH
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace* space,
                                             FaissIndex* index,
                                             const char* name, double value) {
    FX_NOT_NULL(space);
    FX_NOT_NULL(index);
    FX_NOT_NULL(name);
    FX_REQUIRE(!std::isnan(value), "value of '%s' is NaN", name);
    FX_TRY
    if (auto r = fx::as_remote(fx::index(index))) {
        r->set_param(name, value);
        return 0;
    }
    if (fx::store::is_stored(fx::index(index))) {
        fx::store::set_param(fx::index(index), name, value); // logged
        return 0;
    }
    ps(space)->set_index_parameter(fx::index(index), name, value);
    return 0;
    FX_CATCH
}

void faiss_ParameterSpace_display(const FaissParameterSpace* space) {
    FX_REQUIRE_RET(space, , "space is NULL");
    FX_TRY
    ps(space)->display();
    FX_CATCH_RET()
}

int faiss_ParameterSpace_add_range(FaissParameterSpace* space,
                                   const char* name,
                                   FaissParameterRange** p_range) {
    FX_NOT_NULL(space);
    FX_NOT_NULL(name);
    FX_TRY
    faiss::ParameterRange& r = ps(space)->add_range(name);
    if (p_range) *p_range = reinterpret_cast<FaissParameterRange*>(&r);
    return 0;
    FX_CATCH
}

} // extern "C"

extern "C" int faissx_ParameterSpace_initialize(FaissParameterSpace* space,
                                                const FaissIndex* index) {
    FX_NOT_NULL(space);
    FX_NOT_NULL(index);
    if (fx::as_remote(fx::index(index)))
        return fx::fail(FAISSX_E_UNSUPPORTED, __func__,
                        "cannot enumerate the parameters of a remote index");
    FX_TRY
    ps(space)->initialize(fx::index(index));
    return 0;
    FX_CATCH
}
