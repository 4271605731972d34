/* vision.h: image input for the engine: decoding (PNG, JPEG, GIF first frame,
 * WebP) from memory into RGB8 with size limits checked before any pixel
 * allocation, MIME sniffing from magic bytes, and the vision encoder of a
 * llama.cpp "clip" projector GGUF (SigLIP ViT + gemma3 projector) that turns
 * one image into n_tokens rows of n_embd floats for the language model.
 */
#ifndef CST_VISION_H
#define CST_VISION_H

#include "castor.h"
#include "../../core/pool.h"
#include <stddef.h>
#include <stdint.h>

/* ---- images ------------------------------------------------------------ */

typedef struct cst_image {
    int width, height;
    uint8_t *rgb; /* width*height*3 bytes, row-major, R G B per pixel; owned */
} cst_image;

typedef struct cst_image_limits {
    int max_width;      /* per side, pixels */
    int max_height;
    int64_t max_pixels; /* width*height */
} cst_image_limits;

/* 8192 x 8192 per side, 32 Mpixel in all. */
cst_image_limits cst_image_default_limits(void);

/* The MIME type the bytes' signature announces: "image/png", "image/jpeg",
 * "image/gif", "image/webp"; NULL when none of these (static strings). */
const char *cst_image_sniff_mime(const void *bytes, size_t len);

/* Reads only the header: type and dimensions (no pixel decoding).
 * mime/width/height may be NULL. */
cst_status cst_image_probe(const void *bytes, size_t len, const char **mime, int *width, int *height,
                           char *err, size_t errlen);

/* Decodes into RGB8 (alpha dropped, 16-bit samples reduced to 8 bits, GIF:
 * first frame). The header's dimensions are checked against limits (NULL:
 * the defaults) before decoding; decoder memory is capped as well, so a
 * small file cannot expand into gigabytes. Errors: CST_ERR_UNSUPPORTED
 * (unknown type, animated WebP), CST_ERR_INVALID_ARG (over the limits),
 * CST_ERR_BAD_FORMAT (corrupt or truncated data), CST_ERR_NOMEM.
 * On failure *out is zeroed. */
cst_status cst_image_decode(const void *bytes, size_t len, const cst_image_limits *limits, cst_image *out,
                            char *err, size_t errlen);
void cst_image_free(cst_image *img); /* frees the pixels and zeroes *img; NULL ok */

/* ---- vision encoder ---------------------------------------------------- */

typedef struct cst_vision cst_vision;

/* Loads a clip-vision GGUF (general.architecture "clip", vision encoder,
 * projector type gemma3). The file stays mapped while the handle lives. */
cst_status cst_vision_load(const char *path, cst_vision **out, char *err, size_t errlen);
void cst_vision_free(cst_vision *v); /* NULL ok */

int cst_vision_n_tokens(const cst_vision *v); /* embeddings per image */
int cst_vision_n_embd(const cst_vision *v);   /* width of each embedding (the LM's n_embd) */
int cst_vision_image_size(const cst_vision *v); /* square input side in pixels */
const char *cst_vision_projector(const cst_vision *v); /* "gemma3" */

/* The model input for img, as llama.cpp's mtmd builds it for gemma3: fitted
 * into image_size x image_size (aspect kept, Pillow-style bilinear, centred
 * on black), then (x/255 - mean) / std per channel. out is planar
 * [3][image_size][image_size]. */
cst_status cst_vision_preprocess(const cst_vision *v, const cst_image *img, float *out, char *err,
                                 size_t errlen);

/* Encodes one image: out receives n_tokens rows of n_embd floats (row-major).
 * pool may be NULL (single thread). Not reentrant on one handle. */
cst_status cst_vision_encode(cst_vision *v, const cst_image *img, float *out, cst_pool *pool, char *err,
                             size_t errlen);

#endif
