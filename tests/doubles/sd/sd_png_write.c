/*
 * sd_png_write.c - minimal PNG encoder (see sd_png_write.h).
 *
 * Layout of the zlib stream (RFC 1950 / RFC 1951 section 3.2.4): header
 * 0x78 0x01, then blocks of at most 65535 bytes, each "BFINAL BTYPE=00" in
 * one byte, LEN and ~LEN little-endian, the raw bytes; then the Adler-32 of
 * the raw data, big-endian.
 */
#include "sd_png_write.h"

#include "core/alloc.h"
#include "image/png.h"

#include <errno.h>
#include <string.h>

uint32_t sdpng_adler32(uint32_t adler, const uint8_t *p, size_t n)
{
    uint32_t a = adler & 0xffff, b = adler >> 16;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return (b << 16) | a;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Appends a chunk at *pos: length, type, data, CRC over type and data. */
static void put_chunk(uint8_t *buf, size_t *pos, const char *type, const uint8_t *data, size_t len)
{
    uint8_t *start = buf + *pos;
    put_be32(start, (uint32_t)len);
    memcpy(start + 4, type, 4);
    if (len > 0)
        memcpy(start + 8, data, len);
    put_be32(start + 8 + len, img_png_crc32(0, start + 4, len + 4));
    *pos += len + 12;
}

int sdpng_encode_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, const char *text_key,
                     const char *text_value, uint8_t **out, size_t *out_len)
{
    if (w == 0 || h == 0 || w > IMG_PNG_MAX_SIDE || h > IMG_PNG_MAX_SIDE)
        return -EINVAL;
    size_t row = (size_t)w * 3 + 1;
    size_t raw_len = row * h; /* at most 16384 * 49153: no overflow in 64 bits */
    size_t n_blocks = raw_len / 65535 + 1;
    size_t z_len = 2 + raw_len + n_blocks * 5 + 4;
    size_t text_len = 0;
    if (text_key != NULL)
        text_len = strlen(text_key) + 1 + (text_value ? strlen(text_value) : 0);
    size_t total = 8 + (12 + 13) + (text_key ? 12 + text_len : 0) + 12 + z_len + 12;

    uint8_t *raw = mem_alloc(raw_len);
    uint8_t *z = mem_alloc(z_len);
    uint8_t *png = mem_alloc(total);
    uint8_t *text = text_key ? mem_alloc(text_len) : NULL;
    int rc = -ENOMEM;
    if (raw == NULL || z == NULL || png == NULL || (text_key != NULL && text == NULL))
        goto out_free;

    for (uint32_t y = 0; y < h; y++) {
        raw[y * row] = 0; /* filter type None */
        memcpy(raw + y * row + 1, rgb + (size_t)y * w * 3, (size_t)w * 3);
    }
    size_t zp = 0;
    z[zp++] = 0x78;
    z[zp++] = 0x01;
    size_t left = raw_len, rp = 0;
    do {
        size_t n = left > 65535 ? 65535 : left;
        z[zp++] = (uint8_t)(n == left ? 1 : 0);
        z[zp++] = (uint8_t)(n & 0xff);
        z[zp++] = (uint8_t)(n >> 8);
        z[zp++] = (uint8_t)(~n & 0xff);
        z[zp++] = (uint8_t)((~n >> 8) & 0xff);
        memcpy(z + zp, raw + rp, n);
        zp += n;
        rp += n;
        left -= n;
    } while (left > 0);
    put_be32(z + zp, sdpng_adler32(1, raw, raw_len));
    zp += 4;

    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t pos = 0;
    memcpy(png, sig, 8);
    pos = 8;
    uint8_t ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    put_chunk(png, &pos, "IHDR", ihdr, sizeof(ihdr));
    if (text_key != NULL) {
        size_t kl = strlen(text_key);
        memcpy(text, text_key, kl);
        text[kl] = 0;
        if (text_value != NULL)
            memcpy(text + kl + 1, text_value, text_len - kl - 1);
        put_chunk(png, &pos, "tEXt", text, text_len);
    }
    put_chunk(png, &pos, "IDAT", z, zp);
    put_chunk(png, &pos, "IEND", NULL, 0);
    *out = png;
    *out_len = pos;
    png = NULL;
    rc = 0;
out_free:
    mem_free(text);
    mem_free(png);
    mem_free(z);
    mem_free(raw);
    return rc;
}

void sdpng_fill_pattern(uint8_t *rgb, uint32_t w, uint32_t h, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            uint8_t *px = rgb + ((size_t)y * w + x) * 3;
            px[0] = (uint8_t)((x * 255u) / w);
            px[1] = (uint8_t)((y * 255u) / h);
            px[2] = (uint8_t)(s & 0xff);
        }
    }
}
