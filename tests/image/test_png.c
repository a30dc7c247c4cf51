#include "cmocka_all.h"

#include "core/alloc.h"
#include "image/png.h"
#include "sd_png_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A w x h RGB PNG from the double's encoder; caller frees. */
static uint8_t *make_png(uint32_t w, uint32_t h, const char *key, size_t *len)
{
    uint8_t *rgb = mem_alloc((size_t)w * h * 3);
    assert_non_null(rgb);
    sdpng_fill_pattern(rgb, w, h, 42);
    uint8_t *png = NULL;
    assert_int_equal(sdpng_encode_rgb(rgb, w, h, key, key ? "a lovely cat" : NULL, &png, len), 0);
    mem_free(rgb);
    return png;
}

/* Rewrites the CRC of the chunk whose length field is at off. */
static void fix_crc(uint8_t *png, size_t off)
{
    uint32_t n = ((uint32_t)png[off] << 24) | ((uint32_t)png[off + 1] << 16) |
                 ((uint32_t)png[off + 2] << 8) | png[off + 3];
    put_be32(png + off + 8 + n, img_png_crc32(0, png + off + 4, n + 4));
}

static void test_crc32_known_values(void **state)
{
    (void)state;
    /* The CRC-32 check value, and the CRC every PNG ends with (IEND). */
    assert_int_equal(img_png_crc32(0, (const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(img_png_crc32(0, (const uint8_t *)"IEND", 4), 0xAE426082u);
    /* Incremental updates give the same result. */
    uint32_t c = img_png_crc32(0, (const uint8_t *)"1234", 4);
    assert_int_equal(img_png_crc32(c, (const uint8_t *)"56789", 5), 0xCBF43926u);
    assert_int_equal(sdpng_adler32(1, (const uint8_t *)"Wikipedia", 9), 0x11E60398u);
}

static void test_valid_png(void **state)
{
    (void)state;
    size_t len;
    uint8_t *png = make_png(64, 48, "parameters", &len);
    img_png_info info;
    genai_error e;
    assert_int_equal(img_png_parse(png, len, &info, &e), 0);
    assert_int_equal(info.width, 64);
    assert_int_equal(info.height, 48);
    assert_int_equal(info.bit_depth, 8);
    assert_int_equal(info.color_type, 2);
    assert_int_equal(info.n_chunks, 4); /* IHDR tEXt IDAT IEND */
    /* zlib header + one stored block header + raw rows + adler32 */
    assert_int_equal(info.idat_bytes, 2 + 5 + 48 * (64 * 3 + 1) + 4);
    mem_free(png);

    /* Large enough for several 65535-byte stored blocks. */
    png = make_png(300, 200, NULL, &len);
    assert_int_equal(img_png_parse(png, len, &info, &e), 0);
    assert_int_equal(info.width, 300);
    assert_int_equal(info.n_chunks, 3);
    mem_free(png);
}

static void test_every_truncation_fails(void **state)
{
    (void)state;
    size_t len;
    uint8_t *png = make_png(8, 8, "parameters", &len);
    img_png_info info = {0};
    info.width = 777;
    for (size_t n = 0; n < len; n++) {
        /* An exact-size copy, so the sanitizer sees any read past the end. */
        uint8_t *cut = mem_alloc(n ? n : 1);
        memcpy(cut, png, n);
        genai_error e;
        assert_int_equal(img_png_parse(cut, n, &info, &e), GENAI_ECORRUPT);
        mem_free(cut);
    }
    assert_int_equal(info.width, 777); /* untouched on failure */
    mem_free(png);
}

static void test_corruptions(void **state)
{
    (void)state;
    size_t len;
    uint8_t *png = make_png(16, 16, NULL, &len);
    uint8_t *bad = mem_alloc(len + 16);
    img_png_info info;
    genai_error e;

    /* A flipped bit anywhere after the signature breaks a CRC (or a length). */
    for (size_t i = 8; i < len; i += 7) {
        memcpy(bad, png, len);
        bad[i] ^= 0x10;
        assert_int_not_equal(img_png_parse(bad, len, &info, &e), 0);
    }
    memcpy(bad, png, len);
    bad[45] ^= 1; /* inside IDAT data */
    assert_int_equal(img_png_parse(bad, len, &info, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "CRC mismatch in IDAT"));

    /* Bad signature. */
    memcpy(bad, png, len);
    bad[1] = 'X';
    assert_int_equal(img_png_parse(bad, len, &info, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "signature"));

    /* Trailing bytes after IEND. */
    memcpy(bad, png, len);
    memset(bad + len, 0, 4);
    assert_int_equal(img_png_parse(bad, len + 4, &info, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "after IEND"));

    /* Illegal bit depth for RGB, with a valid CRC. */
    memcpy(bad, png, len);
    bad[8 + 8 + 8] = 4;
    fix_crc(bad, 8);
    assert_int_equal(img_png_parse(bad, len, &info, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "bit depth"));

    /* Zero width. */
    memcpy(bad, png, len);
    put_be32(bad + 16, 0);
    fix_crc(bad, 8);
    assert_int_equal(img_png_parse(bad, len, &info, &e), GENAI_ECORRUPT);

    /* Over the side cap. */
    memcpy(bad, png, len);
    put_be32(bad + 16, IMG_PNG_MAX_SIDE + 1);
    fix_crc(bad, 8);
    assert_int_equal(img_png_parse(bad, len, &info, &e), GENAI_ETOO_LARGE);

    /* A chunk length past the end. */
    memcpy(bad, png, len);
    put_be32(bad + 33, 0x7ffffff0u);
    assert_int_equal(img_png_parse(bad, len, &info, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "runs past the end"));

    /* IDAT renamed to an unknown critical chunk "IDAX"; then to ancillary "iDAX"
     * (ancillary chunks are skipped, so the file lacks image data). */
    memcpy(bad, png, len);
    memcpy(bad + 37, "IDAX", 4);
    fix_crc(bad, 33);
    assert_int_equal(img_png_parse(bad, len, &info, &e), GENAI_EUNSUPPORTED);
    memcpy(bad + 37, "iDAX", 4);
    fix_crc(bad, 33);
    assert_int_equal(img_png_parse(bad, len, &info, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "no IDAT"));

    assert_int_equal(img_png_parse(NULL, 0, &info, &e), GENAI_ECORRUPT);
    mem_free(bad);
    mem_free(png);
}

static void test_read_file(void **state)
{
    (void)state;
    char path[] = "/tmp/genai-png-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len;
    uint8_t *png = make_png(64, 64, "parameters", &len);
    assert_int_equal(write(fd, png, len), (ssize_t)len);
    close(fd);
    uint8_t *data = NULL;
    size_t got = 0;
    img_png_info info;
    genai_error e;
    assert_int_equal(img_png_read_file(path, 0, &data, &got, &info, &e), 0);
    assert_int_equal(got, len);
    assert_memory_equal(data, png, len);
    assert_int_equal(info.width, 64);
    mem_free(data);
    /* A size cap below the file size. */
    data = NULL;
    assert_int_equal(img_png_read_file(path, 100, &data, &got, &info, &e), GENAI_ETOO_LARGE);
    assert_null(data);
    /* Truncated on disk: the error names the file. */
    assert_int_equal(truncate(path, (off_t)len - 5), 0);
    assert_int_equal(img_png_read_file(path, 0, &data, &got, &info, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, path));
    unlink(path);
    assert_int_equal(img_png_read_file(path, 0, &data, &got, &info, &e), -ENOENT);
    mem_free(png);
}

static void test_encoder_rejects_bad_sizes(void **state)
{
    (void)state;
    uint8_t px[3] = {0, 0, 0};
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(sdpng_encode_rgb(px, 0, 1, NULL, NULL, &out, &len), -EINVAL);
    assert_int_equal(sdpng_encode_rgb(px, 1, IMG_PNG_MAX_SIDE + 1, NULL, NULL, &out, &len),
                     -EINVAL);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_known_values),
        cmocka_unit_test(test_valid_png),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_corruptions),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_encoder_rejects_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
