/* test_vision.c: image decoding (PNG made here with stb_image_write, a
 * stored JPEG, a hand-built GIF, WebP from libwebp's encoder), MIME sniffing,
 * size limits and hostile bytes, and the gemma3 vision encoder against
 * llama.cpp's projector output (golden/vision/tinygemma3-embd.jsonl).
 */
#include "test.h"

#include "core/core.h"
#include "core/pool.h"
#include "engine/vision/vision.h"
#include "engine/vision/vision_int.h"
#include <jansson.h>
#include <stdlib.h>
#include <webp/encode.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void write_cb(void *ctx, void *data, int size) { buf_put(ctx, data, (size_t)size); }

enum { W = 7, H = 5 };

/* A 7x5 test pattern with distinct colours. */
static void pattern(uint8_t *rgb) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgb + (y * W + x) * 3;
            p[0] = (uint8_t)(x * 36);
            p[1] = (uint8_t)(y * 60);
            p[2] = (uint8_t)((x + y) % 2 ? 200 : 20);
        }
}

static buf make_png(void) {
    uint8_t rgb[W * H * 3];
    pattern(rgb);
    buf b = {0};
    ASSERT(stbi_write_png_to_func(write_cb, &b, W, H, 3, rgb, W * 3));
    return b;
}

/* pattern() as a baseline JPEG at quality 100, written once by stb_image_write
 * (its JPEG writer shifts signed ints, which UBSan rejects, so the bytes are
 * stored here rather than produced at run time) */
