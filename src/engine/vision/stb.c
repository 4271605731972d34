/* stb.c: stb_image (PNG, JPEG, GIF) in a translation unit of its own, with a
 * budgeted allocator: every allocation counts against a per-thread byte
 * budget derived from the header's dimensions, so that a small file cannot
 * inflate into gigabytes (zlib bombs inside a PNG).
 *
 * On its own so that sanitizer builds can exempt just Debian's stb_image
 * 2.27 from the UB checks it trips on hostile input and that are harmless on
 * the targets we build for: NULL + 0 and memcpy(NULL, p, 0) on a zero-length
 * first IDAT, shifts past 31 bits once a truncated JPEG drives code_bits
 * negative (CMakeLists.txt; docs/internals/fuzzing.md). Our own image code
 * (image.c) keeps every check.
 */
#include "vision_int.h"

#include <stdlib.h>
#include <string.h>

/* Every stb allocation carries a 16-byte header with its size; the live total
 * may not exceed the budget of the decode in progress on this thread. */
static __thread size_t stb_budget, stb_used;

/* Allocations are zeroed: stb_image 2.27 can read state a corrupt file never
 * set (a JPEG scan using a Huffman table no DHT defined), and with leftover
 * heap bytes in those tables it indexes far out of bounds (found by
 * tests/fuzz/image_fuzz.c); zeroed tables only ever give in-range indexes. */
static void *budget_malloc(size_t n) {
    if (n > stb_budget || stb_used > stb_budget - n || n > SIZE_MAX - 16) return NULL;
    size_t *p = calloc(1, n + 16);
    if (!p) return NULL;
    p[0] = n;
    stb_used += n;
    return (char *)p + 16;
}

static void budget_free(void *q) {
    if (!q) return;
    size_t *p = (size_t *)((char *)q - 16);
    stb_used -= p[0];
    free(p);
}

static void *budget_realloc(void *q, size_t n) {
    if (!q) return budget_malloc(n);
    size_t *p = (size_t *)((char *)q - 16);
    size_t old = p[0];
    if (n > old && (n - old > stb_budget || stb_used > stb_budget - (n - old))) return NULL;
    if (n > SIZE_MAX - 16) return NULL;
    size_t *np = realloc(p, n + 16);
    if (!np) return NULL;
    if (n > old) memset((char *)np + 16 + old, 0, n - old); /* zeroed like budget_malloc */
    np[0] = n;
    stb_used = stb_used - old + n;
    return (char *)np + 16;
}

#define STBI_MALLOC(sz) budget_malloc(sz)
#define STBI_REALLOC(p, nsz) budget_realloc(p, nsz)
#define STBI_FREE(p) budget_free(p)
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS (1 << 20)
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
/* stb declares a few static functions it never defines under STB_IMAGE_STATIC;
 * that warning is issued at the end of the file, so it stays off file-wide. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#pragma GCC diagnostic ignored "-Wtype-limits"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

uint8_t *cst_stb_decode_rgb(const uint8_t *b, size_t len, size_t budget, int *w, int *h, const char **why) {
    *why = NULL;
    if (len > INT_MAX) {
        *why = "file too large";
        return NULL;
    }
    stb_budget = budget;
    stb_used = 0;
    int comp = 0;
    stbi_uc *px = stbi_load_from_memory(b, (int)len, w, h, &comp, 3);
    if (!px) *why = stbi_failure_reason();
    stb_budget = 0;
    return px;
}

void cst_stb_free(uint8_t *px) { stbi_image_free(px); }
