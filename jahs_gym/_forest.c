/* Walks compiled XGBoost forests; loaded with ctypes by jahs_gym.predictor.
 *
 * Every tree is laid out so that a node's right child is its left child + 1, and leaves point to
 * themselves with threshold +inf. A walk is then branch-free: i = left[i] + (x[feat[i]] >= thr[i]),
 * repeated depth times (XGBoost's rule: x < threshold goes left). Trees are sorted by depth and
 * padded to groups of 8; a pair of rows walks 8 trees at once, one row 16 (two groups), so that 16 independent
 * load chains overlap. One inlined walk() does all three shapes (2 x 8, 1 x 16 and the odd 1 x 8).
 * Linear bases (metric += x[zidx] @ zcoef) are added by jg_predict_one, and by Python for batches.
 * out (rows x n_out, row-major) must hold the base scores; each tree adds its leaf value to column
 * tree_out[t]. Python loads the exported functions with ctypes; the module's one Python function, predict_row, is
 * the one-row hot path without ctypes' per-call cost.
 */
#include <Python.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    float thr;
    int32_t feat;
    int32_t left;
} node_t;

#define G 8

/* The walk: R rows (row r at x + r * n_feat) through the K trees rooted at rt, depth steps; each tree's leaf value
 * is added to column to[k] of its row's output (o + r * n_out). R and K are compile-time constants at every call, so
 * that idx[] stays in registers and the R x K independent load chains overlap. */
static inline __attribute__((always_inline)) void walk(const int R, const int K, const float *x, int64_t n_feat,
                                                       const node_t *nodes, const float *value, const int32_t *rt,
                                                       const int32_t *to, int32_t depth, double *o, int64_t n_out) {
    int32_t idx[2 * G][2]; /* [tree][row] */
    const float *xr[2] = {x, x + n_feat};
    double *orow[2] = {o, o + n_out};
    for (int k = 0; k < K; ++k)
        for (int r = 0; r < R; ++r) idx[k][r] = rt[k];
    for (int32_t d = 0; d < depth; ++d)
        for (int k = 0; k < K; ++k)
            for (int r = 0; r < R; ++r) {
                const node_t nd = nodes[idx[k][r]];
                idx[k][r] = nd.left + (xr[r][nd.feat] >= nd.thr);
            }
    /* each column's sum in tree order (the same bits as adding to memory tree by tree), kept in a register while
     * consecutive trees feed the same column: no store-to-load round trip per tree (0.6 us of a 9.5 us row, ad hoc) */
    for (int r = 0; r < R; ++r) {
        int32_t m = to[0];
        double acc = orow[r][m];
        for (int k = 0; k < K; ++k) {
            if (to[k] != m) {
                orow[r][m] = acc;
                m = to[k];
                acc = orow[r][m];
            }
            acc += value[idx[k][r]];
        }
        orow[r][m] = acc;
    }
}

static inline int32_t max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

/* One row: two groups (16 trees) at a time, so that 16 independent load chains overlap (1.1-1.3x over 8,
 * ad hoc on one query of the shipped bundle; 24 and 32 were slower). Adjacent groups have about the same
 * depth (trees are sorted by it), and the extra steps of the shallower group stay on its leaves. */
static void walk_row(const float *x, int64_t n_feat, const node_t *nodes, const float *value, const int32_t *roots,
                     const int32_t *group_depth, const int32_t *tree_out, int64_t n_groups, double *o, int64_t n_out) {
    int64_t g = 0;
    for (; g + 1 < n_groups; g += 2)
        walk(1, 2 * G, x, n_feat, nodes, value, roots + g * G, tree_out + g * G,
             max_i32(group_depth[g], group_depth[g + 1]), o, n_out);
    if (g < n_groups) /* an odd group left over */
        walk(1, G, x, n_feat, nodes, value, roots + g * G, tree_out + g * G, group_depth[g], o, n_out);
}

