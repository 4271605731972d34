/* vision_int.h: internals shared by the vision module's files (clip.c,
 * preprocess.c): the projector's hyperparameters and the resize helpers.
 */
#ifndef CST_VISION_INT_H
#define CST_VISION_INT_H

#include "vision.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cst_vision_hparams {
    int image_size, patch_size, n_embd, n_ff, n_layer, n_head;
    int scale_factor; /* gemma3 pooling kernel (patches per token side) */
    float eps;
    float mean[3], std[3];
} cst_vision_hparams;

const cst_vision_hparams *cst_vision_get_hparams(const cst_vision *v);

/* Pillow-style bilinear resampling of an RGB8 image (w x h -> tw x th);
 * false when out of memory. */
bool cst_image_resize_bilinear(const uint8_t *src, int w, int h, uint8_t *dst, int tw, int th);
/* Fit into side x side keeping the aspect ratio (bilinear, sizes rounded up),
 * floor-centred on black; false when out of memory. */
bool cst_image_resize_pad(const uint8_t *src, int w, int h, uint8_t *dst, int side);

/* stb.c: decode PNG/JPEG/GIF into RGB8 with stb_image, its allocations
 * capped at budget bytes. NULL on failure with *why set (stb's reason, or
 * NULL). Free with cst_stb_free. */
uint8_t *cst_stb_decode_rgb(const uint8_t *b, size_t len, size_t budget, int *w, int *h, const char **why);
void cst_stb_free(uint8_t *px);

#endif
