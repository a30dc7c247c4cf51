#include "cmocka_all.h"

#include "image/failure.h"

#include <signal.h>
#include <string.h>

/* One case of contracts/stable-diffusion-cpp.md §6: the status as waitpid
 * reports it, the lines of both streams, and the cause genai must report. */
struct case_ {
    const char *name;
    int exited, code, sig;
    const char *lines[8];
    enum img_cause want;
    const char *evidence; /* substring of the line that proves it */
};

static const struct case_ cases[] = {
    {"model file missing",
     1,
     1,
     0,
     {"[INFO ] stable-diffusion.cpp:713  - loading model from '/m/x.safetensors'",
      "[WARN ] model_loader.cpp:254  - file /m/x.safetensors not found",
      "[ERROR] stable-diffusion.cpp:715  - init model loader from file failed: '/m/x.safetensors'",
      "[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: '/m/x.safetensors'",
      "[INFO ] main.cpp:910  - new_sd_ctx_t failed"},
     IMG_CAUSE_MODEL_MISSING,
     "init model loader"},
    {"not a model file (real sd-cli master-827; the WARN line is on stdout)",
     1,
     1,
     0,
     {"[INFO ] stable-diffusion.cpp:713  - loading model from '/m/x.safetensors'",
      "[WARN ] model_loader.cpp:252  - unknown format /m/x.safetensors",
      "[ERROR] stable-diffusion.cpp:715  - init model loader from file failed: '/m/x.safetensors'",
      "[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: '/m/x.safetensors'",
      "[INFO ] main.cpp:910  - new_sd_ctx_t failed"},
     IMG_CAUSE_MODEL_UNKNOWN,
     "unknown format"},
    {"unknown model type",
     1,
     1,
     0,
     {"[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: '/m/x.bin'",
      "[INFO ] main.cpp:910  - new_sd_ctx_t failed"},
     IMG_CAUSE_MODEL_UNKNOWN,
     "get sd version"},
    {"split SD1 components",
     1,
     1,
     0,
     {"[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: ''"},
     IMG_CAUSE_MODEL_UNKNOWN,
     "''"},
    {"truncated file",
     1,
     1,
     0,
     {"[ERROR] model_loader.cpp:321  - data offsets out of bounds for tensor 'x.weight'",
      "[ERROR] stable-diffusion.cpp:715  - init model loader from file failed: '/m/t'",
      "[ERROR] stable-diffusion.cpp:905  - get sd version from file failed: '/m/t'"},
     IMG_CAUSE_MODEL_CORRUPT,
     "out of bounds"},
    {"tensor missing",
     1,
     1,
     0,
     {"[ERROR] model_manager.cpp:640  - Diffusion model tensor "
      "'model.diffusion_model.out.2.weight' not in model metadata",
      "[ERROR] stable-diffusion.cpp:1693 - model metadata validation failed"},
     IMG_CAUSE_MISSING_TENSOR,
     "out.2.weight"},
    {"no model given",
     1,
     1,
     0,
     {"[ERROR] common.cpp:742  - error: the following arguments are required: "
      "model_path/diffusion_model",
      "stable-diffusion.cpp version master-827-97d2990+, commit 97d29908", "Usage: sd-cli"},
     IMG_CAUSE_BAD_ARGUMENT,
     "required"},
    {"unknown argument",
     1,
     1,
     0,
     {"[ERROR] common.cpp:325  - error: unknown argument: --bogus-flag"},
     IMG_CAUSE_BAD_ARGUMENT,
     "--bogus-flag"},
    {"bad enum value",
     1,
     1,
     0,
     {"[ERROR] common.cpp:1258 - error: invalid sample method nope",
      "[ERROR] common.cpp:320  - error: invalid parameter for argument: --sampling-method"},
     IMG_CAUSE_BAD_ARGUMENT,
     "sample method"},
    {"old mode name",
     1,
     1,
     0,
     {"[ERROR] main.cpp:157  - error: invalid mode txt2img, must be one of [img_gen, adetailer, "
      "vid_gen, convert, upscale, metadata]"},
     IMG_CAUSE_BAD_ARGUMENT,
     "txt2img"},
    {"non-numeric int",
     0,
     -1,
     SIGABRT,
     {"terminate called after throwing an instance of 'std::invalid_argument'", "  what():  stoi"},
     IMG_CAUSE_BAD_ARGUMENT,
     "invalid_argument"},
    {"weights do not fit (SIGABRT)",
     0,
     -1,
     SIGABRT,
     {"[ERROR] ggml_extend.hpp:72   - ggml_aligned_malloc: insufficient memory (attempted to "
      "allocate 235.06 MB)",
      "[ERROR] ggml_extend.hpp:72   - ggml_backend_cpu_buffer_type_alloc_buffer: failed to "
      "allocate buffer of size 246481920",
      "[ERROR] model_manager.cpp:737  - model manager alloc params backend buffer failed, size = "
      "235.06MB",
      "[ERROR] ggml_extend.hpp:1989 - clip prepare graph weights failed",
      "/src/conditioner.hpp:467: GGML_ASSERT(!chunk_hidden_states.empty()) failed"},
     IMG_CAUSE_OUT_OF_MEMORY,
     "insufficient memory"},
    {"compute buffer does not fit (exit 1)",
     1,
     1,
     0,
     {"[ERROR] ggml_extend.hpp:72   - ggml_aligned_malloc: insufficient memory (attempted to "
      "allocate 131142.46 MB)",
      "[ERROR] ggml_extend.hpp:2234 - unet: failed to allocate the compute buffer",
      "[ERROR] stable-diffusion.cpp:5706 - sampling for image 1/1 failed after 0.28s",
      "[ERROR] main.cpp:952  - generate failed"},
     IMG_CAUSE_OUT_OF_MEMORY,
     "131142.46"},
    {"CUDA out of memory",
     1,
     1,
     0,
     {"[ERROR] ggml_extend.hpp:72   - ggml_backend_cuda_buffer_type_alloc_buffer: allocating "
      "832.00 MiB on device 0: cudaMalloc failed: out of memory",
      "[ERROR] main.cpp:952  - generate failed"},
     IMG_CAUSE_OUT_OF_MEMORY,
     "cudaMalloc"},
    {"Vulkan out of memory",
     1,
     1,
     0,
     {"ggml_vulkan: Device memory allocation of size 1 failed.",
      "vk::Device::allocateMemory: ErrorOutOfDeviceMemory"},
     IMG_CAUSE_OUT_OF_MEMORY,
     "ErrorOutOfDeviceMemory"},
    {"output directory",
     1,
     1,
     0,
     {"[INFO ] stable-diffusion.cpp:5861 - generate_image completed in 6.97s",
      "[ERROR] main.cpp:452  - failed to create directory '/proc/nope': No such file or "
      "directory"},
     IMG_CAUSE_OUTPUT,
     "/proc/nope"},
    {"SIGTERM during sampling", 0, -1, SIGTERM, {NULL}, IMG_CAUSE_KILLED, NULL},
    {"SIGKILL", 0, -1, SIGKILL, {"  |=====>  | 1/2"}, IMG_CAUSE_KILLED, NULL},
    {"segfault",
     0,
     -1,
     SIGSEGV,
     {"[INFO ] x.cpp:1    - generating image: 1/1 - seed 42"},
     IMG_CAUSE_CRASH,
     NULL},
    {"exit 3, nothing known", 1, 3, 0, {"[INFO ] x.cpp:1    - something"}, IMG_CAUSE_UNKNOWN, NULL},
    {"success with an alarming prompt",
     1,
     0,
     0,
     {"[INFO ] main.cpp:562  - 1/1 images saved"},
     IMG_CAUSE_NONE,
     NULL},
    /* With -v the prompt is echoed; it is not evidence. */
    {"prompt echo is not evidence",
     1,
     2,
     0,
     {"[DEBUG] main.cpp:693  - SDGenerationParams {", "  prompt: \"robot, out of memory\",",
      "[DEBUG] x.cpp:1    - prompt out of memory"},
     IMG_CAUSE_UNKNOWN,
     NULL},
};

