/*
 * png.c - bounded PNG container reader (see png.h).
 *
 * The reader walks the chunks with a cursor (off) over the caller's bytes and
 * checks, before every read, that the bytes are there. Integers are big-endian
 * (PNG's network byte order) and decoded byte by byte. The order rules come
 * from PNG 1.2 section 5.6 (chunk ordering) and the IHDR rules from 11.2.2.
 */
#include "image/png.h"

#include "core/alloc.h"
#include "core/paths.h"

#include <string.h>

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* CRC-32 with polynomial 0xEDB88320, four bits at a time: a 16-entry table is
 * small enough to write down, and result files are at most a few MiB. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t img_png_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0f];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0f];
    }
    return ~crc;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int legal_depth(uint8_t color_type, uint8_t depth)
{
    switch (color_type) {
    case 0:
        return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:
        return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6:
        return depth == 8 || depth == 16;
    default:
        return 0;
    }
}

static int type_is_letters(const uint8_t *t)
{
    for (int i = 0; i < 4; i++) {
        int c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

static int parse_ihdr(const uint8_t *d, size_t off, img_png_info *info, genai_error *err)
{
    info->width = be32(d);
    info->height = be32(d + 4);
    info->bit_depth = d[8];
    info->color_type = d[9];
    info->interlace = d[12];
    if (info->width == 0 || info->height == 0 || info->width > 0x7fffffffu ||
        info->height > 0x7fffffffu)
        return err_set(err, GENAI_ECORRUPT, "png: bad size %ux%u in IHDR at offset %zu",
                       info->width, info->height, off);
    if (info->width > IMG_PNG_MAX_SIDE || info->height > IMG_PNG_MAX_SIDE)
        return err_set(err, GENAI_ETOO_LARGE, "png: %ux%u exceeds %u pixels per side", info->width,
                       info->height, IMG_PNG_MAX_SIDE);
    if (!legal_depth(info->color_type, info->bit_depth))
        return err_set(err, GENAI_ECORRUPT,
                       "png: colour type %u with bit depth %u is not allowed (offset %zu)",
                       info->color_type, info->bit_depth, off);
    if (d[10] != 0 || d[11] != 0 || d[12] > 1)
        return err_set(err, GENAI_ECORRUPT,
                       "png: bad compression/filter/interlace method in IHDR at offset %zu", off);
    return 0;
}

int img_png_parse(const uint8_t *data, size_t len, img_png_info *out, genai_error *err)
{
    img_png_info info;
    memset(&info, 0, sizeof(info));
    if (data == NULL || len < sizeof(png_signature) ||
        memcmp(data, png_signature, sizeof(png_signature)) != 0)
        return err_set(err, GENAI_ECORRUPT, "png: no PNG signature");

    size_t off = sizeof(png_signature);
    int seen_ihdr = 0, seen_plte = 0, seen_iend = 0;
    int idat_state = 0; /* 0 none yet, 1 inside the IDAT run, 2 after it */
    while (off < len) {
        if (len - off < 12)
            return err_set(err, GENAI_ECORRUPT, "png: truncated chunk header at offset %zu", off);
        uint32_t clen = be32(data + off);
        const uint8_t *type = data + off + 4;
        if (clen > 0x7fffffffu || clen > len - off - 12)
            return err_set(err, GENAI_ECORRUPT,
                           "png: chunk length %u at offset %zu runs past the end (%zu bytes)", clen,
                           off, len);
        if (!type_is_letters(type))
            return err_set(err, GENAI_ECORRUPT, "png: bad chunk type at offset %zu", off + 4);
        const uint8_t *cdata = type + 4;
        uint32_t want = be32(cdata + clen);
        uint32_t got = img_png_crc32(0, type, (size_t)clen + 4);
        if (want != got)
            return err_set(err, GENAI_ECORRUPT,
                           "png: CRC mismatch in %.4s chunk at offset %zu (stored %08x, "
                           "computed %08x)",
                           (const char *)type, off, want, got);
        if (++info.n_chunks > IMG_PNG_MAX_CHUNKS)
            return err_set(err, GENAI_ETOO_LARGE, "png: more than %u chunks", IMG_PNG_MAX_CHUNKS);

        int is_idat = memcmp(type, "IDAT", 4) == 0;
        if (!seen_ihdr) {
            if (memcmp(type, "IHDR", 4) != 0 || clen != 13)
                return err_set(err, GENAI_ECORRUPT, "png: first chunk is not a 13-byte IHDR");
            int rc = parse_ihdr(cdata, off, &info, err);
            if (rc < 0)
                return rc;
            seen_ihdr = 1;
        } else if (memcmp(type, "IHDR", 4) == 0) {
            return err_set(err, GENAI_ECORRUPT, "png: second IHDR at offset %zu", off);
        } else if (memcmp(type, "PLTE", 4) == 0) {
            if (seen_plte || idat_state != 0 || clen == 0 || clen % 3 != 0 || clen > 768 ||
                info.color_type == 0 || info.color_type == 4)
                return err_set(err, GENAI_ECORRUPT, "png: misplaced or bad PLTE at offset %zu",
                               off);
            seen_plte = 1;
        } else if (is_idat) {
            if (idat_state == 2)
                return err_set(err, GENAI_ECORRUPT, "png: IDAT chunks not consecutive (offset %zu)",
                               off);
            if (info.color_type == 3 && !seen_plte)
                return err_set(err, GENAI_ECORRUPT, "png: palette image without PLTE");
            idat_state = 1;
            info.idat_bytes += clen;
        } else if (memcmp(type, "IEND", 4) == 0) {
            if (clen != 0)
                return err_set(err, GENAI_ECORRUPT, "png: IEND with data at offset %zu", off);
            seen_iend = 1;
        } else if ((type[0] & 0x20) == 0) {
            /* Bit 5 of the first byte clear = critical: a decoder must know it. */
            return err_set(err, GENAI_EUNSUPPORTED,
                           "png: unknown critical chunk %.4s at offset %zu", (const char *)type,
                           off);
        }
        if (!is_idat && idat_state == 1)
            idat_state = 2;
        off += (size_t)clen + 12;
        if (seen_iend)
            break;
    }
    if (!seen_iend)
        return err_set(err, GENAI_ECORRUPT, "png: no IEND chunk (file truncated at %zu bytes)",
                       len);
    if (off != len)
        return err_set(err, GENAI_ECORRUPT, "png: %zu bytes after IEND", len - off);
    if (idat_state == 0)
        return err_set(err, GENAI_ECORRUPT, "png: no IDAT chunk");
    *out = info;
    return 0;
}

int img_png_read_file(const char *path, size_t max_bytes, uint8_t **data_out, size_t *len_out,
                      img_png_info *info, genai_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    img_png_info pi;
    if (max_bytes == 0)
        max_bytes = IMG_PNG_MAX_FILE;
    int rc = paths_read_file(path, max_bytes, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = img_png_parse((const uint8_t *)buf, len, &pi, err);
    if (rc < 0) {
        err_prefix(err, "%s", path);
        mem_free(buf);
        return rc;
    }
    *data_out = (uint8_t *)buf;
    *len_out = len;
    if (info != NULL)
        *info = pi;
    return 0;
}