static const uint8_t pattern_jpeg[] = {
    0xff,0xd8,0xff,0xe0,0x00,0x10,0x4a,0x46,0x49,0x46,0x00,0x01,0x01,0x00,0x00,0x01,
    0x00,0x01,0x00,0x00,0xff,0xdb,0x00,0x84,0x00,0x01,0x01,0x01,0x01,0x01,0x01,0x01,
    0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,
    0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,
    0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,
    0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,
    0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,
    0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,
    0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,
    0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0xff,0xc0,0x00,0x11,0x08,0x00,
    0x05,0x00,0x07,0x03,0x01,0x11,0x00,0x02,0x11,0x01,0x03,0x11,0x01,0xff,0xc4,0x01,
    0xa2,0x00,0x00,0x01,0x05,0x01,0x01,0x01,0x01,0x01,0x01,0x00,0x00,0x00,0x00,0x00,
    0x00,0x00,0x00,0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08,0x09,0x0a,0x0b,0x10,0x00,
    0x02,0x01,0x03,0x03,0x02,0x04,0x03,0x05,0x05,0x04,0x04,0x00,0x00,0x01,0x7d,0x01,
    0x02,0x03,0x00,0x04,0x11,0x05,0x12,0x21,0x31,0x41,0x06,0x13,0x51,0x61,0x07,0x22,
    0x71,0x14,0x32,0x81,0x91,0xa1,0x08,0x23,0x42,0xb1,0xc1,0x15,0x52,0xd1,0xf0,0x24,
    0x33,0x62,0x72,0x82,0x09,0x0a,0x16,0x17,0x18,0x19,0x1a,0x25,0x26,0x27,0x28,0x29,
    0x2a,0x34,0x35,0x36,0x37,0x38,0x39,0x3a,0x43,0x44,0x45,0x46,0x47,0x48,0x49,0x4a,
    0x53,0x54,0x55,0x56,0x57,0x58,0x59,0x5a,0x63,0x64,0x65,0x66,0x67,0x68,0x69,0x6a,
    0x73,0x74,0x75,0x76,0x77,0x78,0x79,0x7a,0x83,0x84,0x85,0x86,0x87,0x88,0x89,0x8a,
    0x92,0x93,0x94,0x95,0x96,0x97,0x98,0x99,0x9a,0xa2,0xa3,0xa4,0xa5,0xa6,0xa7,0xa8,
    0xa9,0xaa,0xb2,0xb3,0xb4,0xb5,0xb6,0xb7,0xb8,0xb9,0xba,0xc2,0xc3,0xc4,0xc5,0xc6,
    0xc7,0xc8,0xc9,0xca,0xd2,0xd3,0xd4,0xd5,0xd6,0xd7,0xd8,0xd9,0xda,0xe1,0xe2,0xe3,
    0xe4,0xe5,0xe6,0xe7,0xe8,0xe9,0xea,0xf1,0xf2,0xf3,0xf4,0xf5,0xf6,0xf7,0xf8,0xf9,
    0xfa,0x01,0x00,0x03,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x00,0x00,0x00,
    0x00,0x00,0x00,0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08,0x09,0x0a,0x0b,0x11,0x00,
    0x02,0x01,0x02,0x04,0x04,0x03,0x04,0x07,0x05,0x04,0x04,0x00,0x01,0x02,0x77,0x00,
    0x01,0x02,0x03,0x11,0x04,0x05,0x21,0x31,0x06,0x12,0x41,0x51,0x07,0x61,0x71,0x13,
    0x22,0x32,0x81,0x08,0x14,0x42,0x91,0xa1,0xb1,0xc1,0x09,0x23,0x33,0x52,0xf0,0x15,
    0x62,0x72,0xd1,0x0a,0x16,0x24,0x34,0xe1,0x25,0xf1,0x17,0x18,0x19,0x1a,0x26,0x27,
    0x28,0x29,0x2a,0x35,0x36,0x37,0x38,0x39,0x3a,0x43,0x44,0x45,0x46,0x47,0x48,0x49,
    0x4a,0x53,0x54,0x55,0x56,0x57,0x58,0x59,0x5a,0x63,0x64,0x65,0x66,0x67,0x68,0x69,
    0x6a,0x73,0x74,0x75,0x76,0x77,0x78,0x79,0x7a,0x82,0x83,0x84,0x85,0x86,0x87,0x88,
    0x89,0x8a,0x92,0x93,0x94,0x95,0x96,0x97,0x98,0x99,0x9a,0xa2,0xa3,0xa4,0xa5,0xa6,
    0xa7,0xa8,0xa9,0xaa,0xb2,0xb3,0xb4,0xb5,0xb6,0xb7,0xb8,0xb9,0xba,0xc2,0xc3,0xc4,
    0xc5,0xc6,0xc7,0xc8,0xc9,0xca,0xd2,0xd3,0xd4,0xd5,0xd6,0xd7,0xd8,0xd9,0xda,0xe2,
    0xe3,0xe4,0xe5,0xe6,0xe7,0xe8,0xe9,0xea,0xf2,0xf3,0xf4,0xf5,0xf6,0xf7,0xf8,0xf9,
    0xfa,0xff,0xda,0x00,0x0c,0x03,0x01,0x00,0x02,0x11,0x03,0x11,0x00,0x3f,0x00,0xfa,
    0x13,0xf6,0x51,0xff,0x00,0x82,0x43,0x7e,0xcb,0xd1,0x68,0x91,0x5d,0x3e,0x9d,0xe6,
    0x44,0xba,0x52,0x4e,0x60,0xfe,0xc5,0xd2,0x8e,0xe8,0xe4,0xb4,0xf0,0xf4,0x8b,0x16,
    0x26,0x13,0xd9,0xfc,0x8b,0xac,0xd9,0x26,0x1e,0xc2,0x4b,0x61,0xfd,0x9b,0x88,0xad,
    0x22,0x8a,0x3f,0x0f,0xc3,0xe1,0xaf,0xe3,0x1f,0xa4,0x27,0xd3,0xeb,0xc4,0x7c,0xa7,
    0x83,0x33,0x3e,0x2b,0xc5,0xe5,0xbf,0xda,0x19,0x4e,0x13,0x86,0x32,0x8e,0x21,0xad,
    0x90,0x7d,0x67,0x87,0x27,0xf5,0x8c,0xbb,0x30,0xca,0xbe,0x8d,0x19,0x96,0x1f,0x27,
    0xf6,0x39,0xe7,0x04,0x71,0x0f,0x04,0xcb,0xea,0x78,0x6f,0x1b,0x78,0x17,0x05,0xec,
    0xb1,0xde,0x1f,0xe6,0x1c,0x2b,0x1f,0xf8,0x85,0xfc,0x99,0x5f,0x07,0x64,0xf9,0x46,
    0x5f,0xf4,0x74,0xc9,0x7e,0x8b,0x7f,0xcf,0x9f,0xb3,0x2f,0xf6,0x86,0xf8,0xe7,0x53,
    0x03,0x97,0xd0,0x8e,0x33,0x92,0xa4,0xb0,0x95,0xe9,0x2a,0xbf,0xda,0x78,0xf5,0x69,
    0xc2,0x8e,0x77,0x07,0x52,0xf4,0x9d,0x2c,0x4f,0xbd,0x2c,0xb7,0x13,0x2b,0xc7,0x15,
    0x0a,0xff,0x00,0xed,0xbe,0xfe,0x22,0xa5,0x49,0xe6,0xf5,0x33,0xbf,0xff,0xd9
};

