/* oracle_transforms.cpp -- faiss C++ references behind oracle_transforms.h. */
#include "oracle_transforms.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/VectorTransform.h>

#include <memory>
#include <string>

static thread_local std::string vt_err;

extern "C" const char* oracle_vt_error(void) {
    return vt_err.c_str();
}

static faiss::VectorTransform* make_vt(const OVtSpec* s) {
    switch (s->kind) {
    case OVT_RR:
        return new faiss::RandomRotationMatrix(s->d_in, s->d_out);
    case OVT_PCA:
        return new faiss::PCAMatrix(s->d_in, s->d_out, s->f, s->i != 0);
    case OVT_ITQM:
        return new faiss::ITQMatrix(s->d_in);
    case OVT_ITQT:
        return new faiss::ITQTransform(s->d_in, s->d_out, s->i != 0);
    case OVT_OPQ: {
        auto o = new faiss::OPQMatrix(s->d_in, s->i, s->d_out);
        if (s->niter > 0) o->niter = s->niter;
        if (s->niter_pq > 0) o->niter_pq = s->niter_pq;
        return o;
    }
    case OVT_REMAP:
        return new faiss::RemapDimensionsTransform(s->d_in, s->d_out,
                                                   s->i != 0);
    case OVT_NORM:
        return new faiss::NormalizationTransform(s->d_in, s->f);
    case OVT_CENTER:
        return new faiss::CenteringTransform(s->d_in);
    }
    throw std::runtime_error("unknown transform kind");
}

extern "C" int oracle_vt_run(const OVtSpec* s, idx_t nt, const float* xt,
                             int set_orthonormal, idx_t n, const float* x,
                             float* y, float* rev, float* tt,
                             OVtInfo* info) {
    try {
        std::unique_ptr<faiss::VectorTransform> t(make_vt(s));
        info->trained_at_birth = t->is_trained;
        if (nt > 0) t->train(nt, xt);
        auto lt = dynamic_cast<faiss::LinearTransform*>(t.get());
        if (lt && set_orthonormal) lt->set_is_orthonormal();
        info->d_in = t->d_in;
        info->d_out = t->d_out;
        info->is_trained = t->is_trained;
        info->is_linear = lt != nullptr;
        info->have_bias = lt ? lt->have_bias : 0;
        info->is_orthonormal = lt ? lt->is_orthonormal : 0;
        t->apply_noalloc(n, x, y);
        info->rev_ok = 0;
        if (rev) {
            try {
                t->reverse_transform(n, y, rev);
                info->rev_ok = 1;
            } catch (const std::exception&) {
            }
        }
        info->tt_ok = 0;
        if (tt && lt) {
            try {
                lt->transform_transpose(n, y, tt);
                info->tt_ok = 1;
            } catch (const std::exception&) {
            }
        }
        return 0;
    } catch (const std::exception& e) {
        vt_err = e.what();
        return -1;
    }
}

extern "C" int oracle_pretransform_search(const OVtSpec* specs, int nspecs,
                                          int metric, idx_t nt,
                                          const float* xt, idx_t nb,
                                          const float* xb, idx_t nq,
                                          const float* xq, idx_t k, float* D,
                                          idx_t* I) {
    try {
        int dout = specs[nspecs - 1].d_out;
        if (specs[nspecs - 1].kind == OVT_OPQ && dout == -1)
            dout = specs[nspecs - 1].d_in;
        auto flat = new faiss::IndexFlat(
                dout, static_cast<faiss::MetricType>(metric));
        faiss::IndexPreTransform pt(make_vt(&specs[nspecs - 1]), flat);
        pt.own_fields = true;
        for (int i = nspecs - 2; i >= 0; i--)
            pt.prepend_transform(make_vt(&specs[i]));
        if (nt > 0) pt.train(nt, xt);
        pt.add(nb, xb);
        pt.search(nq, xq, k, D, I);
        return 0;
    } catch (const std::exception& e) {
        vt_err = e.what();
        return -1;
    }
}

extern "C" int oracle_opq_defaults(int d, int M, int* niter, int* niter_pq,
                                   int* verbose) {
    try {
        faiss::OPQMatrix o(d, M);
        *niter = o.niter;
        *niter_pq = o.niter_pq;
        *verbose = o.verbose;
        return 0;
    } catch (const std::exception& e) {
        vt_err = e.what();
        return -1;
    }
}
