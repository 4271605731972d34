/* image.c: image decoding from memory into RGB8 (PNG/JPEG/GIF with stb_image,
 * WebP with libwebp), MIME sniffing from magic bytes, and limits: the header's
 * dimensions are checked before decoding, and stb_image's allocations go
 * through a per-thread byte budget derived from those dimensions, so that a
 * small file cannot inflate into gigabytes (zlib bombs inside a PNG).
 */
#include "vision_int.h"

#include "../../core/core.h"
#include <limits.h>
#include <string.h>
#include <webp/decode.h>

/* ---- sniffing ----------------------------------------------------------- */

typedef enum { FMT_NONE, FMT_PNG, FMT_JPEG, FMT_GIF, FMT_WEBP } img_fmt;

static img_fmt sniff(const uint8_t *b, size_t n) {
    if (!b) return FMT_NONE;
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return FMT_PNG;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return FMT_JPEG;
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return FMT_GIF;
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return FMT_WEBP;
    return FMT_NONE;
}

static const char *fmt_mime(img_fmt f) {
    switch (f) {
    case FMT_PNG: return "image/png";
    case FMT_JPEG: return "image/jpeg";
    case FMT_GIF: return "image/gif";
    case FMT_WEBP: return "image/webp";
    default: return NULL;
    }
}

static const char *fmt_name(img_fmt f) {
    switch (f) {
    case FMT_PNG: return "PNG";
    case FMT_JPEG: return "JPEG";
    case FMT_GIF: return "GIF";
    case FMT_WEBP: return "WebP";
    default: return "image";
    }
}

const char *cst_image_sniff_mime(const void *bytes, size_t len) { return fmt_mime(sniff(bytes, len)); }

cst_image_limits cst_image_default_limits(void) {
    return (cst_image_limits){.max_width = 8192, .max_height = 8192, .max_pixels = 32 * 1024 * 1024};
}

/* ---- header ------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint8_t at(const uint8_t *b, size_t n, size_t i) { return i < n ? b[i] : 0; } /* stb reads 0 past the end */

/* Huffman tables of one DHT segment as stb_image reads them. stb 2.27 writes
 * one entry per code into 257-byte arrays without checking that the 16 counts
 * sum to at most 256, so such a table must never reach it. */
static const char *jpeg_check_dht(const uint8_t *b, size_t n, size_t p, long L) {
    while (L > 0) {
        const uint8_t q = at(b, n, p++);
        if (q >> 4 > 1 || (q & 15) > 3) return "bad Huffman table header";
        long cnt = 0;
        for (int i = 0; i < 16; i++) cnt += at(b, n, p++);
        if (cnt > 256) return "Huffman table with more than 256 codes";
        p += (size_t)cnt;
        L -= 17 + cnt;
    }
    return NULL;
}

/* Walks every JPEG marker the way stb_image does (junk between markers
 * skipped, entropy-coded data skipped up to the next marker): the first frame
 * header gives the dimensions, and every Huffman table is checked. NULL on
 * success, else what is wrong. */
static const char *jpeg_scan(const uint8_t *b, size_t n, int *w, int *h) {
    bool have_sof = false;
    size_t i = 2; /* after SOI */
    while (i < n) {
        if (b[i] != 0xFF) { /* junk: stb skips it byte by byte */
            i++;
            continue;
        }
        while (i < n && b[i] == 0xFF) i++; /* fill bytes */
        if (i >= n) break;
        const uint8_t m = b[i++];
        if (m == 0xD9) break;                                              /* EOI */
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) continue; /* no length */
        if (i + 2 > n) break;
        const size_t len = (size_t)b[i] << 8 | b[i + 1];
        if (len < 2) return "bad segment length";
        if (m == 0xC4) {
            const char *why = jpeg_check_dht(b, n, i + 2, (long)len - 2);
            if (why) return why;
        } else if (m >= 0xC0 && m <= 0xCF && m != 0xC8 && m != 0xCC && !have_sof) {
            if (len < 8 || i + 7 > n) return "truncated frame header";
            *h = b[i + 3] << 8 | b[i + 4];
            *w = b[i + 5] << 8 | b[i + 6];
            have_sof = true;
        }
        i += len;
        if (m == 0xDA) { /* entropy-coded data up to the next marker (FF 00 is a stuffed byte) */
            while (i < n) {
                if (b[i] != 0xFF) {
                    i++;
                    continue;
                }
                size_t k = i + 1;
                while (k < n && b[k] == 0xFF) k++;
                if (k < n && (b[k] == 0x00 || (b[k] >= 0xD0 && b[k] <= 0xD7))) {
                    i = k + 1;
                    continue;
                }
                break; /* i is at the marker's first FF */
            }
        }
    }
    return have_sof ? NULL : "no frame header";
}

static const char *webp_status_str(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data (truncated)";
    default: return "error";
    }
}

