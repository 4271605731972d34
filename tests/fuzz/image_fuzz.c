/* image_fuzz.c: libFuzzer target for image decoding (PNG/JPEG/GIF through
 * stb_image, WebP through libwebp). The input is image bytes: sniffing,
 * probing and cst_image_decode with small limits must either fail with a
 * message and a zeroed image or give an image within the limits whose every
 * pixel is readable. With IMAGE_FUZZ_WRITE_SEEDS=DIR it instead writes tiny
 * seed images (JPEG grey/colour, PNG RGBA/grey, GIF still/animated with
 * transparency, WebP lossy/lossless) and exits; scripts/fuzz.sh adds the
 * golden PNGs.
 */
#include "engine/vision/vision.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/encode.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
/* the encoder only writes seeds; it shifts signed ints, which UBSan flags */
#pragma clang attribute push(__attribute__((no_sanitize("undefined"))), apply_to = function)
#include <stb/stb_image_write.h>
#pragma clang attribute pop
#pragma GCC diagnostic pop

#define LIM_SIDE 1024
#define LIM_PIXELS (1 << 18)

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1); /* exact size: overreads are caught */
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    const char *sniffed = cst_image_sniff_mime(buf, size);
    const char *mime = NULL;
    int w = -1, h = -1;
    char err[256] = "";
    cst_status pst = cst_image_probe(buf, size, &mime, &w, &h, err, sizeof err);
    if (pst == CST_OK && (!mime || !sniffed || strcmp(mime, sniffed))) __builtin_trap();
    if (pst != CST_OK && (mime || !err[0])) __builtin_trap();

    cst_image_limits lim = {.max_width = LIM_SIDE, .max_height = LIM_SIDE, .max_pixels = LIM_PIXELS};
    cst_image img;
    memset(&img, 0x5a, sizeof img);
    err[0] = 0;
    cst_status st = cst_image_decode(buf, size, &lim, &img, err, sizeof err);
    if (st != CST_OK) {
        if (img.rgb || img.width || img.height || !err[0]) __builtin_trap();
    } else {
        if (pst != CST_OK || img.width != w || img.height != h) __builtin_trap(); /* decode agrees with probe */
        if (img.width < 1 || img.height < 1 || img.width > LIM_SIDE || img.height > LIM_SIDE ||
            (int64_t)img.width * img.height > LIM_PIXELS || !img.rgb)
            __builtin_trap();
        uint64_t s = 0;
        const size_t n = (size_t)img.width * img.height * 3;
        for (size_t i = 0; i < n; i++) s += img.rgb[i];
        sink += s;
    }
    cst_image_free(&img);
    if (img.rgb || img.width || img.height) __builtin_trap();
    free(buf);
    return 0;
}

/* ---- seed corpus -------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put1(bytes *b, uint8_t c) { put(b, &c, 1); }
static void put_le16(bytes *b, unsigned v) {
    put1(b, (uint8_t)(v & 255));
    put1(b, (uint8_t)(v >> 8));
}

static void stb_sink(void *ctx, void *d, int n) { put(ctx, d, (size_t)n); }

static int save(const char *dir, const char *name, const void *d, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "image_fuzz: cannot write %s\n", path);
        return 1;
    }
    size_t w = fwrite(d, 1, n, f);
    return (fclose(f) != 0 || w != n) ? 1 : 0;
}

/* GIF image data for w*h pixels of 2-bit colour indexes: LZW with minimum
 * code size 2 and a clear code before every two literals, so that the code
 * size stays at 3 bits (valid for every decoder, no compression). */
static void gif_pixels(bytes *b, const uint8_t *idx, int npx) {
    bytes lzw = {0};
    uint32_t acc = 0;
    int bits = 0;
#define EMIT(code)                                       \
    do {                                                 \
        acc |= (uint32_t)(code) << bits;                 \
        bits += 3;                                       \
        while (bits >= 8) {                              \
            put1(&lzw, (uint8_t)(acc & 255));            \
            acc >>= 8;                                   \
            bits -= 8;                                   \
        }                                                \
    } while (0)
    for (int i = 0; i < npx; i++) {
        if (i % 2 == 0) EMIT(4); /* clear */
        EMIT(idx[i] & 3);
    }
    EMIT(5); /* end of information */
    if (bits) put1(&lzw, (uint8_t)(acc & 255));
#undef EMIT
    put1(b, 2); /* minimum code size */
    for (size_t off = 0; off < lzw.n; off += 255) {
        size_t k = lzw.n - off < 255 ? lzw.n - off : 255;
        put1(b, (uint8_t)k);
        put(b, lzw.p + off, k);
    }
    put1(b, 0);
    free(lzw.p);
}

