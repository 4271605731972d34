/* preprocess.c: the image -> model input step, as llama.cpp's mtmd does it for
 * the gemma3 projector: scale to fit image_size x image_size keeping the
 * aspect ratio (Pillow-style separable bilinear resampling in 22-bit fixed
 * point, sizes rounded up), paste at the floor-centred offset on black, then
 * (x/255 - mean) / std per channel into planar floats. Checked against
 * llama.cpp's projector output on a 48x40 image (golden/vision).
 */
#include "vision_int.h"

#include "../../core/core.h"
#include <math.h>
#include <string.h>

#define PREC 22 /* fractional bits of the fixed-point weights (Pillow's PRECISION_BITS) */

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Taps of one axis: for each output index, the first input index, the tap
 * count and ksize fixed-point weights. Returns ksize, or 0 when out of memory. */
static int axis_taps(int in, int out, int **bounds_out, int32_t **w_out) {
    const double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
    const double support = 1.0 * fscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    int *bounds = malloc(sizeof(int) * 2 * (size_t)out);
    int32_t *w = calloc((size_t)out * ksize, sizeof(int32_t));
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (!bounds || !w || !k) {
        free(bounds), free(w), free(k);
        return 0;
    }
    for (int xx = 0; xx < out; xx++) {
        const double center = (xx + 0.5) * scale, ss = 1.0 / fscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize; /* cannot happen; keeps the writes in bounds */
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            k[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < xmax; x++) {
            const double kv = ww != 0.0 ? k[x] / ww : k[x];
            w[(size_t)xx * ksize + x] = kv < 0 ? (int32_t)(-0.5 + kv * (1 << PREC)) : (int32_t)(0.5 + kv * (1 << PREC));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(k);
    *bounds_out = bounds;
    *w_out = w;
    return ksize;
}

static inline uint8_t clip8(int64_t v) {
    v >>= PREC;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

bool cst_image_resize_bilinear(const uint8_t *src, int w, int h, uint8_t *dst, int tw, int th) {
    int *bx = NULL, *by = NULL;
    int32_t *kx = NULL, *ky = NULL;
    uint8_t *tmp = malloc((size_t)tw * h * 3);
    const int ksx = axis_taps(w, tw, &bx, &kx), ksy = ksx ? axis_taps(h, th, &by, &ky) : 0;
    if (!tmp || !ksx || !ksy) {
        free(tmp), free(bx), free(kx), free(by), free(ky);
        return false;
    }
    /* horizontal pass (w x h -> tw x h), then vertical (-> tw x th) */
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < tw; xx++) {
            const uint8_t *s = src + ((size_t)y * w + bx[2 * xx]) * 3;
            const int32_t *k = kx + (size_t)xx * ksx;
            for (int c = 0; c < 3; c++) {
                int64_t acc = 1 << (PREC - 1);
                for (int x = 0; x < bx[2 * xx + 1]; x++) acc += (int64_t)s[x * 3 + c] * k[x];
                tmp[((size_t)y * tw + xx) * 3 + c] = clip8(acc);
            }
        }
    for (int yy = 0; yy < th; yy++)
        for (int xx = 0; xx < tw; xx++) {
            const int32_t *k = ky + (size_t)yy * ksy;
            for (int c = 0; c < 3; c++) {
                int64_t acc = 1 << (PREC - 1);
                for (int y = 0; y < by[2 * yy + 1]; y++)
                    acc += (int64_t)tmp[((size_t)(y + by[2 * yy]) * tw + xx) * 3 + c] * k[y];
                dst[((size_t)yy * tw + xx) * 3 + c] = clip8(acc);
            }
        }
    free(tmp), free(bx), free(kx), free(by), free(ky);
    return true;
}

bool cst_image_resize_pad(const uint8_t *src, int w, int h, uint8_t *dst, int side) {
    if (w == side && h == side) {
        memcpy(dst, src, (size_t)side * side * 3);
        return true;
    }
    const float sw = (float)side / w, sh = (float)side / h, sc = sw < sh ? sw : sh;
    const int nw = CST_MAX(CST_MIN((int)ceilf(w * sc), side), 1);
    const int nh = CST_MAX(CST_MIN((int)ceilf(h * sc), side), 1);
    uint8_t *tmp = malloc((size_t)nw * nh * 3);
    if (!tmp || !cst_image_resize_bilinear(src, w, h, tmp, nw, nh)) {
        free(tmp);
        return false;
    }
    memset(dst, 0, (size_t)side * side * 3);
    const int ox = (side - nw) / 2, oy = (side - nh) / 2;
    for (int y = 0; y < nh; y++)
        memcpy(dst + ((size_t)(y + oy) * side + ox) * 3, tmp + (size_t)y * nw * 3, (size_t)nw * 3);
    free(tmp);
    return true;
}

cst_status cst_vision_preprocess(const cst_vision *v, const cst_image *img, float *out, char *err, size_t errlen) {
    if (!v || !img || !out) {
        cst_errf(err, errlen, "vision: NULL argument");
        return CST_ERR_INVALID_ARG;
    }
    if (!img->rgb || img->width <= 0 || img->height <= 0) {
        cst_errf(err, errlen, "vision: empty image");
        return CST_ERR_INVALID_ARG;
    }
    const cst_vision_hparams *hp = cst_vision_get_hparams(v);
    const int S = hp->image_size;
    uint8_t *sq = malloc((size_t)S * S * 3);
    if (!sq || !cst_image_resize_pad(img->rgb, img->width, img->height, sq, S)) {
        free(sq);
        cst_errf(err, errlen, "vision: out of memory while resizing a %dx%d image", img->width, img->height);
        return CST_ERR_NOMEM;
    }
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < S * S; i++)
            out[(size_t)c * S * S + i] = ((float)sq[(size_t)i * 3 + c] / 255.0f - hp->mean[c]) / hp->std[c];
    free(sq);
    return CST_OK;
}
