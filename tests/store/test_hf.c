/*
 * test_hf.c - Hugging Face reference parsing, shard names, the path checks
 * that keep listing entries inside the data folder, and model ids.
 */
#include "cmocka_all.h"

#include "store/hf.h"
#include "store/store.h"

#include <string.h>

static void test_parse_forms(void **state)
{
    (void)state;
    store_hf_ref r;
    assert_int_equal(store_hf_parse("hf://owner/repo/sub/file.gguf@v1.2", &r, NULL), 0);
    assert_string_equal(r.repo, "owner/repo");
    assert_string_equal(r.path, "sub/file.gguf");
    assert_string_equal(r.quant, "");
    assert_string_equal(r.revision, "v1.2");
    assert_int_equal(store_hf_parse("owner/repo:Q8_0", &r, NULL), 0);
    assert_string_equal(r.quant, "Q8_0");
    assert_string_equal(r.revision, "main");
    assert_string_equal(r.path, "");
    assert_int_equal(store_hf_parse("owner/repo@0123abc", &r, NULL), 0);
    assert_string_equal(r.quant, "Q4_K_M");
    assert_string_equal(r.revision, "0123abc");
    genai_error e;
    assert_int_equal(store_hf_parse("hf://owner/repo", &r, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "hf://owner/repo/path"));
    assert_int_equal(store_hf_parse("hf://o/r/../../etc/passwd", &r, NULL), GENAI_EBAD_ARG);
    assert_int_equal(store_hf_parse("hf://../r/x.gguf", &r, NULL), GENAI_EBAD_ARG);
    assert_int_equal(store_hf_parse("owner/repo:", &r, NULL), GENAI_EBAD_ARG);
    assert_int_equal(store_hf_parse("owner/repo@", &r, NULL), GENAI_EBAD_ARG);
    assert_int_equal(store_hf_parse("own er/repo", &r, NULL), GENAI_EBAD_ARG);
    assert_int_equal(store_hf_parse("owner/repo/extra:Q4", &r, NULL), GENAI_EBAD_ARG);
    assert_int_equal(store_hf_parse("o/r@a..b", &r, NULL), GENAI_EBAD_ARG);
}

static void test_is_ref(void **state)
{
    (void)state;
    assert_true(store_hf_is_ref("hf://o/r/f.gguf"));
    assert_true(store_hf_is_ref("o/r:Q4_K_M"));
    assert_true(store_hf_is_ref("o/r"));
    assert_false(store_hf_is_ref("https://example.com/f.gguf"));
    assert_false(store_hf_is_ref("/abs/path.gguf"));
    assert_false(store_hf_is_ref("./rel/path"));
    assert_false(store_hf_is_ref("single"));
}

static void test_shards(void **state)
{
    (void)state;
    char prefix[64];
    unsigned i, n;
    assert_int_equal(store_hf_shard("m-Q8_0-00002-of-00003.gguf", prefix, sizeof(prefix), &i, &n),
                     1);
    assert_string_equal(prefix, "m-Q8_0");
    assert_int_equal(i, 2);
    assert_int_equal(n, 3);
    assert_int_equal(store_hf_shard("m-00004-of-00003.gguf", prefix, sizeof(prefix), &i, &n), 0);
    assert_int_equal(store_hf_shard("m-00000-of-00003.gguf", prefix, sizeof(prefix), &i, &n), 0);
    assert_int_equal(store_hf_shard("m-0001-of-00003.gguf", prefix, sizeof(prefix), &i, &n), 0);
    assert_int_equal(store_hf_shard("m.gguf", prefix, sizeof(prefix), &i, &n), 0);
}

static void test_path_safe(void **state)
{
    (void)state;
    assert_true(store_hf_path_safe("a/b.gguf"));
    assert_true(store_hf_path_safe("..hidden"));
    assert_false(store_hf_path_safe("../x"));
    assert_false(store_hf_path_safe("a/../../x"));
    assert_false(store_hf_path_safe("/etc/x"));
    assert_false(store_hf_path_safe("a//b"));
    assert_false(store_hf_path_safe("a/./b"));
    assert_false(store_hf_path_safe("a\\b"));
    assert_false(store_hf_path_safe("a\nb"));
    assert_false(store_hf_path_safe(""));
}

static void test_ids(void **state)
{
    (void)state;
    char id[160];
    assert_int_equal(store_id_from_name("/x/Qwen2.5-7B-Instruct-Q4_K_M.gguf", id, sizeof(id)), 0);
    assert_string_equal(id, "qwen2.5-7b-instruct-q4_k_m");
    assert_int_equal(store_id_from_name("big-Q8_0-00001-of-00004.gguf", id, sizeof(id)), 0);
    assert_string_equal(id, "big-q8_0");
    assert_int_equal(store_id_from_name("sd v1 (5).safetensors", id, sizeof(id)), 0);
    assert_string_equal(id, "sd-v1-5");
    assert_int_equal(store_id_from_name("....gguf", id, sizeof(id)), GENAI_EBAD_ARG);
    assert_true(store_id_valid("a.b_c-D"));
    assert_false(store_id_valid("-x"));
    assert_false(store_id_valid("a/b"));
    assert_false(store_id_valid(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms), cmocka_unit_test(test_is_ref),
        cmocka_unit_test(test_shards),      cmocka_unit_test(test_path_safe),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