static void test_contract_failures(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct case_ *c = &cases[i];
        size_t n = 0, lens[8];
        while (n < 8 && c->lines[n] != NULL) {
            lens[n] = strlen(c->lines[n]);
            n++;
        }
        img_failure f = img_failure_classify(c->exited, c->code, c->sig, c->lines, lens, n);
        if (f.cause != c->want)
            fail_msg("%s: got %s, want %s", c->name, img_cause_name(f.cause),
                     img_cause_name(c->want));
        if (c->evidence != NULL) {
            assert_non_null(f.evidence);
            char buf[512];
            size_t k = f.evidence_len < sizeof(buf) - 1 ? f.evidence_len : sizeof(buf) - 1;
            memcpy(buf, f.evidence, k);
            buf[k] = '\0';
            if (strstr(buf, c->evidence) == NULL)
                fail_msg("%s: evidence '%s' lacks '%s'", c->name, buf, c->evidence);
        } else {
            assert_null(f.evidence);
        }
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(img_cause_name(IMG_CAUSE_OUT_OF_MEMORY), "out_of_memory");
    assert_string_equal(img_cause_name(IMG_CAUSE_BAD_ARGUMENT), "bad_argument");
    assert_non_null(strstr(img_cause_message(IMG_CAUSE_OUT_OF_MEMORY), "text encoder"));
    for (int c = IMG_CAUSE_NONE; c <= IMG_CAUSE_UNKNOWN; c++) {
        assert_string_not_equal(img_cause_name((enum img_cause)c), "");
        assert_string_not_equal(img_cause_message((enum img_cause)c), "unknown");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_failures),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