static buf make_jpeg(void) {
    buf b = {0};
    buf_put(&b, pattern_jpeg, sizeof pattern_jpeg);
    return b;
}

static buf make_webp(void) {
    uint8_t rgb[W * H * 3];
    pattern(rgb);
    uint8_t *out = NULL;
    size_t n = WebPEncodeLosslessRGB(rgb, W, H, W * 3, &out);
    ASSERT(n > 0);
    buf b = {0};
    buf_put(&b, out, n);
    WebPFree(out);
    return b;
}

/* A 3x2 GIF, 4-colour global palette, LZW stream with a clear code before
 * every pixel (so every code stays 3 bits wide); pixels 0 1 2 / 3 0 1. */
static const uint8_t gif_pal[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
static const int gif_px[6] = {0, 1, 2, 3, 0, 1};
static buf make_gif(void) {
    buf b = {0};
    buf_put(&b, "GIF89a", 6);
    const uint8_t lsd[7] = {3, 0, 2, 0, 0x81 /* GCT, 2^(1+1) entries */, 0, 0};
    buf_put(&b, lsd, 7);
    buf_put(&b, gif_pal, sizeof gif_pal);
    const uint8_t desc[10] = {',', 0, 0, 0, 0, 3, 0, 2, 0, 0};
    buf_put(&b, desc, 10);
    const uint8_t min_code = 2;
    buf_put(&b, &min_code, 1);
    uint8_t data[16] = {0};
    int bit = 0;
    int codes[16], nc = 0;
    for (int i = 0; i < 6; i++) {
        codes[nc++] = 4; /* clear */
        codes[nc++] = gif_px[i];
    }
    codes[nc++] = 5; /* end */
    for (int i = 0; i < nc; i++)
        for (int k = 0; k < 3; k++, bit++)
            if (codes[i] >> k & 1) data[bit / 8] |= (uint8_t)(1 << (bit % 8));
    const uint8_t len = (uint8_t)((bit + 7) / 8);
    buf_put(&b, &len, 1);
    buf_put(&b, data, len);
    buf_put(&b, "\0;", 2);
    return b;
}

/* ---- sniffing ----------------------------------------------------------- */

TEST(sniff_types) {
    buf png = make_png(), jpg = make_jpeg(), webp = make_webp(), gif = make_gif();
    ASSERT_STREQ(cst_image_sniff_mime(png.p, png.n), "image/png");
    ASSERT_STREQ(cst_image_sniff_mime(jpg.p, jpg.n), "image/jpeg");
    ASSERT_STREQ(cst_image_sniff_mime(webp.p, webp.n), "image/webp");
    ASSERT_STREQ(cst_image_sniff_mime(gif.p, gif.n), "image/gif");
    ASSERT_STREQ(cst_image_sniff_mime("GIF87a", 6), "image/gif");
    ASSERT(cst_image_sniff_mime("hello world", 11) == NULL);
    ASSERT(cst_image_sniff_mime(NULL, 0) == NULL);
    ASSERT(cst_image_sniff_mime(png.p, 7) == NULL); /* signature cut short */
    ASSERT(cst_image_sniff_mime("RIFF\x10\0\0\0WAVEfmt ", 16) == NULL);
    ASSERT(cst_image_sniff_mime("%PDF-1.7", 8) == NULL);
    const char *mime = NULL;
    int w = 0, h = 0;
    ASSERT_OK(cst_image_probe(jpg.p, jpg.n, &mime, &w, &h, NULL, 0));
    ASSERT_STREQ(mime, "image/jpeg");
    ASSERT_EQ(w, W);
    ASSERT_EQ(h, H);
    free(png.p), free(jpg.p), free(webp.p), free(gif.p);
}

/* ---- decoding ----------------------------------------------------------- */

static void check_exact(buf b) {
    uint8_t want[W * H * 3];
    pattern(want);
    cst_image img;
    char err[256] = "";
    ASSERT_MSG(cst_image_decode(b.p, b.n, NULL, &img, err, sizeof err) == CST_OK, "decode: %s", err);
    ASSERT_EQ(img.width, W);
    ASSERT_EQ(img.height, H);
    ASSERT(memcmp(img.rgb, want, sizeof want) == 0);
    cst_image_free(&img);
    ASSERT(img.rgb == NULL);
}

TEST(decode_png) {
    buf b = make_png();
    check_exact(b);
    free(b.p);
}

TEST(decode_webp_lossless) {
    buf b = make_webp();
    check_exact(b);
    free(b.p);
}

TEST(decode_jpeg) {
    buf b = make_jpeg();
    uint8_t want[W * H * 3];
    pattern(want);
    cst_image img;
    char err[256] = "";
    ASSERT_MSG(cst_image_decode(b.p, b.n, NULL, &img, err, sizeof err) == CST_OK, "decode: %s", err);
    ASSERT_EQ(img.width, W);
    ASSERT_EQ(img.height, H);
    double mad = 0;
    for (int i = 0; i < W * H * 3; i++) mad += fabs((double)img.rgb[i] - want[i]);
    mad /= W * H * 3;
    ASSERT_MSG(mad < 12.0, "JPEG mean abs error %.2f", mad); /* lossy, chroma subsampled */
    cst_image_free(&img);
    free(b.p);
}

TEST(decode_gif_first_frame) {
    buf b = make_gif();
    cst_image img;
    char err[256] = "";
    ASSERT_MSG(cst_image_decode(b.p, b.n, NULL, &img, err, sizeof err) == CST_OK, "decode: %s", err);
    ASSERT_EQ(img.width, 3);
    ASSERT_EQ(img.height, 2);
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < 3; c++) ASSERT_EQ(img.rgb[i * 3 + c], gif_pal[gif_px[i]][c]);
    cst_image_free(&img);
    free(b.p);
}

