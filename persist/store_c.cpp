/* store_c.cpp -- faissx_store_* (faissx.h): the C skin over persist/store. */
#include "core/core.h"
#include "persist/store.h"

#include <cstdlib>
#include <cstring>

static_assert((int)FAISSX_SYNC_ALWAYS == fx::wal::SYNC_ALWAYS &&
                      (int)FAISSX_SYNC_INTERVAL == fx::wal::SYNC_INTERVAL &&
                      (int)FAISSX_SYNC_NONE == fx::wal::SYNC_NONE,
              "C and C++ sync policies must agree");

struct FaissxStore {
    fx::store::Store* s;
};

extern "C" {

void faissx_store_options_init(FaissxStoreOptions* opts) {
    if (!opts) return;
    std::memset(opts, 0, sizeof *opts);
    fx::store::Options d;
    opts->sync = (FaissxSyncPolicy)d.sync;
    opts->interval_ms = d.interval_ms;
    opts->snapshot_log_bytes = d.snapshot_log_bytes;
    opts->repair = d.repair;
}

int faissx_store_open(FaissxStore** out, const char* dir,
                      const FaissxStoreOptions* opts) {
    FX_NOT_NULL(out);
    FX_NOT_NULL(dir);
    FX_REQUIRE(dir[0] != '\0', "argument 'dir' is empty");
    fx::store::Options o;
    if (opts) {
        // Read as an int: a C caller may store any value in the enum field,
        // and loading an out-of-range value as the C++ enum is undefined.
        int sync;
        static_assert(sizeof opts->sync == sizeof sync, "enum is int-sized");
        std::memcpy(&sync, &opts->sync, sizeof sync);
        FX_REQUIRE(sync == FAISSX_SYNC_ALWAYS || sync == FAISSX_SYNC_INTERVAL ||
                           sync == FAISSX_SYNC_NONE,
                   "opts->sync: unknown sync policy %d", sync);
        FX_REQUIRE(sync != FAISSX_SYNC_INTERVAL || opts->interval_ms > 0,
                   "opts->interval_ms must be > 0 (got %d)", opts->interval_ms);
        o.sync = (fx::wal::Sync)sync;
        o.interval_ms = opts->interval_ms;
        o.snapshot_log_bytes = opts->snapshot_log_bytes;
        o.repair = opts->repair != 0;
    }
    FX_TRY
    auto h = new FaissxStore();
    try {
        h->s = fx::store::open(dir, o);
    } catch (...) {
        delete h;
        throw;
    }
    *out = h;
    return 0;
    FX_CATCH
}

void faissx_store_close(FaissxStore* store) {
    if (!store) return;
    try {
        fx::store::close(store->s);
    } catch (...) {
        (void)fx::handle_exception(__func__);
    }
    delete store;
}

int faissx_store_create_index(FaissxStore* store, const char* name, int d,
                              const char* description, FaissMetricType metric,
                              FaissIndex** out) {
    FX_NOT_NULL(store);
    FX_NOT_NULL(name);
    FX_NOT_NULL(description);
    FX_NOT_NULL(out);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    if (int rc = fx::check_metric(__func__, metric)) return rc;
    FX_TRY
    *out = fx::handle<FaissIndex>(
            fx::store::create_index(store->s, name, d, description, metric));
    return 0;
    FX_CATCH
}

int faissx_store_open_index(FaissxStore* store, const char* name,
                            FaissIndex** out) {
    FX_NOT_NULL(store);
    FX_NOT_NULL(name);
    FX_NOT_NULL(out);
    FX_TRY
    *out = fx::handle<FaissIndex>(fx::store::open_index(store->s, name));
    return 0;
    FX_CATCH
}

int faissx_store_create_index_binary(FaissxStore* store, const char* name,
                                     int d, const char* description,
                                     FaissIndexBinary** out) {
    FX_NOT_NULL(store);
    FX_NOT_NULL(name);
    FX_NOT_NULL(description);
    FX_NOT_NULL(out);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_REQUIRE(d % 8 == 0, "binary dimension d must be a multiple of 8 "
                           "(got %d)", d);
    FX_TRY
    *out = fx::handle<FaissIndexBinary>(
            fx::store::create_index_binary(store->s, name, d, description));
    return 0;
    FX_CATCH
}

int faissx_store_open_index_binary(FaissxStore* store, const char* name,
                                   FaissIndexBinary** out) {
    FX_NOT_NULL(store);
    FX_NOT_NULL(name);
    FX_NOT_NULL(out);
    FX_TRY
    *out = fx::handle<FaissIndexBinary>(
            fx::store::open_index_binary(store->s, name));
    return 0;
    FX_CATCH
}

int faissx_index_binary_is_stored(const FaissIndexBinary* index) {
    return index && fx::store::is_stored(fx::bindex(index));
}

int faissx_store_set_param_binary(FaissIndexBinary* index, const char* name,
                                  double value) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(name);
    FX_REQUIRE(fx::store::is_stored(fx::bindex(index)),
               "argument 'index' is not a binary store handle");
    FX_TRY
    fx::store::set_param(fx::bindex(index), name, value);
    return 0;
    FX_CATCH
}

void faissx_store_list_free(char** names, size_t count) {
    if (!names) return;
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
}

int faissx_store_list(FaissxStore* store, char*** names, size_t* count) {
    FX_NOT_NULL(store);
    FX_NOT_NULL(names);
    FX_NOT_NULL(count);
    FX_TRY
    std::vector<std::string> v = fx::store::list(store->s);
    char** out = static_cast<char**>(calloc(v.size() + 1, sizeof(char*)));
    if (!out) throw std::bad_alloc();
    for (size_t i = 0; i < v.size(); i++) {
        out[i] = strdup(v[i].c_str());
        if (!out[i]) {
            faissx_store_list_free(out, i);
            throw std::bad_alloc();
        }
    }
    *names = out;
    *count = v.size();
    return 0;
    FX_CATCH
}

int faissx_store_drop(FaissxStore* store, const char* name) {
    FX_NOT_NULL(store);
    FX_NOT_NULL(name);
    FX_TRY
    fx::store::drop(store->s, name);
    return 0;
    FX_CATCH
}

int faissx_store_checkpoint(FaissxStore* store, const char* name) {
    FX_NOT_NULL(store);
    FX_TRY
    fx::store::checkpoint(store->s, name);
    return 0;
    FX_CATCH
}

int faissx_store_report(FaissxStore* store, char** text) {
    FX_NOT_NULL(store);
    FX_NOT_NULL(text);
    FX_TRY
    std::string r = fx::store::report(store->s);
    char* t = strdup(r.c_str());
    if (!t) throw std::bad_alloc();
    *text = t;
    return 0;
    FX_CATCH
}

int faissx_index_is_stored(const FaissIndex* index) {
    return index && fx::store::is_stored(fx::index(index));
}

int faissx_store_set_param(FaissIndex* index, const char* name, double value) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(name);
    FX_REQUIRE(fx::store::is_stored(fx::index(index)),
               "argument 'index' is not a store handle");
    FX_TRY
    fx::store::set_param(fx::index(index), name, value);
    return 0;
    FX_CATCH
}

} // extern "C"