void jg_predict(const float *x, int64_t n_rows, int64_t n_feat, const node_t *nodes, const float *value,
                const int32_t *roots, const int32_t *group_depth, const int32_t *tree_out, int64_t n_groups,
                int64_t n_out, double *out) {
    const int64_t block = 32;
    for (int64_t r0 = 0; r0 < n_rows; r0 += block) {
        const int64_t r1 = r0 + block < n_rows ? r0 + block : n_rows;
        const int64_t r_pairs = r0 + ((r1 - r0) & ~(int64_t)1);
        for (int64_t g = 0; g < n_groups; ++g) /* two rows x 8 trees: 16 independent load chains */
            for (int64_t r = r0; r < r_pairs; r += 2)
                walk(2, G, x + r * n_feat, n_feat, nodes, value, roots + g * G, tree_out + g * G, group_depth[g],
                     out + r * n_out, n_out);
        if (r_pairs < r1) /* an odd row left over: 8 trees x 2 groups */
            walk_row(x + r_pairs * n_feat, n_feat, nodes, value, roots, group_depth, tree_out, n_groups,
                     out + r_pairs * n_out, n_out);
    }
}

typedef struct {
    const float *x;
    int64_t n_rows, n_feat;
    const node_t *nodes;
    const float *value;
    const int32_t *roots, *group_depth, *tree_out;
    int64_t n_groups, n_out;
    double *out;
} job_t;

static void *run_job(void *arg) {
    job_t *j = (job_t *)arg;
    jg_predict(j->x, j->n_rows, j->n_feat, j->nodes, j->value, j->roots, j->group_depth, j->tree_out, j->n_groups,
               j->n_out, j->out);
    return NULL;
}

/* jg_predict with the rows split over n_threads threads (for large batches). */
void jg_predict_mt(const float *x, int64_t n_rows, int64_t n_feat, const node_t *nodes, const float *value,
                   const int32_t *roots, const int32_t *group_depth, const int32_t *tree_out, int64_t n_groups,
                   int64_t n_out, double *out, int64_t n_threads) {
    if (n_threads > 16) n_threads = 16;
    if (n_threads < 2 || n_rows < 2 * n_threads) {
        jg_predict(x, n_rows, n_feat, nodes, value, roots, group_depth, tree_out, n_groups, n_out, out);
        return;
    }
    pthread_t th[16];
    job_t jobs[16];
    int started[16] = {0};
    const int64_t per = (n_rows + n_threads - 1) / n_threads;
    for (int64_t t = 0; t < n_threads; ++t) {
        const int64_t r0 = t * per, r1 = r0 + per < n_rows ? r0 + per : n_rows;
        jobs[t] = (job_t){x + r0 * n_feat, r1 - r0, n_feat, nodes, value, roots, group_depth, tree_out, n_groups,
                          n_out, out + r0 * n_out};
        if (t > 0) started[t] = pthread_create(&th[t], NULL, run_job, &jobs[t]) == 0;
    }
    run_job(&jobs[0]);
    for (int64_t t = 1; t < n_threads; ++t) {
        if (started[t]) pthread_join(th[t], NULL);
        else run_job(&jobs[t]); /* a thread that could not start: do its rows here */
    }
}

/* Inverse transforms (0 none, 1 exp, 2 expm1, 3 percent logistic 100 / (1 + exp(-v))) and clipping to [lo, hi],
 * in place. */
void jg_finish(double *out, int64_t n_rows, int64_t n_out, const int32_t *transform, const double *lo,
               const double *hi) {
    for (int64_t r = 0; r < n_rows; ++r) {
        double *o = out + r * n_out;
        for (int64_t m = 0; m < n_out; ++m) {
            double v = o[m];
            if (transform[m] == 1) v = exp(v);
            else if (transform[m] == 2) v = expm1(v);
            else if (transform[m] == 3) v = 100.0 / (1.0 + exp(-v));
            o[m] = v < lo[m] ? lo[m] : (v > hi[m] ? hi[m] : v);
        }
    }
}

/* One row, start to finish: base scores, every tree, transforms and clipping. raw (NULL: not wanted) gets the
 * outputs in the fitted space, before the inverse transforms and clipping. */