TEST(decode_png_alpha_and_gray) {
    /* RGBA: alpha is dropped (as llama.cpp's loader does); gray expands to RGB */
    uint8_t rgba[2 * 4] = {10, 20, 30, 0, 200, 100, 50, 255};
    buf b = {0};
    ASSERT(stbi_write_png_to_func(write_cb, &b, 2, 1, 4, rgba, 8));
    cst_image img;
    ASSERT_OK(cst_image_decode(b.p, b.n, NULL, &img, NULL, 0));
    const uint8_t want[6] = {10, 20, 30, 200, 100, 50};
    ASSERT(memcmp(img.rgb, want, 6) == 0);
    cst_image_free(&img);
    b.n = 0;
    const uint8_t gray[3] = {0, 128, 255};
    ASSERT(stbi_write_png_to_func(write_cb, &b, 3, 1, 1, gray, 3));
    ASSERT_OK(cst_image_decode(b.p, b.n, NULL, &img, NULL, 0));
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++) ASSERT_EQ(img.rgb[i * 3 + c], gray[i]);
    cst_image_free(&img);
    free(b.p);
}

/* ---- limits and hostile input --------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

TEST(bomb_png_header_refused) {
    /* a PNG whose IHDR declares 100000 x 100000 RGB, followed by a tiny IDAT */
    buf b = make_png();
    put_be32(b.p + 16, 100000);
    put_be32(b.p + 20, 100000);
    cst_image img = {.width = 1};
    char err[256] = "";
    cst_status st = cst_image_decode(b.p, b.n, NULL, &img, err, sizeof err);
    ASSERT_EQ(st, CST_ERR_INVALID_ARG);
    ASSERT_MSG(strstr(err, "100000x100000") && strstr(err, "exceeds"), "message: %s", err);
    ASSERT(img.rgb == NULL && img.width == 0);
    int w = 0, h = 0;
    ASSERT_OK(cst_image_probe(b.p, b.n, NULL, &w, &h, NULL, 0));
    ASSERT_EQ(w, 100000);
    ASSERT_EQ(h, 100000);
    /* the same for a GIF screen and a JPEG frame header of 65535 x 65535 */
    buf g = make_gif();
    g.p[6] = g.p[7] = g.p[8] = g.p[9] = 0xFF;
    ASSERT_EQ(cst_image_decode(g.p, g.n, NULL, &img, err, sizeof err), CST_ERR_INVALID_ARG);
    buf j = make_jpeg();
    size_t i = 2;
    while (i + 9 < j.n && !(j.p[i] == 0xFF && j.p[i + 1] == 0xC0)) i++;
    ASSERT(i + 9 < j.n);
    j.p[i + 5] = j.p[i + 6] = j.p[i + 7] = j.p[i + 8] = 0xFF;
    ASSERT_EQ(cst_image_decode(j.p, j.n, NULL, &img, err, sizeof err), CST_ERR_INVALID_ARG);
    ASSERT_MSG(strstr(err, "65535x65535"), "message: %s", err);
    free(b.p), free(g.p), free(j.p);
}