/* Type and dimensions from the header alone. */
static cst_status probe(const uint8_t *b, size_t n, img_fmt *fmt, int *w, int *h, bool *animated, char *err,
                        size_t errlen) {
    *fmt = sniff(b, n);
    *w = *h = 0;
    *animated = false;
    if (*fmt == FMT_NONE) {
        cst_errf(err, errlen, "unrecognised image data (not PNG, JPEG, GIF or WebP)");
        return n ? CST_ERR_UNSUPPORTED : CST_ERR_BAD_FORMAT;
    }
    if (*fmt == FMT_WEBP) {
        WebPBitstreamFeatures ft;
        VP8StatusCode s = WebPGetFeatures(b, n, &ft);
        if (s != VP8_STATUS_OK) {
            cst_errf(err, errlen, "WebP: bad header: %s", webp_status_str(s));
            return CST_ERR_BAD_FORMAT;
        }
        *w = ft.width;
        *h = ft.height;
        *animated = ft.has_animation != 0;
        return CST_OK;
    }
    if (n > INT_MAX) {
        cst_errf(err, errlen, "%s: file too large (%zu bytes)", fmt_name(*fmt), n);
        return CST_ERR_INVALID_ARG;
    }
    /* Dimensions from our own header parsers, so that the limits apply before
     * stb_image allocates anything (it would refuse some sizes itself with a
     * less useful message). */
    const char *why = NULL;
    if (*fmt == FMT_PNG) {
        /* signature, then the IHDR chunk: length 13, "IHDR", width, height (big-endian) */
        if (n < 8 + 8 + 13) why = "truncated header";
        else if (be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4)) why = "first chunk is not IHDR";
        else if (be32(b + 16) > INT_MAX || be32(b + 20) > INT_MAX) why = "dimensions out of range";
        else {
            *w = (int)be32(b + 16);
            *h = (int)be32(b + 20);
        }
    } else if (*fmt == FMT_GIF) {
        /* logical screen descriptor after the 6-byte signature (little-endian) */
        if (n < 13) why = "truncated header";
        else {
            *w = b[6] | b[7] << 8;
            *h = b[8] | b[9] << 8;
        }
    } else {
        why = jpeg_scan(b, n, w, h);
    }
    if (why) {
        cst_errf(err, errlen, "%s: bad header: %s", fmt_name(*fmt), why);
        *w = *h = 0;
        return CST_ERR_BAD_FORMAT;
    }
    return CST_OK;
}

cst_status cst_image_probe(const void *bytes, size_t len, const char **mime, int *width, int *height, char *err,
                           size_t errlen) {
    img_fmt f;
    int w, h;
    bool anim;
    cst_status st = probe(bytes, len, &f, &w, &h, &anim, err, errlen);
    if (mime) *mime = st == CST_OK ? fmt_mime(f) : NULL;
    if (width) *width = w;
    if (height) *height = h;
    return st;
}

/* ---- decode ------------------------------------------------------------- */

cst_status cst_image_decode(const void *bytes, size_t len, const cst_image_limits *limits, cst_image *out,
                            char *err, size_t errlen) {
    if (!out) {
        cst_errf(err, errlen, "no output image");
        return CST_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    if (!bytes && len) {
        cst_errf(err, errlen, "no image data");
        return CST_ERR_INVALID_ARG;
    }
    const cst_image_limits lim = limits ? *limits : cst_image_default_limits();
    const uint8_t *b = bytes;
    img_fmt f;
    int w, h;
    bool anim;
    cst_status st = probe(b, len, &f, &w, &h, &anim, err, errlen);
    if (st) return st;
    if (w <= 0 || h <= 0) {
        cst_errf(err, errlen, "%s: empty image (%dx%d)", fmt_name(f), w, h);
        return CST_ERR_BAD_FORMAT;
    }
    if (w > lim.max_width || h > lim.max_height || (int64_t)w * h > lim.max_pixels) {
        cst_errf(err, errlen, "%s: %dx%d exceeds the limits (%dx%d, %lld pixels)", fmt_name(f), w, h,
                 lim.max_width, lim.max_height, (long long)lim.max_pixels);
        return CST_ERR_INVALID_ARG;
    }
    if (anim) {
        cst_errf(err, errlen, "WebP: animated images are not supported");
        return CST_ERR_UNSUPPORTED;
    }
    const size_t npx = (size_t)w * (size_t)h;
    uint8_t *rgb = malloc(npx * 3);
    if (!rgb) {
        cst_errf(err, errlen, "%s: cannot allocate %dx%d pixels", fmt_name(f), w, h);
        return CST_ERR_NOMEM;
    }
    if (f == FMT_WEBP) {
        if (!WebPDecodeRGBInto(b, len, rgb, npx * 3, w * 3)) {
            WebPBitstreamFeatures ft;
            VP8StatusCode s = WebPGetFeatures(b, len, &ft);
            cst_errf(err, errlen, "WebP: corrupt or truncated data%s%s", s != VP8_STATUS_OK ? ": " : "",
                     s != VP8_STATUS_OK ? webp_status_str(s) : "");
            free(rgb);
            return CST_ERR_BAD_FORMAT;
        }
    } else {
        /* Generous for every stb path (16-bit RGBA PNG, progressive JPEG, GIF
         * canvas + history) yet proportional to the declared size. */
        const size_t budget = 32 * npx + 2 * len + (1u << 20);
        int dw = 0, dh = 0;
        const char *why = NULL;
        uint8_t *px = cst_stb_decode_rgb(b, len, budget, &dw, &dh, &why);
        if (!px) {
            bool mem = why && (!strcmp(why, "outofmem") || !strcmp(why, "Out of memory"));
            cst_errf(err, errlen, "%s: %s%s", fmt_name(f), mem ? "decoding needs more memory than allowed: " :
                     "corrupt or truncated data: ", why ? why : "decode failed");
            free(rgb);
            return mem ? CST_ERR_INVALID_ARG : CST_ERR_BAD_FORMAT;
        }
        if (dw != w || dh != h) {
            cst_errf(err, errlen, "%s: decoded size %dx%d differs from header %dx%d", fmt_name(f), dw, dh, w, h);
            cst_stb_free(px);
            free(rgb);
            return CST_ERR_BAD_FORMAT;
        }
        memcpy(rgb, px, npx * 3);
        cst_stb_free(px);
    }
    out->width = w;
    out->height = h;
    out->rgb = rgb;
    return CST_OK;
}

void cst_image_free(cst_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}