void jg_predict_one(const float *x, int64_t n_feat, const node_t *nodes, const float *value, const int32_t *roots,
                    const int32_t *group_depth, const int32_t *tree_out, int64_t n_groups, int64_t n_out,
                    const double *base, const int32_t *zidx, const double *zcoef, int64_t n_z,
                    const int32_t *transform, const double *lo, const double *hi, double *raw, double *out) {
    for (int64_t m = 0; m < n_out; ++m) out[m] = base[m];
    jg_predict(x, 1, n_feat, nodes, value, roots, group_depth, tree_out, n_groups, n_out, out);
    for (int64_t j = 0; j < n_z; ++j) /* linear bases: out += x[zidx] @ zcoef (n_z x n_out) */
        for (int64_t m = 0; m < n_out; ++m) out[m] += (double)x[zidx[j]] * zcoef[j * n_out + m];
    if (raw)
        for (int64_t m = 0; m < n_out; ++m) raw[m] = out[m];
    jg_finish(out, 1, n_out, transform, lo, hi);
}

/* Observation scaling: scaled[r, k] = clip((raw[r, cols[k]] - lo[k]) / span[k], 0, 1) (NaN stays
 * NaN), n_cols columns a row. */
void jg_scale(const double *raw, int64_t n_rows, int64_t n_out, const int32_t *cols, const double *lo,
              const double *span, int64_t n_cols, double *scaled) {
    for (int64_t r = 0; r < n_rows; ++r)
        for (int64_t k = 0; k < n_cols; ++k) {
            const double v = (raw[r * n_out + cols[k]] - lo[k]) / span[k];
            scaled[r * n_cols + k] = v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
        }
}

/* Bumped whenever an exported signature changes; predictor.py refuses a kernel built from another version. */
int jg_abi(void) { return 4; }

/* predict_row(args: bytes) -> None: jg_predict_one and, where n_scale > 0, jg_scale of its raw outputs, for one row,
 * called from Python without ctypes' per-call conversions (~1 us). args packs a row_args_t: the addresses and sizes
 * of arrays that the caller (jahs_gym.predictor.RowPredictor) owns or keeps alive; private to it. */
typedef struct {
    int64_t x, n_feat, nodes, value, roots, group_depth, tree_out, n_groups, n_out, base, zidx, zcoef, n_z, transform,
        lo, hi, raw, out, scale_cols, scale_lo, scale_span, n_scale, scaled;
} row_args_t;

#define P(T, v) ((T)(intptr_t)(v))

static PyObject *predict_row(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_CheckExact(arg) || PyBytes_GET_SIZE(arg) != (Py_ssize_t)sizeof(row_args_t)) {
        PyErr_Format(PyExc_TypeError, "predict_row takes the %zd packed bytes of a RowPredictor",
                     (Py_ssize_t)sizeof(row_args_t));
        return NULL;
    }
    row_args_t a;
    memcpy(&a, PyBytes_AS_STRING(arg), sizeof a);
    jg_predict_one(P(const float *, a.x), a.n_feat, P(const node_t *, a.nodes), P(const float *, a.value),
                   P(const int32_t *, a.roots), P(const int32_t *, a.group_depth), P(const int32_t *, a.tree_out),
                   a.n_groups, a.n_out, P(const double *, a.base), P(const int32_t *, a.zidx),
                   P(const double *, a.zcoef), a.n_z, P(const int32_t *, a.transform), P(const double *, a.lo),
                   P(const double *, a.hi), P(double *, a.raw), P(double *, a.out));
    if (a.n_scale > 0)
        jg_scale(P(const double *, a.raw), 1, a.n_out, P(const int32_t *, a.scale_cols), P(const double *, a.scale_lo),
                 P(const double *, a.scale_span), a.n_scale, P(double *, a.scaled));
    Py_RETURN_NONE;
}

static PyMethodDef forest_methods[] = {
    {"predict_row", predict_row, METH_O, "One row through a RowPredictor's packed arguments (private)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef forest_module = {PyModuleDef_HEAD_INIT, "_forest", "C forest kernel", -1, forest_methods,
                                           NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit__forest(void) { return PyModule_Create(&forest_module); }
