/*
 * sd_png_write.h - a minimal PNG encoder for the fake stable-diffusion.cpp
 * binaries and for tests that need valid (or deliberately broken) PNG files.
 *
 * It writes 8-bit RGB images the way sd.cpp's stb_image_write does in
 * structure: signature, IHDR, an optional tEXt chunk (sd.cpp stores the
 * generation parameters under the key "parameters"), one IDAT holding a zlib
 * stream of stored (uncompressed) deflate blocks with the filter byte 0 on
 * each row, and IEND. No compression library is needed.
 */
#ifndef GENAI_TESTS_SD_PNG_WRITE_H
#define GENAI_TESTS_SD_PNG_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* Adler-32 (RFC 1950) of n bytes, continuing from adler (start with 1). */
uint32_t sdpng_adler32(uint32_t adler, const uint8_t *p, size_t n);

/*
 * Encodes w x h RGB pixels (3 bytes each, rows top to bottom) as a PNG. When
 * text_key is not NULL a tEXt chunk key\0value is added. On success *out
 * receives the bytes (free with mem_free) and *out_len their count. Returns 0,
 * -EINVAL for a zero or too large size, -ENOMEM.
 */
int sdpng_encode_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, const char *text_key,
                     const char *text_value, uint8_t **out, size_t *out_len);

/* Fills w x h RGB pixels with a pattern that depends on seed (deterministic). */
void sdpng_fill_pattern(uint8_t *rgb, uint32_t w, uint32_t h, uint64_t seed);

#endif