static void gif_frame(bytes *b, int w, int h, int shift, bool transparent) {
    if (transparent) { /* graphic control extension: delay 10, transparent index 3 */
        const uint8_t gce[] = {0x21, 0xF9, 4, 0x05, 10, 0, 3, 0};
        put(b, gce, sizeof gce);
    }
    put1(b, 0x2C);
    put_le16(b, 0);
    put_le16(b, 0);
    put_le16(b, (unsigned)w);
    put_le16(b, (unsigned)h);
    put1(b, 0); /* no local colour table, not interlaced */
    uint8_t idx[64];
    for (int i = 0; i < w * h; i++) idx[i] = (uint8_t)((i + shift) & 3);
    gif_pixels(b, idx, w * h);
}

static void gif(bytes *b, int w, int h, int frames) {
    put(b, "GIF89a", 6);
    put_le16(b, (unsigned)w);
    put_le16(b, (unsigned)h);
    put1(b, 0x81); /* global colour table of 4 entries */
    put1(b, 0);
    put1(b, 0);
    const uint8_t pal[12] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 255, 255};
    put(b, pal, sizeof pal);
    if (frames > 1) { /* NETSCAPE2.0 loop extension */
        const uint8_t ext[] = {0x21, 0xFF, 11, 'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0', 3, 1, 0, 0, 0};
        put(b, ext, sizeof ext);
    }
    for (int f = 0; f < frames; f++) gif_frame(b, w, h, f, frames > 1);
    put1(b, 0x3B);
}

static int write_seeds(const char *dir) {
    int bad = 0;
    enum { W = 8, H = 6 };
    uint8_t rgb[W * H * 3], rgba[W * H * 4], grey[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int i = y * W + x;
            rgb[3 * i] = (uint8_t)(x * 32);
            rgb[3 * i + 1] = (uint8_t)(y * 40);
            rgb[3 * i + 2] = (uint8_t)((x ^ y) * 30);
            memcpy(rgba + 4 * i, rgb + 3 * i, 3);
            rgba[4 * i + 3] = (uint8_t)(i * 5);
            grey[i] = (uint8_t)(i * 5);
        }
    bytes b = {0};
    stbi_write_jpg_to_func(stb_sink, &b, W, H, 3, rgb, 90);
    bad |= save(dir, "seed-rgb.jpg", b.p, b.n);
    b.n = 0;
    stbi_write_jpg_to_func(stb_sink, &b, W, H, 1, grey, 50);
    bad |= save(dir, "seed-grey.jpg", b.p, b.n);
    b.n = 0;
    stbi_write_png_to_func(stb_sink, &b, W, H, 4, rgba, W * 4);
    bad |= save(dir, "seed-rgba.png", b.p, b.n);
    b.n = 0;
    stbi_write_png_to_func(stb_sink, &b, W, H, 1, grey, W);
    bad |= save(dir, "seed-grey.png", b.p, b.n);
    b.n = 0;
    gif(&b, W, H, 1);
    bad |= save(dir, "seed-still.gif", b.p, b.n);
    b.n = 0;
    gif(&b, 3, 2, 2);
    bad |= save(dir, "seed-anim.gif", b.p, b.n);
    free(b.p);
    uint8_t *out = NULL;
    size_t n = WebPEncodeRGB(rgb, W, H, W * 3, 75.0f, &out);
    bad |= n ? save(dir, "seed-lossy.webp", out, n) : 1;
    WebPFree(out);
    out = NULL;
    n = WebPEncodeLosslessRGBA(rgba, W, H, W * 4, &out);
    bad |= n ? save(dir, "seed-lossless.webp", out, n) : 1;
    WebPFree(out);
    return bad;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("IMAGE_FUZZ_WRITE_SEEDS");
    if (dir && *dir) exit(write_seeds(dir));
    return 0;
}
