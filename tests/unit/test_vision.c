/* test_vision.c: image decoding (PNG/JPEG/GIF/WebP made here with
 * stb_image_write, a hand-built GIF and libwebp's encoder), MIME sniffing,
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

static buf make_jpeg(void) {
    uint8_t rgb[W * H * 3];
    pattern(rgb);
    buf b = {0};
    ASSERT(stbi_write_jpg_to_func(write_cb, &b, W, H, 3, rgb, 100));
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
