/* Walks compiled XGBoost forests; loaded with ctypes by jahs_gym.predictor.
 *
 * Nodes of all trees live in flat arrays. feat[i] < 0 marks a leaf whose value is value[i].
 * Inner node i sends a row left when x[feat[i]] < thr[i] (XGBoost's rule, float32 compare).
 * out (rows x n_out, row-major) must hold the base scores; each tree adds its leaf to column tree_out[t].
 * The module init below only lets setuptools build this as an extension; Python never imports it.
 */
#include <Python.h>
#include <stdint.h>

void jg_predict(const float *x, int64_t n_rows, int64_t n_feat, const int32_t *feat, const float *thr,
                const int32_t *left, const int32_t *right, const double *value, const int64_t *roots,
                const int32_t *tree_out, int64_t n_trees, int64_t n_out, double *out) {
    const int64_t block = 64;
    for (int64_t r0 = 0; r0 < n_rows; r0 += block) {
        int64_t r1 = r0 + block < n_rows ? r0 + block : n_rows;
        for (int64_t t = 0; t < n_trees; ++t) {
            const int64_t root = roots[t];
            const int64_t col = tree_out[t];
            for (int64_t r = r0; r < r1; ++r) {
                const float *xr = x + r * n_feat;
                int64_t i = root;
                while (feat[i] >= 0) i = xr[feat[i]] < thr[i] ? left[i] : right[i];
                out[r * n_out + col] += value[i];
            }
        }
    }
}

static struct PyModuleDef forest_module = {PyModuleDef_HEAD_INIT, "_forest", "C forest kernel (ctypes)", -1, NULL};
PyMODINIT_FUNC PyInit__forest(void) { return PyModule_Create(&forest_module); }
