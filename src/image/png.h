/*
 * png.h - a bounded reader of the PNG container, for the images sd-cli writes.
 *
 * genai never trusts a result file: before handing PNG bytes to a client it
 * checks the container (PNG 1.2 / ISO/IEC 15948:2003, sections 5 and 11): the
 * signature, every chunk's length against the bytes left and its CRC-32, IHDR
 * first with a legal bit depth / colour type pair, PLTE where colour type 3
 * needs it, consecutive IDAT chunks, IEND last and nothing after it. Pixels are
 * not decompressed: that is the client's business, and the container checks
 * catch truncated and corrupted files, which is what a crashed or killed
 * sd-cli leaves behind.
 */
#ifndef GENAI_IMAGE_PNG_H
#define GENAI_IMAGE_PNG_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

/* Limits on what genai accepts as a result (sd.cpp's own max is 4096 per
 * side in sd-server's capabilities; the cap leaves room for upscalers). */
#define IMG_PNG_MAX_SIDE 16384u
#define IMG_PNG_MAX_CHUNKS 65536u
#define IMG_PNG_MAX_FILE (512u * 1024u * 1024u)

typedef struct img_png_info {
    uint32_t width;
    uint32_t height;
    uint8_t bit_depth;
    uint8_t color_type; /* 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA */
    uint8_t interlace;  /* 0 none, 1 Adam7 */
    uint32_t n_chunks;
    uint64_t idat_bytes; /* compressed image data, all IDAT chunks together */
} img_png_info;

/* Updates a CRC-32 (ISO 3309, as PNG uses it) with n bytes; start with crc 0. */
uint32_t img_png_crc32(uint32_t crc, const uint8_t *p, size_t n);

/*
 * Validates len bytes as a PNG file and fills *out from IHDR. Returns 0, or
 * GENAI_ECORRUPT (bad structure, with the byte offset in err),
 * GENAI_EUNSUPPORTED (an unknown critical chunk) or GENAI_ETOO_LARGE (a side
 * over IMG_PNG_MAX_SIDE, too many chunks). *out is written only on success.
 */
int img_png_parse(const uint8_t *data, size_t len, img_png_info *out, genai_error *err);

/*
 * Reads the file at path (at most max_bytes, 0 = IMG_PNG_MAX_FILE) and
 * validates it with img_png_parse(). On success *data_out gets the bytes (the
 * caller frees them with mem_free), *len_out their count and *info (optional)
 * the header.
 */
int img_png_read_file(const char *path, size_t max_bytes, uint8_t **data_out, size_t *len_out,
                      img_png_info *info, genai_error *err);

#endif