TEST(custom_limits) {
    buf b = make_png();
    cst_image img;
    char err[256] = "";
    cst_image_limits lim = {.max_width = 6, .max_height = 100, .max_pixels = 1000};
    ASSERT_EQ(cst_image_decode(b.p, b.n, &lim, &img, err, sizeof err), CST_ERR_INVALID_ARG);
    lim = (cst_image_limits){.max_width = 100, .max_height = 100, .max_pixels = W * H - 1};
    ASSERT_EQ(cst_image_decode(b.p, b.n, &lim, &img, err, sizeof err), CST_ERR_INVALID_ARG);
    lim.max_pixels = W * H;
    ASSERT_OK(cst_image_decode(b.p, b.n, &lim, &img, err, sizeof err));
    cst_image_free(&img);
    free(b.p);
}

TEST(zlib_bomb_capped) {
    /* a 1x1 PNG whose IDAT inflates to 64 MiB: refused by the decoder budget */
    const size_t raw = 64u << 20;
    uint8_t *zeros = calloc(1, raw);
    int zlen = 0;
    unsigned char *z = stbi_zlib_compress(zeros, (int)raw, &zlen, 9);
    free(zeros);
    ASSERT(z && zlen > 0 && (size_t)zlen < raw / 100);
    buf b = {0};
    buf_put(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[25] = {0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    buf_put(&b, ihdr, sizeof ihdr);
    uint8_t hdr[8];
    put_be32(hdr, (uint32_t)zlen);
    memcpy(hdr + 4, "IDAT", 4);
    buf_put(&b, hdr, 8);
    buf_put(&b, z, (size_t)zlen);
    buf_put(&b, "\0\0\0\0", 4);
    buf_put(&b, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    STBIW_FREE(z);
    cst_image img;
    char err[256] = "";
    cst_status st = cst_image_decode(b.p, b.n, NULL, &img, err, sizeof err);
    ASSERT_MSG(st != CST_OK, "a 64 MiB inflation of a 1x1 image was accepted");
    ASSERT(err[0]);
    free(b.p);
}

/* Every prefix of a valid file decodes or fails cleanly (run under ASan);
 * prefixes shorter than strict_below must fail with a message. */
static void prefixes(buf b, size_t strict_below) {
    for (size_t n = 0; n < b.n; n++) {
        const bool strict = n < strict_below;
        cst_image img;
        char err[256] = "";
        cst_status st = cst_image_decode(b.p, n, NULL, &img, err, sizeof err);
        if (st == CST_OK) {
            ASSERT_MSG(!strict, "prefix of %zu/%zu bytes accepted", n, b.n);
            ASSERT(img.rgb && img.width > 0);
            cst_image_free(&img);
        } else {
            ASSERT_MSG(err[0] != 0, "no message for prefix %zu", n);
            ASSERT(img.rgb == NULL);
        }
    }
}

TEST(truncated_inputs) {
    buf png = make_png(), jpg = make_jpeg(), webp = make_webp(), gif = make_gif();
    prefixes(png, png.n - 12); /* all but the IEND chunk, which stb does not need */
    prefixes(webp, webp.n);
    prefixes(jpg, 0);
    prefixes(gif, 0);
    free(png.p), free(jpg.p), free(webp.p), free(gif.p);
}

TEST(jpeg_oversized_huffman_table_refused) {
    /* a DHT whose 16 code counts sum past 256 would overflow stb_image's tables */
    buf j = make_jpeg();
    size_t i = 2;
    while (i + 21 < j.n && !(j.p[i] == 0xFF && j.p[i + 1] == 0xC4)) i++;
    ASSERT(i + 21 < j.n);
    for (int k = 0; k < 16; k++) j.p[i + 5 + k] = 20; /* 320 codes */
    cst_image img;
    char err[256] = "";
    ASSERT_EQ(cst_image_decode(j.p, j.n, NULL, &img, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "Huffman"), "message: %s", err);
    free(j.p);
}

TEST(garbage_inputs) {
    char err[256];
    cst_image img;
    ASSERT_EQ(cst_image_decode("not an image at all", 19, NULL, &img, err, sizeof err), CST_ERR_UNSUPPORTED);
    ASSERT(strstr(err, "unrecognised"));
    ASSERT(cst_image_decode(NULL, 0, NULL, &img, err, sizeof err) != CST_OK);
    /* valid headers followed by noise, and random byte flips in valid files */
    buf files[4] = {make_png(), make_jpeg(), make_webp(), make_gif()};
    uint32_t seed = 12345;
    for (int f = 0; f < 4; f++) {
        for (int round = 0; round < 300; round++) {
            uint8_t *p = malloc(files[f].n);
            memcpy(p, files[f].p, files[f].n);
            const int flips = 1 + round % 8;
            for (int k = 0; k < flips; k++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = 8 + (seed >> 8) % (files[f].n - 8);
                p[at] ^= (uint8_t)(1 + (seed >> 24) % 255);
            }
            cst_status st = cst_image_decode(p, files[f].n, NULL, &img, err, sizeof err);
            if (st == CST_OK) {
                ASSERT(img.width > 0 && img.height > 0 && img.rgb);
                cst_image_free(&img);
            } else {
                ASSERT(err[0]);
            }
            free(p);
        }
        uint8_t noise[512];
        memcpy(noise, files[f].p, 16);
        for (size_t k = 16; k < sizeof noise; k++) {
            seed = seed * 1103515245u + 12345u;
            noise[k] = (uint8_t)(seed >> 16);
        }
        if (cst_image_decode(noise, sizeof noise, NULL, &img, err, sizeof err) == CST_OK) cst_image_free(&img);
        free(files[f].p);
    }
}

/* ---- vision encoder --------------------------------------------------------- */

static uint8_t *read_all(const char *path, size_t *n) {
    char *d = NULL;
    if (cst_read_file(path, &d, n) != CST_OK) return NULL;
    return (uint8_t *)d;
}

TEST(load_errors) {
    cst_vision *v = (cst_vision *)1;
    char err[256] = "";
    ASSERT(cst_vision_load("/nonexistent/mmproj.gguf", &v, err, sizeof err) != CST_OK);
    ASSERT(v == NULL && err[0]);
    ASSERT_EQ(cst_vision_load(cst_test_shared("models/tiny-llama-F32.gguf"), &v, err, sizeof err),
              CST_ERR_UNSUPPORTED);
    ASSERT_MSG(strstr(err, "clip"), "message: %s", err);
}

TEST(preprocess_square_is_identity) {
    cst_vision *v;
    char err[256] = "";
    ASSERT_MSG(cst_vision_load(cst_test_shared("models/mmproj-tinygemma3.gguf"), &v, err, sizeof err) == CST_OK,
               "%s", err);
    const int S = cst_vision_image_size(v);
    ASSERT_EQ(S, 32);
    cst_image img = {.width = S, .height = S, .rgb = malloc((size_t)S * S * 3)};
    for (int i = 0; i < S * S * 3; i++) img.rgb[i] = (uint8_t)(i * 7);
    float *x = malloc(sizeof(float) * 3 * S * S);
    ASSERT_OK(cst_vision_preprocess(v, &img, x, err, sizeof err));
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < S * S; i++)
            ASSERT_NEAR(x[c * S * S + i], (img.rgb[i * 3 + c] / 255.0f - 0.5f) / 0.5f, 1e-6);
    /* a wide image is scaled to the full width and centred vertically on black */
    cst_image wide = {.width = 64, .height = 16, .rgb = malloc(64 * 16 * 3)};
    memset(wide.rgb, 255, 64 * 16 * 3);
    ASSERT_OK(cst_vision_preprocess(v, &wide, x, err, sizeof err));
    ASSERT_NEAR(x[0], -1.0, 1e-6);              /* top row: padding */
    ASSERT_NEAR(x[16 * S + 5], 1.0, 1e-6);      /* middle: white */
    ASSERT_NEAR(x[(S - 1) * S + 31], -1.0, 1e-6); /* bottom row: padding */
    free(wide.rgb);
    free(img.rgb);
    free(x);
    cst_vision_free(v);
}

static void golden_case(cst_vision *v, cst_pool *pool, json_t *row, double *nmse_out) {
    const char *name = json_string_value(json_object_get(row, "image"));
    ASSERT(name);
    const int nt = (int)json_integer_value(json_object_get(row, "n_tokens"));
    const int ne = (int)json_integer_value(json_object_get(row, "n_embd"));
    ASSERT_EQ(nt, cst_vision_n_tokens(v));
    ASSERT_EQ(ne, cst_vision_n_embd(v));
    json_t *e = json_object_get(row, "embd");
    ASSERT_EQ(json_array_size(e), (size_t)nt * ne);
    char rel[128];
    snprintf(rel, sizeof rel, "golden/vision/%s", name);
    size_t n = 0;
    uint8_t *bytes = read_all(cst_test_shared(rel), &n);
    ASSERT_MSG(bytes, "cannot read %s", rel);
    ASSERT_STREQ(cst_image_sniff_mime(bytes, n), "image/png");
    cst_image img;
    char err[256] = "";
    ASSERT_MSG(cst_image_decode(bytes, n, NULL, &img, err, sizeof err) == CST_OK, "%s", err);
    float *out = malloc(sizeof(float) * nt * ne);
    ASSERT_MSG(cst_vision_encode(v, &img, out, pool, err, sizeof err) == CST_OK, "%s", err);
    double se = 0, ss = 0, maxd = 0;
    for (size_t i = 0; i < (size_t)nt * ne; i++) {
        const double g = json_real_value(json_array_get(e, i)), d = out[i] - g;
        se += d * d;
        ss += g * g;
        if (fabs(d) > maxd) maxd = fabs(d);
    }
    const double nmse = se / ss;
    fprintf(stderr, "  %s: max abs diff %.3g, NMSE %.3g\n", name, maxd, nmse);
    *nmse_out = nmse;
    free(out);
    cst_image_free(&img);
    free(bytes);
}

TEST(golden_tinygemma3) {
    cst_vision *v;
    char err[256] = "";
    ASSERT_MSG(cst_vision_load(cst_test_shared("models/mmproj-tinygemma3.gguf"), &v, err, sizeof err) == CST_OK,
               "%s", err);
    ASSERT_EQ(cst_vision_n_tokens(v), 256);
    ASSERT_EQ(cst_vision_n_embd(v), 128);
    ASSERT_STREQ(cst_vision_projector(v), "gemma3");
    size_t n = 0;
    char *text = (char *)read_all(cst_test_shared("golden/vision/tinygemma3-embd.jsonl"), &n);
    ASSERT(text);
    cst_pool *pool = cst_pool_new(2);
    int cases = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *row = json_loads(line, 0, &je);
        ASSERT_MSG(row, "bad golden line: %s", je.text);
        double nmse = 1, nmse1 = 1;
        golden_case(v, NULL, row, &nmse);
        ASSERT_MSG(nmse <= 1e-5, "NMSE %.3g above 1e-5", nmse);
        golden_case(v, pool, row, &nmse1); /* threaded: same result */
        ASSERT_NEAR(nmse1, nmse, 1e-12);
        json_decref(row);
        cases++;
    }
    ASSERT_EQ(cases, 2);
    cst_pool_free(pool);
    free(text);
    cst_vision_free(v);
}

/* Files the fuzzer found hostile (an undefined Huffman table that made stb
 * read stale heap memory, a zero-length first IDAT, a truncated JPEG that
 * drives stb's bit counter negative): each decodes or is refused with a
 * message, never a crash (this runs in the sanitizer build too). */
TEST(fuzz_regression_files) {
    static const char *const files[] = {"regress-undefined-huffman-table.jpg", "regress-empty-idat.png",
                                        "regress-negative-code-bits.jpg"};
    const char *src = getenv("CST_SOURCE");
    if (!src) cst_test_skip("CST_SOURCE not set");
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/fuzz/seeds/image_fuzz/%s", src, files[i]);
        char *data = NULL;
        size_t len = 0;
        ASSERT_MSG(cst_read_file(path, &data, &len) == CST_OK, "cannot read %s", path);
        cst_image img;
        memset(&img, 0, sizeof img);
        char err[256] = "";
        cst_status st = cst_image_decode(data, len, NULL, &img, err, sizeof err);
        if (st == CST_OK) {
            ASSERT(img.width > 0 && img.height > 0);
            cst_image_free(&img);
        } else {
            ASSERT_MSG(err[0], "%s: refused without a message", files[i]);
        }
        free(data);
    }
}
